"""The file source: polls a directory, claims complete files and submits them; see the package
docstring."""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from pathlib import Path

from adapters.flatfile.claims import Claim, Claims
from adapters.flatfile.progress import Progress, ProgressFiles, now_rfc3339
from adapters.flatfile.records import FileReader, MessageTooLarge, group_records, part_body
from adapters.flatfile.reports import problem_entry, write_report_and_move
from adapters.flatfile.spec import options_of
from adapters.flatfile.store import FILE, Entry, FileStore, LocalDirectory
from esb import codecs
from esb.errors import InputError, Unavailable
from esb.plugins import RawMessage, Source, SourceContext

log = logging.getLogger("esb.adapters.flatfile")

PROGRESS_EVERY_RECORDS = 500
PROGRESS_EVERY_SECONDS = 1.0
"""The confirmed offset is written after this many messages or seconds, whichever comes first (and
after every refused one); what was confirmed after it is de-duplicated by its idempotency key."""

DONE_SUFFIX = ".done"


class SubmitStopped(Exception):
    """The bus could not store a part now: the file stays claimed and is resumed next poll."""


class FileSource(Source):
    """Polls `dir` for complete files matching `pattern` and submits them; see the module docstring."""

    def __init__(self, endpoint, system: dict | None, route_name: str, *, store: FileStore | None = None):
        self.options = options_of(endpoint)
        self.route = route_name
        self.store = store or LocalDirectory()
        self.dir = Path(self.options["dir"])
        self.claims = Claims(self.store, self.dir, float(self.options["reclaim_after"]))
        self.progress_files = ProgressFiles(self.store, self.dir)
        self.processed_dir = Path(self.options["processed_dir"] or self.dir / "processed")
        self.error_dir = Path(self.options["error_dir"] or self.dir / "error")
        self.poll_interval = float(self.options["poll"])
        self.content_type = codecs.content_type(self.options["format"])
        if self.options["format"] in ("csv", "fixedwidth"):
            self.content_type += f"; charset={self.options['encoding']}"
        self._sizes: dict[str, tuple[int, int]] = {}
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
        for directory in (self.dir, self.claims.folder, self.progress_files.folder):
            self.store.make_folder(directory)

    def stop(self) -> None:
        self._stopping.set()

    # --- one poll ---------------------------------------------------------------------------
    def poll(self) -> None:
        """Resume claims, then take new complete files, until done or the bus is unavailable."""
        try:
            for claim in self.claims.to_resume(self._last_progress):
                self._process(claim)
            for name in self._complete_files():
                if self._stopping.is_set():
                    return
                claim = self._claim(self.dir / name, name)
                if claim is not None:
                    self._process(claim)
        except SubmitStopped as stopped:
            log.warning("route %s: %s; the file stays claimed and is resumed at the next poll",
                        self.route, stopped)

    def _complete_files(self) -> list[str]:
        pattern, mode = self.options["pattern"], self.options["complete_when"]
        seen: dict[str, tuple[int, int]] = {}
        names: set[str] = set()
        for entry in self.store.entries(self.dir):
            names.add(entry.name)
            if entry.name.startswith(".") or entry.name.endswith(DONE_SUFFIX):
                continue
            if not fnmatch.fnmatchcase(entry.name, pattern) or entry.kind != FILE:
                continue
            seen[entry.name] = (entry.size, entry.mtime_ns)
        ready = []
        for name, size in sorted(seen.items()):
            if mode == "rename":
                ready.append(name)
            elif mode == "done-marker":
                if name + DONE_SUFFIX in names:
                    ready.append(name)
            elif self._sizes.get(name) == size:
                ready.append(name)
        self._sizes = seen
        return ready

    def _claim(self, path: Path, name: str) -> Claim | None:
        """Claim `path` for this worker; None if another was faster."""
        claim = self.claims.take(path, name)
        if claim is None:
            return None
        if self.options["complete_when"] == "done-marker":
            # at once, so a new file of the same name is not taken before its own marker
            self.store.remove(self.dir / (name + DONE_SUFFIX))
        self._sizes.pop(name, None)
        return claim

    def _last_progress(self, claim: Claim) -> float | None:
        entry = self.store.stat(claim.path)
        return None if entry is None else self.progress_files.saved_at(self._progress_path(claim.name, entry))

    # --- one file ---------------------------------------------------------------------------
    def _progress_path(self, name: str, entry: Entry) -> Path:
        return self.progress_files.path(name, entry)

    def _save_progress(self, path: Path, progress: Progress) -> None:
        self.progress_files.save(path, progress, self.worker)

    def _process(self, claim: Claim) -> None:
        stat = self.store.stat(claim.path)
        if stat is None:
            return  # taken over meanwhile
        identity = f"{claim.name}:{stat.size}:{stat.mtime_ns}"
        progress_path = self._progress_path(claim.name, stat)
        progress = self.progress_files.load(progress_path, identity)
        fatal: str | None = None
        if stat.size == 0:
            fatal = "the file is empty (0 bytes)"
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
        with self.store.open(claim.path) as stream:
            body = stream.read(limit + 1)
        raw = RawMessage(body, self.content_type, {"file": claim.name, "route": self.route})
        self._submit(raw, progress.identity, progress, span=None)
        progress.offset, progress.line = stat.size, body.count(b"\n")
        self._save_progress(progress_path, progress)
        return None

    def _submit_parts(self, claim: Claim, progress: Progress, progress_path: Path) -> bool:
        """Submit each record or group after the saved progress; False when stopped before the end."""
        reader = FileReader(self.options)
        saved_at, unsaved = time.monotonic(), 0
        with self.store.open(claim.path) as stream:
            reader.open(stream)
            offset, line = max(progress.offset, reader.data_start), max(progress.line, reader.data_start_line)
            records = reader.records(stream, offset, line)
            groups = group_records(records, self.options["per"], self.options["group_by"],
                                   self.options["max_file_bytes"])
            try:
                for group in groups:
                    if self._stopping.is_set():
                        return False
                    first, last = group[0].first_line, group[-1].last_line
                    body = part_body(reader.prefix, group)
                    raw = RawMessage(body, self.content_type, {"file": claim.name, "line": first,
                                                               "last_line": last, "route": self.route})
                    refused = self._submit(raw, f"{progress.identity}:{first}", progress, span=(first, last))
                    progress.offset, progress.line = group[-1].end_offset, last
                    unsaved += 1
                    if refused or unsaved >= PROGRESS_EVERY_RECORDS or \
                            time.monotonic() - saved_at >= PROGRESS_EVERY_SECONDS:
                        self._save_progress(progress_path, progress)
                        saved_at, unsaved = time.monotonic(), 0
            finally:
                if unsaved:  # best effort; after a hard crash, idempotency keys cover the gap
                    self._save_progress(progress_path, progress)
        return True

    def _submit(self, raw: RawMessage, key: str, progress: Progress, span: tuple[int, int] | None) -> bool:
        """Submit one message; a refused one is dead-lettered and reported. True when refused."""
        assert self._context is not None, "start() was not called"
        try:
            self._context.submit(raw, idempotency_key=key)
        except InputError as error:
            self._dead_letter(raw, error)
            progress.add_problem(problem_entry(error, span, dead_lettered=True))
            return True
        except Unavailable as error:
            raise SubmitStopped(f"{raw.metadata.get('file')} line {raw.metadata.get('line', 1)}: {error}") \
                from error
        progress.published += 1
        return False

    def _dead_letter(self, raw: RawMessage, error: InputError) -> None:
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
        if fatal is None and not progress.refused:
            self.store.move_aside(claim.path, self.processed_dir, claim.name)
            log.info("route %s: %s done, %d messages", self.route, claim.name, progress.published)
        else:
            report = {"file": claim.name, "route": self.route, "size": stat.size, "at": now_rfc3339(),
                      "error": fatal, "published": progress.published, "refused": progress.refused,
                      "problems": progress.problems,
                      "problems_not_listed": max(0, progress.refused - len(progress.problems))}
            target = write_report_and_move(self.store, claim.path, self.error_dir, claim.name, report)
            log.warning("route %s: %s moved to %s: %s", self.route, claim.name, target,
                        fatal or f"{progress.refused} bad parts (dead-lettered)")
        self.store.remove(progress_path)
