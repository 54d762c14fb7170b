"""The file sink: one file per message, written atomically, or a batch file per interval."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import jmespath

from adapters.flatfile.names import ENVELOPE_FIELDS, PLACEHOLDER, safe_part, template_problems
from adapters.flatfile.spec import options_of
from esb.atomicfile import link_new, write_new
from esb.codecs import decoding_for
from esb.errors import Permanent, Retryable
from esb.plugins import Sink

log = logging.getLogger("esb.adapters.flatfile")

BATCH_RECOVERY_GRACE = 60.0
"""Seconds past batch_interval after which a batch file left by a dead worker is finished."""

EXTENSIONS = {"csv": "csv", "fixedwidth": "txt", "json": "json", "xml": "xml", "x12": "edi", "edifact": "edi"}


@dataclass(slots=True)
class _Batch:
    path: Path  # the temporary dot-name it grows under
    name: str  # its final name
    handle: BinaryIO
    opened: float  # time.monotonic()
    header: bytes | None = None
    count: int = 0


def _as_datetime(text: str, name: str, template: str) -> datetime:
    """A field given a strftime form ({received_at:%Y%m%d}): an RFC 3339 time or a date."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Permanent(f"name_template {template!r}: {name!r} is {text!r}, not a date or time for "
                        f"its strftime form") from None


class FileSink(Sink):
    """Writes each message to `dir`, atomically, or appends it to a batch file; see the module docstring.

    Parameters: `endpoint` (options as in ENDPOINT_SCHEMA), `system` (unused), `route_name`
    (fills {route}; None when the runtime does not pass it)."""

    def __init__(self, endpoint, system: dict | None = None, *, route_name: str | None = None):
        options = options_of(endpoint)
        self.dir = Path(options["dir"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self._configure(options, route_name)
        self.batch_interval = options.get("batch_interval")
        self._lock = threading.Lock()
        self._batch: _Batch | None = None
        self._timer: threading.Timer | None = None
        if self.batch_interval:
            self._finish_abandoned_batches()

    def _configure(self, options: dict, route_name: str | None) -> None:
        """The name template and the bytes written: what every sink of files shares (SFTP too)."""
        self.template = options["name_template"]
        problems = template_problems(self.template)
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
            if form and "%" in form and isinstance(value, str):
                value = _as_datetime(value, name, self.template)
            try:
                return safe_part(format(value, form) if form else str(value))
            except (ValueError, TypeError) as error:
                raise Permanent(f"name_template {self.template!r}: {{{name}:{form}}}: {error}") from None

        return safe_part(PLACEHOLDER.sub(fill, self.template))

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
            return write_new(self.dir, self.file_name(envelope, datetime.now(UTC)), data).name
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
            final = link_new(batch.path, self.dir, batch.name)
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
                final = link_new(path, self.dir, name)
            except OSError as error:
                log.warning("cannot finish the abandoned batch file %s: %s", path, error)
                continue
            log.warning("finished the batch file %s left by a stopped worker", final)

    def close(self) -> None:
        with self._lock:
            self._close_batch()
