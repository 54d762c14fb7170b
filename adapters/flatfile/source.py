"""The file source: polls a directory, claims complete files and submits them; see the package
docstring.

One file never stops the poll: whatever goes wrong while handling it (an unreadable name, a
mapping that raises, a file system error) moves that file to error_dir with a report naming the
error, counted by the `set_aside` hook, and the poll goes on with the next file. Only the bus
being unavailable (`SubmitStopped`) or the store (`StoreUnavailable`, a server that is down) ends a
poll early, with the file kept claimed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from adapters.flatfile.claims import Claim, Claims, display_name
from adapters.flatfile.progress import Progress, ProgressFiles, now_rfc3339
from adapters.flatfile.readiness import KINDS, Readiness, Stray
from adapters.flatfile.records import FileReader, MessageTooLarge, group_records, part_body
from adapters.flatfile.reports import ErrorFolder, describe, problem_entry
from adapters.flatfile.spec import options_of
from adapters.flatfile.store import FILE, Entry, FileStore, LocalDirectory, StoreUnavailable
from adapters.flatfile.window import Part, SubmitWindow
from esb import codecs
from esb.errors import InputError, Unavailable
from esb.plugins import Accepted, RawMessage, Source, SourceContext

log = logging.getLogger("esb.adapters.flatfile")

PROGRESS_EVERY_RECORDS = 500
PROGRESS_EVERY_SECONDS = 1.0
"""The confirmed offset is written after this many messages or seconds, whichever comes first (and
after every refused one); what was confirmed after it is de-duplicated by its idempotency key."""


class SubmitStopped(Exception):
    """The bus could not store a part now: the file stays claimed and is resumed next poll."""


class _Cadence:
    """When the progress of a file is saved next: after PROGRESS_EVERY_RECORDS parts or
    PROGRESS_EVERY_SECONDS, whichever comes first."""

    def __init__(self):
        self.unsaved, self.saved_at = 0, time.monotonic()

    def due(self) -> bool:
        return (self.unsaved >= PROGRESS_EVERY_RECORDS
                or time.monotonic() - self.saved_at >= PROGRESS_EVERY_SECONDS)

    def saved(self) -> None:
        self.unsaved, self.saved_at = 0, time.monotonic()


class FileSource(Source):
    """Polls `dir` for complete files matching `pattern` and submits them; see the module docstring.

    `store` is where the files are (default: the local file system); `clock` gives seconds since
    the epoch (tests pass their own)."""

    def __init__(self, endpoint, system: dict | None, route_name: str, *, store: FileStore | None = None,
                 clock: Callable[[], float] = time.time):
        self.options = options_of(endpoint)
        self.route = route_name
        self.store = store or LocalDirectory()
        self.clock = clock
        self.dir = Path(self.options["dir"])
        self.claims = Claims(self.store, self.dir, float(self.options["reclaim_after"]))
        self.progress_files = ProgressFiles(self.store, self.dir)
        self.processed_dir = Path(self.options["processed_dir"] or self.dir / "processed")
        self.error_dir = Path(self.options["error_dir"] or self.dir / "error")
        own = {folder.name for folder in (self.processed_dir, self.error_dir) if folder.parent == self.dir}
        self.completeness = Readiness(self.options, self.store, self.dir, own)
        self.errors = ErrorFolder(self.store, self.error_dir, route_name)
        self.poll_interval = float(self.options["poll"])
        self.content_type = codecs.content_type(self.options["format"])
        if self.options["format"] in ("csv", "fixedwidth"):
            self.content_type += f"; charset={self.options['encoding']}"
        self._stopping = threading.Event()
        self._context: SourceContext | None = None

    @property
    def worker(self) -> str:
        return self.claims.worker

    @property
    def host(self) -> str:
        return self.claims.host

    def start(self, context: SourceContext) -> None:
        self._context = context
        self.errors.set_aside = context.set_aside
        self.make_folders()

    def make_folders(self) -> None:
        """The source directory and the bookkeeping folders in it, made when missing."""
        for directory in (self.dir, self.claims.folder, self.progress_files.folder):
            self.store.make_folder(directory)

    def stop(self) -> None:
        self._stopping.set()

    # --- one poll ---------------------------------------------------------------------------
    def poll(self) -> None:
        """Resume claims, then take new complete files, until done or the bus is unavailable."""
        try:
            for claim in self.claims.to_resume(self._last_progress):
                if self._stopping.is_set():
                    return
                if not self.errors.is_stuck(claim.path):
                    self._handle(claim)
            ready, strays = self.completeness.scan(self.store.entries(self.dir), self.clock())
            for stray in strays:
                self._move_stray(stray)
            for entry in ready:
                if self._stopping.is_set():
                    return
                claim = self._claim(self.dir / entry.name, entry.name)
                if claim is not None:
                    self._handle(claim)
        except (SubmitStopped, StoreUnavailable) as stopped:
            log.warning("route %s: %s; the file stays claimed and is resumed at the next poll",
                        self.route, stopped)

    def _claim(self, path: Path, name: str) -> Claim | None:
        """Claim `path` for this worker; None if another was faster or it cannot be claimed (then
        it is moved aside)."""
        if self.errors.is_stuck(path):
            return None
        try:
            claim = self.claims.take(path, name)
        except StoreUnavailable:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. a file system refusing the rename
            self._fail(path, name, None, f"the file cannot be claimed: {describe(error)}", "unclaimable")
            return None
        if claim is not None:
            marker = self.completeness.marker_of(name)
            if marker is not None:
                # at once, so a new file of the same name is not taken before its own marker
                self.store.remove(self.dir / marker)
            self.completeness.forget(name)
        return claim

    def _handle(self, claim: Claim) -> None:
        """Process one claimed file; any error but the bus's moves it aside and the poll goes on."""
        try:
            self._process(claim)
        except (SubmitStopped, StoreUnavailable):
            raise
        except Exception as error:  # noqa: BLE001 - one file never stops the poll
            log.exception("route %s: handling %s failed", self.route, display_name(claim.name))
            entry = self.store.stat(claim.path)
            self._fail(claim.path, claim.name, claim, describe(error), "error",
                       size=entry.size if entry else None)
            if entry is not None:
                self.store.remove(self._progress_path(claim.name, entry))

    def _move_stray(self, stray: Stray) -> None:
        path = self.dir / stray.entry.name
        if not self.errors.is_stuck(path):
            self._fail(path, stray.entry.name, None, f"{stray.why}: never opened", "not_regular")

    def _fail(self, path: Path, name: str, claim: Claim | None, error: str, reason: str,
              progress: Progress | None = None, size: int | None = None) -> None:
        """Move the file at `path` to error_dir with a report naming `error`."""
        progress = progress or Progress("")
        report = {"route": self.route, "size": size, "at": now_rfc3339(), "error": error,
                  "published": progress.published, "refused": progress.refused, "problems": progress.problems,
                  "problems_not_listed": max(0, progress.refused - len(progress.problems))}
        if self.errors.move(path, name, report, reason) is not None and claim is not None:
            self.claims.release(claim)

    def _last_progress(self, claim: Claim) -> float | None:
        entry = self.store.stat(claim.path)
        return None if entry is None else self.progress_files.saved_at(self._progress_path(claim.name, entry))

    # --- one file ---------------------------------------------------------------------------
    def _progress_path(self, name: str, entry: Entry) -> Path:
        return self.progress_files.path(name, entry)

    def _save_progress(self, path: Path, progress: Progress) -> None:
        self.progress_files.save(path, progress, self.worker)

    def _process(self, claim: Claim) -> None:
        if self.store.stat(claim.path) is None:
            return  # taken over meanwhile
        stat = self.store.stat(claim.path, follow_symlinks=self.completeness.follow_symlinks)
        if stat is None or stat.kind != FILE:
            why = "a symbolic link to nothing" if stat is None else KINDS.get(stat.kind, stat.kind)
            self._fail(claim.path, claim.name, claim, f"{why}: never opened", "not_regular")
            return
        identity = f"{display_name(claim.name)}:{stat.size}:{stat.mtime_ns}"
        progress_path = self._progress_path(claim.name, stat)
        progress = self.progress_files.load(progress_path, identity)
        fatal: str | None = None
        if stat.size == 0:
            pass  # no record: see _finish
        elif self.options["per"] == "file":
            fatal = self._submit_whole_file(claim, stat, progress, progress_path)
        else:
            try:
                if not self._submit_parts(claim, progress, progress_path):
                    return  # stopping: the claim is resumed by the next worker
            except MessageTooLarge as error:
                fatal = f"{error}; lines after {progress.line} were not read"
            except InputError as error:  # the header itself
                fatal = str(error)
        self._finish(claim, stat, progress, progress_path, fatal)

    def _submit_whole_file(self, claim: Claim, stat: Entry, progress: Progress,
                           progress_path: Path) -> str | None:
        limit = self.options["max_file_bytes"]
        if stat.size > limit:
            return f"the file is {stat.size} bytes, larger than max_file_bytes ({limit} bytes)"
        if progress.offset >= stat.size:
            return None  # done before a crash; only the move was missing
        with self._open(claim) as stream:
            body = stream.read(limit + 1)
        raw = RawMessage(body, self.content_type, {"file": display_name(claim.name), "route": self.route})
        self._submit(raw, progress.identity, progress, span=None)
        progress.offset, progress.line = stat.size, body.count(b"\n")
        self._save_progress(progress_path, progress)
        return None

    def _submit_parts(self, claim: Claim, progress: Progress, progress_path: Path) -> bool:
        """Submit each record or group after the saved progress, up to `in_flight` at a time; False
        when stopped before the end. The progress moves past a part only once it and every part
        before it were answered (stored, or refused and dead-lettered): see `SubmitWindow`."""
        reader = FileReader(self.options)
        shown = display_name(claim.name)
        cadence = _Cadence()
        window = SubmitWindow(self._context.submit, self.options["in_flight"],
                              submit_async=getattr(self._context, "submit_async", None))
        with self._open(claim) as stream, window:
            reader.open(stream)
            offset, line = max(progress.offset, reader.data_start), max(progress.line, reader.data_start_line)
            records = reader.records(stream, offset, line)
            groups = iter(group_records(records, self.options["per"], self.options["group_by"],
                                        self.options["max_file_bytes"]))
            try:
                while not (stopped := self._stopping.is_set()):
                    try:
                        group = next(groups, None)
                    except Exception:  # the reader's (a bad or unreadable line): what is in flight counts
                        for part in window.drain():
                            self._settle(part, progress, progress_path, cadence)
                        raise
                    if group is None:
                        break
                    window.put(self._part(reader.prefix, group, shown, progress.identity))
                    for part in window.answered():
                        self._settle(part, progress, progress_path, cadence)
                for part in window.drain():
                    self._settle(part, progress, progress_path, cadence)
            finally:
                window.close()
                if cadence.unsaved:  # best effort; after a hard crash, idempotency keys cover the gap
                    self._save_progress(progress_path, progress)
        return not stopped

    def _part(self, prefix: bytes, group: list, shown: str, identity: str) -> Part:
        first, last = group[0].first_line, group[-1].last_line
        metadata = {"file": shown, "line": first, "last_line": last, "route": self.route}
        raw = RawMessage(part_body(prefix, group), self.content_type, metadata)
        return Part(raw, f"{identity}:{first}", (first, last), group[-1].end_offset, last)

    def _settle(self, part: Part, progress: Progress, progress_path: Path, cadence: _Cadence) -> None:
        """Count a part answered (in file order) and move the progress past it; saved after every
        refused part, and every PROGRESS_EVERY_RECORDS parts or PROGRESS_EVERY_SECONDS."""
        refused = self._account(part.raw, part.outcome(), progress, part.span)
        progress.offset, progress.line = part.end_offset, part.last_line
        cadence.unsaved += 1
        if refused or cadence.due():
            self._save_progress(progress_path, progress)
            cadence.saved()

    def _submit(self, raw: RawMessage, key: str, progress: Progress, span: tuple[int, int] | None) -> bool:
        """Submit one message and wait for its answer; True when refused (see `_account`)."""
        assert self._context is not None, "start() was not called"
        try:
            outcome: Accepted | BaseException = self._context.submit(raw, idempotency_key=key)
        except BaseException as error:  # noqa: BLE001 - _account decides
            outcome = error
        return self._account(raw, outcome, progress, span)

    def _account(self, raw: RawMessage, outcome: Accepted | BaseException, progress: Progress,
                 span: tuple[int, int] | None) -> bool:
        """Count what `submit` answered for `raw`; a refused one is dead-lettered and reported.
        True when refused; `SubmitStopped` when the bus could not store it."""
        if isinstance(outcome, Accepted):
            if outcome.message_ids:  # a part that made no message (a header only) counts for nothing
                progress.published += 1
            return False
        if isinstance(outcome, Unavailable):
            raise SubmitStopped(f"{raw.metadata.get('file')} line {raw.metadata.get('line', 1)}: {outcome}") \
                from outcome
        if not isinstance(outcome, Exception):
            raise outcome  # the worker is going away (SystemExit, KeyboardInterrupt)
        if not isinstance(outcome, InputError):  # a failure of the mapping itself
            log.error("route %s: %s line %s: submitting failed", self.route, raw.metadata.get("file"),
                      raw.metadata.get("line", 1), exc_info=outcome)
        self._dead_letter(raw, outcome)
        progress.add_problem(problem_entry(outcome, span, dead_lettered=True))
        return True

    def _open(self, claim: Claim):
        return self.store.open(claim.path, follow_symlinks=self.completeness.follow_symlinks)

    def _dead_letter(self, raw: RawMessage, error: Exception) -> None:
        dead_letter = self._context.dead_letter
        if dead_letter is None:
            raise SubmitStopped("this runtime gives polled sources no dead-letter queue; a refused part "
                                "cannot be set aside")
        try:
            dead_letter(raw, error)
        except Unavailable as failure:
            raise SubmitStopped(f"could not dead-letter a refused part: {failure}") from failure

    def _finish(self, claim: Claim, stat: Entry, progress: Progress, progress_path: Path,
                fatal: str | None) -> None:
        empty = fatal is None and not progress.refused and not progress.published
        if empty and self.options["empty_file"] == "error":
            fatal = ("the file is empty (0 bytes)" if stat.size == 0 else "the file holds no record (only a "
                     "header, or blank lines); empty_file: ignore takes such files as processed")
        if fatal is None and not progress.refused:
            self.store.move_aside(claim.path, self.processed_dir, claim.name)
            self.claims.release(claim)
            log.info("route %s: %s done, %d messages", self.route, display_name(claim.name),
                     progress.published)
        else:
            reason = "refused" if fatal is None else "empty" if empty else "unreadable"
            self._fail(claim.path, claim.name, claim, fatal, reason, progress, stat.size)
        self.store.remove(progress_path)
