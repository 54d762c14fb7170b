"""The poll source: calls an operation every `poll` seconds and submits each record it returns.

Every `poll` seconds the operation is called with `params` (plus `watermark_param` = the stored
watermark); the answer is turned into plain data and its records are taken (`records`, a JMESPath;
by default the answer is unwrapped: a wrapper with one child is unwrapped, a list gives one record
per item, anything else is one record); each record is submitted as JSON with an idempotency key
made of its content, so a record fetched twice is stored once. With paging options (`page_param`,
or `next_page` and `page_token_param`; see `adapters.soap.paging`) one poll follows the pages,
submitting each page's records before it asks for the next. The highest `watermark` value is kept
in `<data_dir>/watermarks/soap-<route>.json`, written atomically and only after every record of
every page of the poll was stored or dead-lettered: a poll that fails half-way keeps the old
watermark, and the records it stored come again next time and are answered as duplicates.

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
from adapters.soap.paging import Pages
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
        expression = options.get("records")
        self._records = jmespath.compile(expression) if expression else None
        self.pages = Pages(options)
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
        """One poll: call the operation (once per page), submit every new record, then advance the
        watermark. Returns counts (for logs and tests): submitted, duplicate, dead_lettered, skipped
        (older than the watermark), failed (a call failed), and pages (fetched) when paging is on."""
        with self._poll_lock:
            return self._poll()

    def _poll(self) -> dict[str, int]:
        counts = {"submitted": 0, "duplicate": 0, "dead_lettered": 0, "skipped": 0}
        if self.pages.enabled:
            counts["pages"] = 0
        stored, seen = self.watermarks.load_with_seen()
        base = dict(self.params)
        if self.watermark_param and stored is not None:
            base[self.watermark_param] = stored
        progress = _Highest(stored, seen)
        self.pages.start()
        while True:
            try:
                called = self.caller.call(self.pages.arguments(base))
            except (Retryable, Permanent) as error:
                log.warning("soap poll: %s%s", error, self._page_note(), extra={"route": self.route})
                counts["failed"] = 1
                return counts  # the watermark stays: the pages before are fetched again next poll
            answer = _plain(zeep.helpers.serialize_object(called, dict))
            records = self._records_of(answer)
            if not self._submit_page(records, stored, seen, counts, progress):
                return counts  # the bus cannot store now: keep the old watermark, fetch again later
            ended = self.pages.advance(answer, records)
            if self.pages.enabled:
                counts["pages"] = self.pages.fetched
            if ended is not None:
                break
        if ended == "max_pages" or ended.startswith("the same"):
            rest = ("the rest comes at the next poll, from the watermark" if self._watermark is not None else
                    "with no watermark the next poll starts at the first page again: raise max_pages")
            log.warning("soap poll of %s stopped after %d pages: %s; %s", self.operation, self.pages.fetched,
                        ended, rest, extra={"route": self.route})
        highest, at_highest = progress.highest, progress.at_highest
        if highest is not None and (highest != stored or at_highest != set(seen)):
            self.watermarks.save(highest, sorted(at_highest))
        return counts

    def _page_note(self) -> str:
        return f" (page {self.pages.fetched + 1}; the watermark stays)" if self.pages.fetched else ""

    def _records_of(self, answer: Any) -> list[Any]:
        if self._records is None:
            return answer_records(answer)
        found = self._records.search(answer)
        if found is None:
            return []
        return [item for item in found if item is not None] if isinstance(found, list) else [found]

    def _submit_page(self, records: list[Any], stored: Any, seen: list[str], counts: dict[str, int],
                     progress: _Highest) -> bool:
        """Submit the records of one page that are newer than the stored watermark, oldest first;
        False when the bus cannot store now."""
        marked = [(self._mark(record), record) for record in records]
        if stored is not None:
            fresh = [(mark, record) for mark, record in marked
                     if mark is None or _order(mark) > _order(stored)
                     or (_order(mark) == _order(stored) and _digest(record) not in seen)]
            counts["skipped"] += len(marked) - len(fresh)
            marked = fresh
        marked.sort(key=lambda pair: (pair[0] is not None, _order(pair[0])))
        for mark, record in marked:
            outcome = self._submit(record, mark)
            if outcome is None:
                return False
            counts[outcome] += 1
            if mark is not None:
                progress.add(mark, record)
        return True

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


class _Highest:
    """The highest watermark value of a poll so far and the digests of the records at it."""

    def __init__(self, stored: Any, seen: list[str]):
        self.highest, self.at_highest = stored, set(seen)

    def add(self, mark: Any, record: Any) -> None:
        if self.highest is None or _order(mark) > _order(self.highest):
            self.highest, self.at_highest = mark, set()
        if _order(mark) == _order(self.highest):
            self.at_highest.add(_digest(record))


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
