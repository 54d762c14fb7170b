"""What both table source modes share: the engine, the layout read from the database (at the first
poll that reaches it), `/readyz`, the poll loop and submitting documents with ids derived from
their rows (`adapters.table.documents.Layout.identity`)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from adapters.table.documents import Document, Layout, message_id
from adapters.table.engine import LayoutError, database_url, engine_for, unreachable
from esb import jsonfmt
from esb.errors import InputError, Unavailable
from esb.plugins import RawMessage, Source, SourceContext

log = logging.getLogger("esb.adapters.table")


class TableSource(Source):
    """What both source modes share: the engine, the layout read from the database (at the first
    poll that reaches it), readiness, and submitting one document."""

    mode = "claim"

    def __init__(self, endpoint, system: dict, route_name: str):
        self.options = options = endpoint.options
        self.route = route_name
        self.system = system
        self.system_name = options.get("system")
        self.poll_interval = float(options["poll"])
        self.batch = int(options["batch"])
        self.engine: sa.Engine | None = None
        self.layout: Layout | None = None
        self.problem: str | None = None  # why the last poll could not work, for /readyz
        self._context: SourceContext | None = None
        self._stopping = threading.Event()
        self._poll_lock = threading.Lock()

    def bookkeeping(self) -> dict[str, str | None]:
        """Columns that are the bus's, not the document's, by option name."""
        return {}

    def start(self, context: SourceContext) -> None:
        self._context = context
        self.engine = engine_for(self.system)
        with suppress(LayoutError, exc.SQLAlchemyError):  # logged, shown on /readyz; the next poll retries
            self._layout()

    def stop(self) -> None:
        self._stopping.set()

    def readiness(self) -> str | None:
        return f"route {self.route}: {self.problem}" if self.problem else None

    def _layout(self) -> Layout:
        if self.layout is None:
            try:
                self.layout = Layout(self.engine, self.options, bookkeeping=self.bookkeeping())
            except LayoutError as error:
                self._failed(f"table {self.options['table']}: {error}")
                raise
            except exc.SQLAlchemyError as error:
                self._failed(unreachable(error, database_url(self.system)))
                raise
        return self.layout

    def _failed(self, problem: str) -> None:
        if problem != self.problem:
            log.warning("table source: %s", problem, extra={"route": self.route})
        self.problem = problem

    def poll(self) -> None:
        try:
            self.poll_once()
        except (LayoutError, exc.SQLAlchemyError):
            pass  # said by _failed; the scheduler polls again
        except Exception:  # the scheduler keeps polling; the rows stay as they were
            log.exception("table poll failed", extra={"route": self.route})

    def poll_once(self) -> Counter:
        """Batches until the table has nothing new (or the bus cannot store); returns the counts
        (submitted, duplicate, error, dead_lettered, skipped) for logs and tests."""
        counts: Counter = Counter()
        with self._poll_lock:
            layout = self._layout()
            while not self._stopping.is_set():
                try:
                    taken, full, stopped = self._batch(layout, counts)
                except exc.SQLAlchemyError as error:
                    self._failed(unreachable(error, database_url(self.system)))
                    raise
                self.problem = None
                if stopped or not full or not taken:
                    break
        return counts

    def _batch(self, layout: Layout, counts: Counter) -> tuple[int, bool, bool]:
        """One batch; (documents taken, whether the select was full, whether the bus stopped it)."""
        raise NotImplementedError

    def submit(self, layout: Layout, document: Document) -> tuple[str, Any]:
        """("submitted" | "duplicate", message id) or ("refused", the InputError); raises
        `Unavailable` when the bus cannot store it now."""
        identity = layout.identity(self.system_name, document)
        raw = RawMessage(jsonfmt.dump_bytes(document.body), "application/json",
                         {"table": layout.name, "key": "/".join(str(part) for part in document.key)})
        try:
            accepted = self._context.submit(raw, idempotency_key=identity, message_id=message_id(identity))
        except InputError as error:
            return "refused", error
        first = accepted.message_ids[0] if accepted.message_ids else None
        return ("duplicate" if accepted.duplicate else "submitted"), first

    def submit_all(self, layout: Layout, documents: Sequence[Document],
                   counts: Counter) -> tuple[list[tuple[Document, str, Any]], bool]:
        """Submit documents in order until the bus cannot store; (outcomes, stopped)."""
        outcomes = []
        for document in documents:
            if self._stopping.is_set():
                return outcomes, True
            try:
                outcome, value = self.submit(layout, document)
            except Unavailable as error:
                log.warning("table poll stopped, the bus cannot store now: %s", error,
                            extra={"route": self.route})
                return outcomes, True
            counts[outcome] += 1
            outcomes.append((document, outcome, value))
        return outcomes, False
