"""The watermark source: a table or view the bus may only read (no status column to write).

Each poll reads, in batches, the rows whose (`watermark_column`, key) is past the last pair seen
(`updated_at` or an id that only grows; the key breaks ties between equal times), oldest first,
makes documents of them (with their lines) and submits each one. The pair is kept in
`<data_dir>/watermarks/table-<route>.json` and written only after every document of the batch
was confirmed by the broker or dead-lettered, so a crash re-reads at most one batch; the message
ids (table + row key + watermark value) make that re-read a duplicate. A changed row has a new
watermark value, so it is a new document. A refused document goes to the route's dead-letter
queue with its error (the view cannot be marked).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from adapters.table.documents import Layout
from adapters.table.engine import plain
from adapters.table.source import TableSource, log
from esb import jsonfmt
from esb.plugins import RawMessage, SourceContext
from esb.watermarks import WatermarkFile


class WatermarkSource(TableSource):
    """`mode: watermark`: see the module's docstring."""

    mode = "watermark"

    def __init__(self, endpoint, system: dict, route_name: str):
        super().__init__(endpoint, system, route_name)
        self.watermarks: WatermarkFile | None = None

    def start(self, context: SourceContext) -> None:
        options = self.options
        identity = {"table": str(options["table"]), "column": str(options["watermark_column"])}
        self.watermarks = WatermarkFile(Path(context.data_dir) / "watermarks" / f"table-{self.route}.json",
                                        identity)
        super().start(context)

    def _batch(self, layout: Layout, counts: Counter) -> tuple[int, bool, bool]:
        mark = layout.watermark
        stored = self.watermarks.load()
        query = sa.select(*layout.selected)
        if stored is not None:
            since = [_typed(mark, stored["value"]),
                     *(_typed(c, v) for c, v in zip(layout.key, stored["key"], strict=True))]
            query = query.where(sa.tuple_(mark, *layout.key) > sa.tuple_(*since))
        query = query.where(mark.is_not(None)).order_by(mark, *layout.key).limit(self.batch)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
            documents = layout.documents(connection, rows)
            connection.rollback()  # a read: nothing to keep, no snapshot held while publishing
        outcomes, stopped = self.submit_all(layout, documents, counts)
        last = None  # the last document stored or dead-lettered with none missing before it
        for document, outcome, error in outcomes:
            if outcome == "unstored":
                break
            if outcome == "refused":
                if not self._dead_letter(layout, document, error):
                    stopped = True
                    break
                counts["dead_lettered"] += 1
            last = document
        if last is not None:
            self.watermarks.save({"value": plain(last.watermark), "key": [plain(k) for k in last.key]})
        return len(documents), len(rows) >= self.batch, stopped

    def _dead_letter(self, layout: Layout, document, error) -> bool:
        raw = RawMessage(jsonfmt.dump_bytes(document.body), "application/json",
                         {"table": layout.name, "key": "/".join(str(part) for part in document.key)})
        return self._context.dead_letter_refused(raw, error, log=log, source="table poll", item="row")


def _typed(column: sa.Column, value: Any) -> Any:
    """A stored (JSON) watermark value back in the column's Python type, for the comparison."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if value is None:
        return None
    if python_type is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    if python_type is date and isinstance(value, str):
        return date.fromisoformat(value)
    if python_type is Decimal:
        return Decimal(str(value))
    if python_type is int:
        return int(value)
    return value
