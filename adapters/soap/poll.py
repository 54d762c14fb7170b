"""The poll source: calls an operation every `poll` seconds and submits each record it returns.

Every `poll` seconds the operation is called with `params` (plus `watermark_param` = the stored
watermark); the answer is turned into plain data and unwrapped down to its records (a wrapper
with one child is unwrapped, a list gives one record per item, anything else is one record); each
record is submitted as JSON with an idempotency key made of its content, so a record fetched twice
is stored once. The highest `watermark` value is kept in `<data_dir>/watermarks/soap-<route>.json`,
written atomically and only after every record of the poll was stored or dead-lettered.

Services answer "changed since" inclusively, so the records at the watermark come again on the
next poll. The file keeps the content digests of the records handled at the watermark, and a
record that comes again unchanged is skipped: a stored one would only be a duplicate, but a
refused one would be dead-lettered again on every poll until the watermark moves on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import jmespath
import zeep.helpers

from adapters.soap.client import OperationCaller
from esb import jsonfmt
from esb.errors import InputError, Permanent, Retryable, Unavailable
from esb.plugins import RawMessage, Source, SourceContext
from esb.watermarks import WatermarkFile

log = logging.getLogger("esb.adapters.soap")

class SoapPollSource(Source):
    """Calls the operation every `poll` seconds and submits each returned record as JSON."""

    def __init__(self, endpoint, system: dict, route_name: str):
        options = endpoint.options
        self.route = route_name
        self.operation = options["operation"]
        self.params = dict(options.get("params") or {})
        self.poll_interval = float(options["poll"])
        self.watermark_param = options.get("watermark_param")
        expression = options.get("watermark")
        self._watermark = jmespath.compile(expression) if expression else None
        self.caller = OperationCaller(system, self.operation)
        self._context: SourceContext | None = None
        self.watermarks: WatermarkFile | None = None
        self._poll_lock = threading.Lock()

    def start(self, context: SourceContext) -> None:
        self._context = context
        self.watermarks = WatermarkFile(Path(context.data_dir) / "watermarks" / f"soap-{self.route}.json",
                                        {"operation": self.operation})

    def poll(self) -> None:
        try:
            self.poll_once()
        except Exception:  # the scheduler keeps polling; this poll's records are fetched again
            log.exception("soap poll of %s failed", self.operation, extra={"route": self.route})

    def poll_once(self) -> dict[str, int]:
        """One call: submit every new record, then advance the watermark. Returns counts (for logs
        and tests): submitted, duplicate, dead_lettered, skipped (older than the watermark)."""
        with self._poll_lock:
            return self._poll()

    def _poll(self) -> dict[str, int]:
        counts = {"submitted": 0, "duplicate": 0, "dead_lettered": 0, "skipped": 0}
        stored, seen = self.watermarks.load_with_seen()
        arguments = dict(self.params)
        if self.watermark_param and stored is not None:
            arguments[self.watermark_param] = stored
        try:
            answer = self.caller.call(arguments)
        except (Retryable, Permanent) as error:
            log.warning("soap poll: %s", error, extra={"route": self.route})
            counts["failed"] = 1
            return counts
        records = [_plain(record) for record in answer_records(zeep.helpers.serialize_object(answer, dict))]
        marked = [(self._mark(record), record) for record in records]
        if stored is not None:
            fresh = [(mark, record) for mark, record in marked
                     if mark is None or _order(mark) > _order(stored)
                     or (_order(mark) == _order(stored) and _digest(record) not in seen)]
            counts["skipped"] = len(marked) - len(fresh)
            marked = fresh
        marked.sort(key=lambda pair: (pair[0] is not None, _order(pair[0])))
        highest, at_highest = stored, set(seen)
        for mark, record in marked:
            outcome = self._submit(record, mark)
            if outcome is None:
                return counts  # the bus cannot store now: keep the old watermark, fetch again later
            counts[outcome] += 1
            if mark is None:
                continue
            if highest is None or _order(mark) > _order(highest):
                highest, at_highest = mark, set()
            if _order(mark) == _order(highest):
                at_highest.add(_digest(record))
        if highest is not None and (highest != stored or at_highest != set(seen)):
            self.watermarks.save(highest, sorted(at_highest))
        return counts

    def _mark(self, record: Any) -> Any:
        if self._watermark is None:
            return None
        value = self._watermark.search(record)
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            return None
        return value

    def _submit(self, record: Any, mark: Any) -> str | None:
        context = self._context
        body = jsonfmt.dump_bytes(record)
        key = f"soap:{self.route}:{self.operation}:{_digest(record)}"
        raw = RawMessage(body, "application/json", {"operation": self.operation, "watermark": mark})
        try:
            accepted = context.submit(raw, idempotency_key=key)
        except InputError as error:
            refused = context.dead_letter_refused(raw, error, log=log, source="soap poll", item="record")
            return "dead_lettered" if refused else None
        except Unavailable as error:
            log.warning("soap poll stopped, the bus cannot store now: %s", error, extra={"route": self.route})
            return None
        return "duplicate" if accepted.duplicate else "submitted"

    def stop(self) -> None:
        self.caller.close()


def _digest(record: Any) -> str:
    """The content digest of a polled record: its idempotency key, and how the watermark file
    remembers the records at the watermark."""
    return hashlib.sha256(jsonfmt.dump_bytes(record)).hexdigest()


def answer_records(answer: Any) -> list[Any]:
    """The records of an operation's answer (plain data): wrappers with one child are unwrapped; a
    list gives one record per item; anything else is one record; nothing gives none."""
    while isinstance(answer, dict) and len(answer) == 1:
        answer = next(iter(answer.values()))
    if answer is None:
        return []
    if isinstance(answer, list):
        return [item for item in answer if item is not None]
    return [answer]


def _plain(value: Any) -> Any:
    """zeep's answer as JSON-ready data: dates and times as ISO 8601 text, bytes as hex."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _order(value: Any) -> tuple:
    """A key that orders watermark values: numbers by value, ISO 8601 times with an offset as
    instants, anything else as text."""
    if value is None:
        return (-1,)
    if isinstance(value, int | float | Decimal):
        return (0, Decimal(str(value)))
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is not None and moment.tzinfo is not None:
        return (1, moment.timestamp(), text)
    return (2, text)
