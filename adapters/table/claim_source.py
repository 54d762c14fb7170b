"""The claim source: an interface table with a status column, shared by any number of bus nodes.

Each poll claims batches until the table has no new rows. One batch is one transaction:

1. select up to `batch` rows whose status is `new_status`, `FOR UPDATE SKIP LOCKED` (PostgreSQL,
   MariaDB; SQLite takes its write lock at BEGIN), so each row is taken by one node only;
2. make documents of them (with their line rows: `adapters.table.documents`) and submit each one
   through the runtime, which maps, validates and publishes it confirmed;
3. set status (`done_status`, or `error_status` with the reason in `error_column` for a document
   the mapping or the schema refused), `processed_at_column` and `message_id_column`;
4. commit.

A node killed between 2 and 4 leaves its rows new (the database rolls the transaction back); the
next claim submits them again with the same idempotency key and message id (table + row key), so
the bus answers "duplicate" and publishes nothing twice, and a target that sees the id again
(its Idempotency-Key) takes it once. When the bus cannot store (broker down), the batch stops,
what was stored is marked, the rest stays new for the next poll.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa

from adapters.table.documents import Document, Layout
from adapters.table.source import TableSource
from esb.errors import InputError

DEFAULT_ERROR_TEXT_LENGTH = 2000
"""Characters of a refusal's reason written to `error_column` when its type has no length."""


def claim_bookkeeping(options: dict[str, Any]) -> dict[str, str | None]:
    """The columns a claim source writes, by option name."""
    return {key: options.get(key) for key in ("status_column", "processed_at_column", "message_id_column",
                                               "error_column")}


class ClaimSource(TableSource):
    """`mode: claim`: see the module's docstring."""

    def __init__(self, endpoint, system: dict, route_name: str):
        super().__init__(endpoint, system, route_name)
        options = self.options
        self.status_name = options["status_column"]
        self.new, self.done = options["new_status"], options["done_status"]
        self.error = options["error_status"]

    def bookkeeping(self) -> dict[str, str | None]:
        return claim_bookkeeping(self.options)

    def _batch(self, layout: Layout, counts: Counter) -> tuple[int, bool, bool]:
        table = layout.table
        status = table.c[self.status_name]
        with self.engine.connect() as connection, connection.begin():
            query = (sa.select(*layout.selected).where(status == self.new)
                     .order_by(*([layout.group_by] if layout.group_by is not None else []), *layout.key)
                     .limit(self.batch).with_for_update(skip_locked=True))
            rows = connection.execute(query).all()
            if layout.group_by is not None:
                rows, skipped = self._whole_groups(connection, layout, rows)
                counts["skipped"] += skipped
            documents = layout.documents(connection, rows)
            outcomes, stopped = self.submit_all(layout, documents, counts)
            self._mark(connection, layout, outcomes)
        return len(documents), len(rows) >= self.batch, stopped

    def _whole_groups(self, connection: sa.Connection, layout: Layout,
                      rows: list[sa.Row]) -> tuple[list[sa.Row], int]:
        """Only the groups whose every new row this transaction holds: a group cut by the batch's
        limit gets its other rows locked too; one whose rows another node holds is left to it."""
        status, group = layout.table.c[self.status_name], layout.group_by
        held: dict[Any, list[sa.Row]] = {}
        for row in rows:
            held.setdefault(row._mapping[group], []).append(row)
        if not held:
            return [], 0
        totals = dict(connection.execute(sa.select(group, sa.func.count()).where(
            status == self.new, group.in_(list(held))).group_by(group)).all())
        whole, skipped = [], 0
        for value, group_rows in held.items():
            if len(group_rows) < totals.get(value, 0):
                seen = {layout.row_key(r) for r in group_rows}
                more = connection.execute(
                    sa.select(*layout.selected).where(status == self.new, group == value)
                    .order_by(*layout.key).with_for_update(skip_locked=True)).all()
                group_rows = group_rows + [r for r in more if layout.row_key(r) not in seen]
                if len(group_rows) < totals[value]:
                    skipped += 1  # another node holds some of its rows: it takes the group
                    continue
            whole.extend(group_rows)
        return whole, skipped

    def _mark(self, connection: sa.Connection, layout: Layout,
              outcomes: list[tuple[Document, str, Any]]) -> None:
        """Set status, processed_at, message id (or the error reason) of the submitted documents' rows."""
        table, options = layout.table, self.options
        condition = sa.and_(*(c == sa.bindparam(f"_key_{i}") for i, c in enumerate(layout.key)))
        done, refused = [], []
        for document, outcome, value in outcomes:
            for row_key in document.row_keys:
                keys = {f"_key_{i}": part for i, part in enumerate(row_key)}
                if outcome == "refused":
                    refused.append({**keys, "_reason": self._reason(table, value)})
                else:
                    done.append({**keys, "_message_id": value})
        values: dict[str, Any] = {}
        if options.get("processed_at_column"):
            values[options["processed_at_column"]] = sa.func.current_timestamp()
        if done:
            extra = {options["message_id_column"]: sa.bindparam("_message_id")} \
                if options.get("message_id_column") else {}
            connection.execute(sa.update(table).where(condition).values(
                {self.status_name: self.done, **values, **extra}), done)
        if refused:
            extra = {options["error_column"]: sa.bindparam("_reason")} if options.get("error_column") else {}
            connection.execute(sa.update(table).where(condition).values(
                {self.status_name: self.error, **values, **extra}), refused)

    def _reason(self, table: sa.Table, error: InputError) -> str:
        name = self.options.get("error_column")
        length = getattr(table.c[name].type, "length", None) if name else None
        text = str(error)
        limit = length or DEFAULT_ERROR_TEXT_LENGTH
        return text if len(text) <= limit else text[:limit - 1] + "…"
