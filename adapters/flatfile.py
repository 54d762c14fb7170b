"""Flat files in a directory: poll for new files (a source), write one file per message or a batch
per interval (a sink). Formats: CSV, fixed-width records, JSON, XML.

The source, at each poll:

1. resumes its own claims and stale ones (a worker on this host that died, or any worker silent
   for `reclaim_after`);
2. lists `dir` for `pattern` (dot-files and `*.done` markers are never taken) and keeps the
   complete files (`complete_when`);
3. claims each by `os.rename` into `<dir>/.claimed/<name>.claim.<ms>.<pid>.<token>.<host>`: the
   rename is atomic, so of two workers only one gets a file;
4. submits one message per file, record or group, in file order, each with the idempotency key
   `<name>:<size>:<mtime_ns>[:<first line>]`, so a resumed or re-posted file publishes nothing twice;
5. remembers the confirmed byte offset and line in `<dir>/.progress/` (beside the claims rather
   than in the worker's data_dir, so that a worker on another host taking over a stale claim
   resumes from it too);
6. moves the file to `processed_dir`, or to `error_dir` with `<name>.error.json` beside it naming
   each bad line when any part was refused (each refused part went to the dead-letter queue).

Records are streamed: one record (or group) is in memory at a time, whatever the file's size. A
refused record does not stop the file: the others are still published. A record or group is
sent as the file's own bytes (the CSV header line, then its lines), so the route's mapping
decodes it exactly as it would decode the whole file.

The sink writes each message under a temporary dot-name, fsyncs it and links it to its final
name (never overwriting another file), or appends it to a batch file that is renamed when
`batch_interval` has passed. `deliver` returns only after the data is on disk (fsync), so a
message is never acked before it is durable.

Keywords `x-esb-*`: see adapters/rest.py.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import jmespath

from esb import codecs
from esb.codecs import UTF8_BOM, decoding_for
from esb.durations import duration_option
from esb.errors import InputError, Permanent, Retryable, Unavailable
from esb.plugins import AdapterSpec, RawMessage, Sink, Source, SourceContext, register

log = logging.getLogger("esb.adapters.flatfile")

DEFAULT_POLL = 10.0
"""Seconds between two scans of a source directory."""

DEFAULT_MAX_FILE_BYTES = 52_428_800
"""Largest message a source reads (50 MiB): the whole file with per: file, one record or group
otherwise; a larger one sends the file to error_dir with a report."""

DEFAULT_RECLAIM_AFTER = 600.0
"""Seconds after which a claim whose worker shows no progress is taken over by another worker."""

PROGRESS_EVERY_RECORDS = 500
PROGRESS_EVERY_SECONDS = 1.0
"""The confirmed offset is written after this many messages or seconds, whichever comes first (and
after every refused one); what was confirmed after it is de-duplicated by its idempotency key."""

MAX_REPORTED_PROBLEMS = 1000
"""Bad lines listed in an error report; further ones are only counted."""

MAX_LISTED_LINES = 100
"""A bad part of more lines than this is reported by its first and last line only."""

BATCH_RECOVERY_GRACE = 60.0
"""Seconds past batch_interval after which a batch file left by a dead worker is finished."""

CLAIMS_DIR = ".claimed"
PROGRESS_DIR = ".progress"
DONE_SUFFIX = ".done"
CLAIM_MARK = ".claim."

EXTENSIONS = {"csv": "csv", "fixedwidth": "txt", "json": "json", "xml": "xml"}


ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "from: pick up files from a directory; to: write files into a directory.",
    "x-esb-source": True,
    "x-esb-sink": True,
    "additionalProperties": False,
    "required": ["dir"],
    "properties": {
        "dir": {"type": "string", "x-esb-path": True,
                "description": "Directory to read from or write to, relative to the routes file."},
        "format": {"enum": codecs.formats(), "default": "csv",
                   "description": "File format; a fixed-width layout is declared in the mapping file."},
        "encoding": {"type": "string", "default": "utf-8",
                     "description": "Text encoding, a Python codec name (utf-8, gbk, gb2312, cp1252, ...); "
                                    "a byte order mark is honoured. A destination re-encodes the rendered "
                                    "(UTF-8) document into it; leave utf-8 when the outbound mapping "
                                    "already writes the target's encoding."},
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ",",
                      "description": "CSV field separator (one character, e.g. ; or a tab)."},
        # source options
        "pattern": {"type": "string", "default": "*", "x-esb-role": "source",
                    "description": "Glob of the file names to pick up, e.g. GR_*.csv. Names starting with "
                                   "a dot and *.done markers are never picked up."},
        "poll": duration_option(
            "Seconds between two scans of dir, or a duration such as 10s.", DEFAULT_POLL,
            **{"x-esb-role": "source"}),
        "complete_when": {"enum": ["size-stable", "done-marker", "rename"], "default": "size-stable",
                          "x-esb-role": "source",
                          "description": "When a file counts as fully written: size-stable (same size on "
                                         "two scans), done-marker (a <name>.done file appears beside it), "
                                         "rename (the writer renames it to match pattern when done)."},
        "processed_dir": {"type": ["string", "null"], "default": None, "x-esb-path": True,
                          "x-esb-role": "source",
                          "description": "Where a file goes once every message in it is stored; default: "
                                         "<dir>/processed."},
        "error_dir": {"type": ["string", "null"], "default": None, "x-esb-path": True, "x-esb-role": "source",
                      "description": "Where a file with a bad part goes, with a <name>.error.json report "
                                     "beside it naming each bad line; default: <dir>/error."},
        "per": {"enum": ["file", "record", "group"], "default": "file", "x-esb-role": "source",
                "description": "One message per file, per record (line), or per group of records with the "
                               "same group_by value (e.g. the lines of one receipt)."},
        "group_by": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                     "description": "CSV column whose value groups consecutive records into one message "
                                    "(per: group)."},
        "group_starts_with": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                              "description": "per: group: a line starting with this text (e.g. the header "
                                             "record type H of a fixed-width file) begins a new group."},
        "header": {"type": "boolean", "default": True, "x-esb-role": "source",
                   "description": "The first CSV line names the columns; with per: record or group it is "
                                  "sent before the lines of each message."},
        "max_file_bytes": {"type": "integer", "minimum": 1, "default": DEFAULT_MAX_FILE_BYTES,
                           "x-esb-role": "source",
                           "description": "Largest message read, in bytes: the whole file with per: file, "
                                          "one record or group otherwise; a larger one sends the file to "
                                          "error_dir."},
        "reclaim_after": duration_option(
            "Seconds (or a duration such as 10m) after which a file claimed by a "
            "worker that shows no progress is taken over by another.",
            DEFAULT_RECLAIM_AFTER, **{"x-esb-role": "source"}),
        # sink options
        "name_template": {"type": "string", "default": "{type}_{id}.{ext}", "x-esb-role": "sink",
                          "description": "Name of each written file; placeholders: {type}, {id}, "
                                         "{correlation_id}, {source}, {ext}, {timestamp} (UTC, "
                                         "YYYYmmddTHHMMSS; {timestamp:%Y%m%d} for another strftime form), "
                                         "{route} (when the runtime passes it), and any payload field by "
                                         "name or dotted path ({receipt_number}, {payload.warehouse}). "
                                         "Files are written under a temporary name and renamed."},
        "line_ending": {"enum": ["lf", "crlf"], "default": "lf", "x-esb-role": "sink",
                        "description": "Line ending of written text files."},
        "batch_interval": duration_option(
            "Collect the messages of this many seconds (or a duration such as 5m) "
            "into one file; default: one file per message.", None,
            **{"x-esb-role": "sink"}),
    },
}


def _options(endpoint) -> dict[str, Any]:
    options = {name: spec.get("default") for name, spec in ENDPOINT_SCHEMA["properties"].items()}
    options.update(endpoint.options)
    return options


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """Options that only make sense together. Directories may be created later: not checked."""
    options = endpoint.options
    problems = []
    per, file_format = options.get("per", "file"), options.get("format", "csv")
    if per in ("record", "group") and file_format not in ("csv", "fixedwidth"):
        problems.append(f"per: {per} needs format csv or fixedwidth ({file_format} files are read whole)")
    if per == "group" and not (options.get("group_by") or options.get("group_starts_with")):
        problems.append("per: group needs group_by: (the CSV column whose value groups records) or "
                        "group_starts_with: (the text that starts a group's first line)")
    if options.get("group_by") and options.get("group_starts_with"):
        problems.append("use group_by or group_starts_with, not both")
    if (options.get("group_by") or options.get("group_starts_with")) and per != "group":
        problems.append("group_by and group_starts_with are used only with per: group")
    if options.get("group_by") and (file_format != "csv" or not options.get("header", True)):
        problems.append("group_by names a column of a CSV file with a header; for fixed-width files use "
                        "group_starts_with")
    template = options.get("name_template")
    if template is not None:
        problems.extend(_template_problems(template))
    try:
        decoding_for(options.get("encoding") or "utf-8")
    except LookupError:
        problems.append(f"unknown encoding {options.get('encoding')!r} (a Python codec name such as utf-8, "
                        f"gbk, cp1252)")
    return problems


# --- claims ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Claim:
    """A file claimed by a worker: `<dir>/.claimed/<name>.claim.<ms>.<pid>.<token>.<host>`."""

    path: Path
    name: str  # the file's name in dir
    claimed_ms: int
    pid: int
    token: str
    host: str

    @property
    def worker(self) -> str:
        return f"{self.pid}.{self.token}.{self.host}"

    @classmethod
    def parse(cls, path: Path) -> Claim | None:
        name, mark, rest = path.name.rpartition(CLAIM_MARK)
        parts = rest.split(".", 3)
        if not mark or not name or len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        return cls(path, name, int(parts[0]), int(parts[1]), parts[2], parts[3])


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    return True


# --- reading records as a stream -------------------------------------------------------------

class MessageTooLarge(Exception):
    """A record or group larger than max_file_bytes (often an unterminated quote)."""


@dataclass(slots=True)
class Record:
    """One record of a file: its raw bytes, where it is, and its group key (None: joins the group)."""

    raw: bytes
    first_line: int
    last_line: int
    end_offset: int  # byte offset just after it
    key: Any = None


class _RawLines:
    """The physical lines of a binary stream as text (for csv.reader), keeping their raw bytes
    since the last `take()` and counting lines and bytes."""

    def __init__(self, stream: BinaryIO, encoding: str, limit: int, line: int = 0, offset: int = 0):
        self.stream = stream
        self.encoding = encoding
        self.limit = limit
        self.line = line
        self.offset = offset
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.stream.readline(self.limit - self._pending_bytes + 1)
        if not raw:
            raise StopIteration
        self.line += 1
        self.offset += len(raw)
        self._pending.append(raw)
        self._pending_bytes += len(raw)
        if self._pending_bytes > self.limit:
            raise MessageTooLarge(f"the record starting at line {self.line - len(self._pending) + 1} is "
                                  f"larger than max_file_bytes ({self.limit} bytes); an unterminated quote?")
        # undecodable bytes are the mapping's to report (with the rest of its error); here only the
        # quotes and delimiters matter
        return raw.decode(self.encoding, errors="replace")

    def take(self) -> bytes:
        raw = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return raw


@dataclass(slots=True)
class FileReader:
    """Opens a claimed file for per: record / per: group: the prefix every message starts with
    (the byte order mark and the CSV header line), then the records from an offset."""

    options: dict[str, Any]
    prefix: bytes = b""
    data_start: int = 0  # offset of the first record
    data_start_line: int = 0
    encoding: str = "utf-8"
    _group_column: int | None = field(default=None)

    def open(self, stream: BinaryIO) -> None:
        """Read the byte order mark and (CSV) the header."""
        self.encoding = decoding_for(self.options["encoding"])
        head = stream.read(4)
        bom = b""
        if head.startswith(UTF8_BOM):
            bom, self.encoding = UTF8_BOM, "utf-8"  # a UTF-8 BOM wins over the declared encoding
            self.prefix = UTF8_BOM  # repeated in every message, so each decodes as the file does
        elif head.decode(self.encoding, errors="ignore").startswith("\ufeff"):
            bom = "\ufeff".encode(self.encoding)  # e.g. GB18030's: dropped, the declared codec reads it
        stream.seek(len(bom))
        self.data_start = len(bom)
        if self.options["format"] == "csv" and self.options["header"]:
            lines = _RawLines(stream, self.encoding, self.options["max_file_bytes"], 0, len(bom))
            try:
                for row in self._csv_reader(lines):
                    if row:
                        self._group_column = self._column_of(row)
                        break
            except csv.Error as error:
                raise InputError(f"CSV line {lines.line}: the header cannot be read: {error}") from None
            self.prefix += lines.take()
            self.data_start, self.data_start_line = lines.offset, lines.line

    def _csv_reader(self, lines: _RawLines):
        return csv.reader(lines, delimiter=self.options["delimiter"], quotechar='"', strict=True)

    def _column_of(self, header: list[str]) -> int | None:
        column = self.options.get("group_by")
        if not column:
            return None
        names = [name.strip().lstrip("\ufeff") for name in header]
        if column not in names:
            raise InputError(f"the header has no column {column!r} to group by; columns: {', '.join(names)}")
        return names.index(column)

    def records(self, stream: BinaryIO, offset: int, line: int) -> Iterator[Record]:
        stream.seek(offset)
        lines = _RawLines(stream, self.encoding, self.options["max_file_bytes"], line, offset)
        if self.options["format"] == "csv":
            yield from self._csv_records(lines)
        else:
            yield from self._fixed_records(lines)

    def _csv_records(self, lines: _RawLines) -> Iterator[Record]:
        reader = self._csv_reader(lines)
        while True:
            first = lines.line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                # a malformed record still goes to the mapping, whose error names it; its lines
                # travel with the current group
                yield Record(lines.take(), first, lines.line, lines.offset)
                continue
            raw = lines.take()
            if not row:
                continue  # a blank line
            column = self._group_column
            key = row[column] if column is not None and column < len(row) else None
            yield Record(raw, first, lines.line, lines.offset, key)

    def _fixed_records(self, lines: _RawLines) -> Iterator[Record]:
        starts = self.options.get("group_starts_with")
        marker = starts.encode(self.encoding) if starts else None
        for _ in lines:
            raw = lines.take()
            if not raw.strip():
                continue
            key = object() if marker is not None and raw.startswith(marker) else None
            yield Record(raw, lines.line, lines.line, lines.offset, key)


def group_records(records: Iterator[Record], per: str, group_by: str | None,
                  limit: int) -> Iterator[list[Record]]:
    """per: record: each record alone; per: group: runs of records that belong together (the same
    group_by value, or from one group_starts_with line to the next)."""
    if per == "record":
        for record in records:
            yield [record]
        return
    group: list[Record] = []
    size = 0
    current: Any = None
    for record in records:
        starts_new = record.key is not None and (group_by is None or record.key != current)
        if starts_new and group:
            yield group
            group, size = [], 0
        if record.key is not None:
            current = record.key
        group.append(record)
        size += len(record.raw)
        if size > limit:
            raise MessageTooLarge(f"the group starting at line {group[0].first_line} is larger than "
                                  f"max_file_bytes ({limit} bytes)")
    if group:
        yield group


def part_body(prefix: bytes, group: list[Record]) -> bytes:
    """The message of a record or group: the prefix, then its records, with an empty line for
    each blank line of the file between them, so that the mapping, told the first record's line
    (metadata ``line``), counts every record's line in the file."""
    parts = [prefix]
    for index, record in enumerate(group):
        if index:
            parts.append(b"\n" * max(record.first_line - group[index - 1].last_line - 1, 0))
        parts.append(record.raw)
    return b"".join(parts)


# --- progress and the error report -----------------------------------------------------------

@dataclass
class Progress:
    """What is done of a claimed file; saved beside the claims so any worker can resume it."""

    identity: str
    offset: int = 0
    line: int = 0
    published: int = 0
    refused: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add_problem(self, entry: dict[str, Any]) -> None:
        self.refused += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(entry)


def _problem_entry(error: BaseException, span: tuple[int, int] | None, dead_lettered: bool) -> dict[str, Any]:
    """One bad part of a file for the report: its lines, what is wrong, and whether its raw bytes
    went to the dead-letter queue. `span` is (first, last line); None: the lines the error names."""
    if span is None:  # per: file
        lines = sorted({int(number) for number in re.findall(r"\bline (\d+)", str(error))})
    else:
        lines = list(range(span[0], span[1] + 1))
    entry: dict[str, Any] = {"line": lines[0] if lines else None, "last_line": lines[-1] if lines else None,
                             "lines": lines if len(lines) <= MAX_LISTED_LINES else None,
                             "error": getattr(error, "kind", type(error).__name__),
                             "message": getattr(error, "message", str(error))}
    problems = getattr(error, "problems", None)
    if problems:
        entry["problems"] = [problem.as_dict() for problem in problems]
    entry["dead_lettered"] = dead_lettered
    return entry


def _write_json_atomically(path: Path, document: Any) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _move_aside(path: Path, directory: Path, name: str) -> Path:
    """Move `path` to `directory/name`, adding a UTC time when that name is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.exists():
        stem, dot, suffix = name.rpartition(".")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = directory / (f"{stem}.{stamp}.{suffix}" if dot and stem else f"{name}.{stamp}")
    try:
        os.rename(path, target)
    except OSError:  # another file system
        shutil.move(str(path), str(target))
    return target


# --- the source ------------------------------------------------------------------------------

class SubmitStopped(Exception):
    """The bus could not store a part now: the file stays claimed and is resumed next poll."""


class FileSource(Source):
    """Polls `dir` for complete files matching `pattern` and submits them; see the module docstring."""

    def __init__(self, endpoint, system: dict | None, route_name: str):
        self.options = _options(endpoint)
        self.route = route_name
        self.dir = Path(self.options["dir"])
        self.claims_dir = self.dir / CLAIMS_DIR
        self.progress_dir = self.dir / PROGRESS_DIR
        self.processed_dir = Path(self.options["processed_dir"] or self.dir / "processed")
        self.error_dir = Path(self.options["error_dir"] or self.dir / "error")
        self.poll_interval = float(self.options["poll"])
        self.reclaim_after = float(self.options["reclaim_after"])
        self.pid, self.token, self.host = os.getpid(), secrets.token_hex(3), _host()
        self.content_type = codecs.content_type(self.options["format"])
        if self.options["format"] in ("csv", "fixedwidth"):
            self.content_type += f"; charset={self.options['encoding']}"
        self._sizes: dict[str, tuple[int, int]] = {}
        self._stopping = threading.Event()
        self._context: SourceContext | None = None

    @property
    def worker(self) -> str:
        return f"{self.pid}.{self.token}.{self.host}"

    def start(self, context: SourceContext) -> None:
        self._context = context
        for directory in (self.dir, self.claims_dir, self.progress_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        self._stopping.set()

    # --- one poll ---------------------------------------------------------------------------
    def poll(self) -> None:
        """Resume claims, then take new complete files, until done or the bus is unavailable."""
        try:
            for claim in self._claims_to_resume():
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
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return []
        for entry in entries:
            names.add(entry.name)
            if entry.name.startswith(".") or entry.name.endswith(DONE_SUFFIX):
                continue
            if not fnmatch.fnmatchcase(entry.name, pattern) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # another worker claimed it since the scan
            seen[entry.name] = (stat.st_size, stat.st_mtime_ns)
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
        """Rename `path` into the claims folder under this worker's name; None if another was faster."""
        claimed_ms = int(time.time() * 1000)
        target = self.claims_dir / f"{name}{CLAIM_MARK}{claimed_ms}.{self.worker}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None  # another worker claimed it first
        if self.options["complete_when"] == "done-marker":
            # at once, so a new file of the same name is not taken before its own marker
            (self.dir / (name + DONE_SUFFIX)).unlink(missing_ok=True)
        self._sizes.pop(name, None)
        return Claim(target, name, claimed_ms, self.pid, self.token, self.host)

    def _claims_to_resume(self) -> list[Claim]:
        try:
            paths = sorted(self.claims_dir.iterdir())
        except FileNotFoundError:
            return []
        resumable = []
        for path in paths:
            claim = Claim.parse(path)
            if claim is None:
                continue
            if claim.worker == self.worker:
                resumable.append(claim)
            elif self._is_stale(claim):
                taken = self._claim(path, claim.name)
                if taken is not None:
                    log.warning("route %s: resuming %s, claimed by worker %s that stopped", self.route,
                                claim.name, claim.worker)
                    resumable.append(taken)
        return resumable

    def _is_stale(self, claim: Claim) -> bool:
        if claim.host == self.host and claim.pid != self.pid and not _process_alive(claim.pid):
            return True
        last_sign_of_life = claim.claimed_ms / 1000
        try:
            stat = claim.path.stat()
            last_sign_of_life = max(last_sign_of_life, self._progress_path(claim.name, stat).stat().st_mtime)
        except FileNotFoundError:
            pass
        return time.time() - last_sign_of_life >= self.reclaim_after

    # --- one file ---------------------------------------------------------------------------
    def _progress_path(self, name: str, stat: os.stat_result) -> Path:
        return self.progress_dir / f"{name}.{stat.st_size}.{stat.st_mtime_ns}.json"

    def _load_progress(self, path: Path, identity: str) -> Progress:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return Progress(identity)
        if data.get("identity") != identity:
            return Progress(identity)
        return Progress(identity, int(data["offset"]), int(data["line"]), int(data.get("published", 0)),
                        int(data.get("refused", 0)), list(data.get("problems", [])))

    def _save_progress(self, path: Path, progress: Progress) -> None:
        _write_json_atomically(path, {**progress.__dict__, "worker": self.worker, "saved_at": _now_rfc3339()})

    def _process(self, claim: Claim) -> None:
        try:
            stat = claim.path.stat()
        except FileNotFoundError:
            return  # taken over meanwhile
        identity = f"{claim.name}:{stat.st_size}:{stat.st_mtime_ns}"
        progress_path = self._progress_path(claim.name, stat)
        progress = self._load_progress(progress_path, identity)
        fatal: str | None = None
        if stat.st_size == 0:
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

    def _submit_whole_file(self, claim: Claim, stat: os.stat_result, progress: Progress,
                           progress_path: Path) -> str | None:
        limit = self.options["max_file_bytes"]
        if stat.st_size > limit:
            return f"the file is {stat.st_size} bytes, larger than max_file_bytes ({limit} bytes)"
        if progress.offset >= stat.st_size:
            return None  # done before a crash; only the move was missing
        body = claim.path.read_bytes()
        raw = RawMessage(body, self.content_type, {"file": claim.name, "route": self.route})
        self._submit(raw, progress.identity, progress, span=None)
        progress.offset, progress.line = stat.st_size, body.count(b"\n")
        self._save_progress(progress_path, progress)
        return None

    def _submit_parts(self, claim: Claim, progress: Progress, progress_path: Path) -> bool:
        """Submit each record or group after the saved progress; False when stopped before the end."""
        reader = FileReader(self.options)
        saved_at, unsaved = time.monotonic(), 0
        with open(claim.path, "rb") as stream:
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
            progress.add_problem(_problem_entry(error, span, dead_lettered=True))
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

    def _finish(self, claim: Claim, stat: os.stat_result, progress: Progress, progress_path: Path,
                fatal: str | None) -> None:
        if fatal is None and not progress.refused:
            target = _move_aside(claim.path, self.processed_dir, claim.name)
            log.info("route %s: %s done, %d messages", self.route, claim.name, progress.published)
        else:
            self.error_dir.mkdir(parents=True, exist_ok=True)
            target = self._target_name(self.error_dir, claim.name)
            report = {"file": claim.name, "moved_to": str(target), "route": self.route,
                      "size": stat.st_size, "at": _now_rfc3339(), "error": fatal,
                      "published": progress.published, "refused": progress.refused,
                      "problems": progress.problems,
                      "problems_not_listed": max(0, progress.refused - len(progress.problems))}
            _write_json_atomically(target.with_name(target.name + ".error.json"), report)
            _move_aside(claim.path, self.error_dir, target.name)
            log.warning("route %s: %s moved to %s: %s", self.route, claim.name, target,
                        fatal or f"{progress.refused} bad parts (dead-lettered)")
        progress_path.unlink(missing_ok=True)

    @staticmethod
    def _target_name(directory: Path, name: str) -> Path:
        target = directory / name
        if target.exists() or target.with_name(name + ".error.json").exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = directory / f"{name}.{stamp}"
        return target


# --- the sink --------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^{}]*))?\}")
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
ENVELOPE_FIELDS = ("id", "type", "correlation_id", "causation_id", "source", "schema_version")


def _template_problems(template: str) -> list[str]:
    leftover = _PLACEHOLDER.sub("", template)
    if "{" in leftover or "}" in leftover:
        return [f"name_template {template!r}: a placeholder is {{name}} or {{timestamp:%Y%m%d}}"]
    if "/" in template or "\\" in template:
        return [f"name_template {template!r}: a file name, without a directory"]
    return []


def _safe_part(text: str) -> str:
    """A value fit for a file name: no path separators or control characters."""
    text = _UNSAFE.sub("_", text).strip()
    return "_" if text in ("", ".", "..") else text


@dataclass(slots=True)
class _Batch:
    path: Path  # the temporary dot-name it grows under
    name: str  # its final name
    handle: BinaryIO
    opened: float  # time.monotonic()
    header: bytes | None = None
    count: int = 0


class FileSink(Sink):
    """Writes each message to `dir`, atomically, or appends it to a batch file; see the module docstring.

    Parameters: `endpoint` (options as in ENDPOINT_SCHEMA), `system` (unused), `route_name`
    (fills {route}; None when the runtime does not pass it)."""

    def __init__(self, endpoint, system: dict | None = None, *, route_name: str | None = None):
        options = _options(endpoint)
        self.dir = Path(options["dir"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self.template = options["name_template"]
        problems = _template_problems(self.template)
        if "{route" in self.template and route_name is None:
            problems.append(f"name_template {self.template!r}: this runtime does not give sinks their route, "
                            "so {route} cannot be filled")
        if problems:
            raise ValueError("; ".join(problems))
        self.route = route_name
        self.format = options["format"]
        self.encoding = options["encoding"]
        self._utf8 = decoding_for(self.encoding) == "utf-8"
        self.line_ending = b"\r\n" if options["line_ending"] == "crlf" else b"\n"
        self.batch_interval = options.get("batch_interval")
        self._lock = threading.Lock()
        self._batch: _Batch | None = None
        self._timer: threading.Timer | None = None
        if self.batch_interval:
            self._finish_abandoned_batches()

    # --- names and bytes ----------------------------------------------------------------------
    def file_name(self, envelope, moment: datetime) -> str:
        values = {name: getattr(envelope, name, None) for name in ENVELOPE_FIELDS}
        values.update(route=self.route, ext=EXTENSIONS[self.format])

        def fill(match: re.Match) -> str:
            name, form = match.group(1), match.group(2)
            if name == "timestamp":
                return moment.strftime(form or "%Y%m%dT%H%M%S")
            if name in values:
                value = values[name]
            else:
                path = name.removeprefix("payload.")
                value = jmespath.search(path, envelope.payload)
            if value is None:
                raise Permanent(f"name_template {self.template!r}: the message has no {name!r}")
            return _safe_part(format(value, form) if form else str(value))

        return _safe_part(_PLACEHOLDER.sub(fill, self.template))

    def converted(self, body: bytes) -> bytes:
        """`body` with the configured line endings, in the configured encoding."""
        if self._utf8:
            return body.replace(b"\r\n", b"\n").replace(b"\n", self.line_ending)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Permanent(f"the rendered document is not UTF-8 (byte {body[error.start]:#04x} at "
                            f"{error.start}), so it cannot be re-encoded to {self.encoding}; let the "
                            f"outbound mapping or this destination encode, not both") from None
        text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\n", self.line_ending.decode())
        try:
            return text.encode(self.encoding)
        except UnicodeEncodeError as error:
            raise Permanent(f"{text[error.start]!r} cannot be written in {self.encoding} "
                            f"(character {error.start})") from None

    # --- delivering ---------------------------------------------------------------------------
    def deliver(self, envelope, body: bytes, content_type: str) -> str | None:
        data = self.converted(body)
        if self.batch_interval:
            return self._append(envelope, data)
        try:
            return write_atomically(self.dir, self.file_name(envelope, datetime.now(UTC)), data).name
        except OSError as error:
            raise Retryable(f"cannot write into {self.dir}: {error}") from error

    def _append(self, envelope, data: bytes) -> str:
        with self._lock:
            batch = self._batch
            if batch is not None and time.monotonic() - batch.opened >= self.batch_interval:
                self._close_batch()
                batch = None
            if batch is None:
                batch = self._open_batch(envelope)
            if self.format == "csv":
                first_line = data.split(b"\n", 1)[0] + b"\n"
                if batch.header is None:
                    batch.header = first_line
                elif data.startswith(batch.header):
                    data = data[len(batch.header):]  # one header per batch file
            position = batch.handle.tell()
            try:
                batch.handle.write(data)
                batch.handle.flush()
                os.fsync(batch.handle.fileno())
            except OSError as error:
                with contextlib.suppress(OSError):
                    batch.handle.truncate(position)  # no half message in the batch
                raise Retryable(f"cannot append to {batch.path}: {error}") from error
            batch.count += 1
            return batch.name

    def _open_batch(self, envelope) -> _Batch:
        name = self.file_name(envelope, datetime.now(UTC))
        path = self.dir / f".{name}.batch-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            handle = open(path, "xb")  # noqa: SIM115 - lives as long as the batch
        except OSError as error:
            raise Retryable(f"cannot create a batch file in {self.dir}: {error}") from error
        self._batch = _Batch(path, name, handle, time.monotonic())
        self._timer = threading.Timer(self.batch_interval, self._close_when_due)
        self._timer.daemon = True
        self._timer.start()
        return self._batch

    def _close_when_due(self) -> None:
        with self._lock:
            batch = self._batch
            if batch is not None and time.monotonic() - batch.opened >= self.batch_interval * 0.99:
                self._close_batch()

    def _close_batch(self) -> None:
        batch, self._batch = self._batch, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if batch is None:
            return
        batch.handle.close()
        try:
            final = _link_no_overwrite(batch.path, self.dir, batch.name)
        except OSError:
            log.exception("cannot finish the batch file %s; it is finished at the next start", batch.path)
            return
        log.info("batch file %s written: %d messages", final, batch.count)

    def _finish_abandoned_batches(self) -> None:
        """Batch files of a worker that stopped (their messages were acked): give them their names."""
        deadline = time.time() - self.batch_interval - BATCH_RECOVERY_GRACE
        for path in self.dir.glob(".*.batch-*"):
            try:
                if path.stat().st_mtime > deadline:
                    continue  # a live worker's
                name = path.name[1:].rsplit(".batch-", 1)[0]
                final = _link_no_overwrite(path, self.dir, name)
            except OSError as error:
                log.warning("cannot finish the abandoned batch file %s: %s", path, error)
                continue
            log.warning("finished the batch file %s left by a stopped worker", final)

    def close(self) -> None:
        with self._lock:
            self._close_batch()


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` to `directory/name` under a temporary dot-name, fsync it, then link it to its
    name; a file already there with other content keeps its name and this one gets `-2`, `-3`..."""
    temporary = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    with open(temporary, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return _link_no_overwrite(temporary, directory, name, data)


def _link_no_overwrite(temporary: Path, directory: Path, name: str, data: bytes | None = None) -> Path:
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    try:
        for attempt in range(1, 1000):
            numbered = f"{stem}-{attempt}.{suffix}" if suffix else f"{stem}-{attempt}"
            target = directory / (name if attempt == 1 else numbered)
            try:
                os.link(temporary, target)
            except FileExistsError:
                if data is not None and target.stat().st_size == len(data) and target.read_bytes() == data:
                    return target  # the same message, delivered again
                continue
            except OSError:  # no hard links here (some network shares): rename, if still free
                if target.exists():
                    continue
                os.replace(temporary, target)
            _fsync_directory(directory)
            return target
        raise OSError(f"no free name for {name} in {directory}")
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


register(AdapterSpec(
    name="file",
    summary="Flat files (CSV, fixed-width, JSON, XML) picked up from or written to a directory",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema={"type": "object", "additionalProperties": False, "properties": {},
                   "description": "The file adapter has no system settings."},
    source_factory=FileSource,
    sink_factory=lambda endpoint, system, route_name=None: FileSink(endpoint, system, route_name=route_name),
    check=check_endpoint,
))
