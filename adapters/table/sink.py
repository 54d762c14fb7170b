"""The table sink: a document (the destination's mapping output, JSON) written as one header row
and its line rows, in one transaction, upserted by the business key.

The header row whose `key` columns hold the document's values is updated, or inserted when there
is none; its line rows (`lines.key` columns = the header's key) are replaced by the document's
`lines` (`lines.field`). A redelivery therefore writes the same rows again, never a second
document. Each field of the document is the column of the same name; a field the table has no
column for is a permanent error naming it. A database that is down, a lost connection, a
deadlock or a lock timeout are retryable; a bad value (a null in a NOT NULL column) is permanent.
"""

from __future__ import annotations

import threading
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import exc

from adapters.table.documents import DEFAULT_LINES_FIELD, as_list
from adapters.table.engine import (
    LayoutError,
    column,
    columns,
    database_url,
    engine_for,
    outcome,
    reflect,
    to_column,
    unreachable,
)
from esb import jsonfmt
from esb.errors import Permanent, Retryable
from esb.plugins import Sink
from esb.problems import did_you_mean


class SinkLayout:
    """The header table and key, and the line table, as the database has them."""

    def __init__(self, engine: sa.Engine, options: dict[str, Any]):
        problems: list[str] = []
        schema = options.get("schema")
        self.table = reflect(engine, options["table"], schema)
        self.name = f"{schema}.{options['table']}" if schema else options["table"]
        try:
            self.key = columns(self.table, as_list(options["key"]), "key")
        except LayoutError as error:
            problems.extend(error.problems)
        self.message_id = None
        if options.get("message_id_column"):
            try:
                self.message_id = column(self.table, options["message_id_column"], "message_id_column")
            except LayoutError as error:
                problems.extend(error.problems)
        self.lines, self.parent, self.lines_field = None, [], DEFAULT_LINES_FIELD
        lines = options.get("lines")
        if lines:
            self.lines_field = lines.get("field") or DEFAULT_LINES_FIELD
            try:
                self.lines = reflect(engine, lines["table"], lines.get("schema") or schema)
                self.parent = columns(self.lines, as_list(lines["key"]), "lines.key")
            except LayoutError as error:
                problems.extend(error.problems)
            if self.parent and len(self.parent) != len(as_list(options["key"])):
                problems.append(f"lines.key names {len(self.parent)} columns but key names "
                                f"{len(as_list(options['key']))}")
        if problems:
            raise LayoutError(problems)


class TableSink(Sink):
    """Writes each delivered document as header + lines in one transaction; see the module docstring."""

    def __init__(self, endpoint, system: dict):
        self.options = endpoint.options
        self.system = system
        self.zone = ZoneInfo(self.options.get("timezone") or "UTC")
        self.engine = engine_for(system)
        self.layout: SinkLayout | None = None
        self.problem: str | None = None
        self._lock = threading.Lock()

    def readiness(self) -> str | None:
        return f"table {self.options['table']}: {self.problem}" if self.problem else None

    def _layout(self) -> SinkLayout:
        with self._lock:
            if self.layout is None:
                try:
                    self.layout = SinkLayout(self.engine, self.options)
                except LayoutError as error:
                    self.problem = str(error)
                    raise Permanent(f"table {self.options['table']}: {error}") from None
                except exc.SQLAlchemyError as error:
                    self.problem = unreachable(error, database_url(self.system))
                    raise Retryable(self.problem) from None
            return self.layout

    def deliver(self, envelope: Any, body: bytes, content_type: str) -> str | None:
        layout = self._layout()
        try:
            document = jsonfmt.loads(body)
        except ValueError as error:
            raise Permanent(f"the table sink needs a JSON object (map the destination to format json): "
                            f"{error}") from None
        if not isinstance(document, dict):
            raise Permanent("the table sink needs one JSON object per message, got "
                            f"{type(document).__name__}")
        lines = document.pop(layout.lines_field, None) if layout.lines is not None else None
        header = _row(layout.table, document, self.zone)
        if layout.message_id is not None:
            header[layout.message_id.name] = envelope.id
        missing = [c.name for c in layout.key if header.get(c.name) is None]
        if missing:
            raise Permanent(f"table {layout.name}: the document has no value for the key column "
                            f"{', '.join(missing)}")
        key = tuple(header[c.name] for c in layout.key)
        if lines is not None and not isinstance(lines, list):
            raise Permanent(f'field "{layout.lines_field}" must be a list of line rows')
        line_rows = [{**_row(layout.lines, line, self.zone, f"{layout.lines_field}[{index}]"),
                      **{c.name: part for c, part in zip(layout.parent, key, strict=True)}}
                     for index, line in enumerate(lines or [])]
        try:
            self._write(layout, key, header, line_rows if lines is not None else None)
        except exc.SQLAlchemyError as error:
            failure = outcome(error, f"table {layout.name}")
            self.problem = str(failure) if isinstance(failure, Retryable) else None
            raise failure from None
        self.problem = None
        return "/".join(str(part) for part in key)

    def _write(self, layout: SinkLayout, key: tuple, header: dict, lines: list[dict] | None) -> None:
        table = layout.table
        with self.engine.begin() as connection:
            matched = sa.and_(*(c == part for c, part in zip(layout.key, key, strict=True)))
            if connection.execute(sa.update(table).where(matched).values(header)).rowcount == 0:
                connection.execute(sa.insert(table).values(header))
            if lines is None:
                return
            own = sa.and_(*(c == part for c, part in zip(layout.parent, key, strict=True)))
            connection.execute(sa.delete(layout.lines).where(own))
            if lines:
                connection.execute(sa.insert(layout.lines), lines)


def _row(table: sa.Table, document: dict, zone, where: str = "") -> dict[str, Any]:
    """The document's fields as column values; `Permanent` naming a field without a column."""
    if not isinstance(document, dict):
        raise Permanent(f"{where or 'the document'} must be an object of column values")
    row = {}
    for name, value in document.items():
        if name not in table.c:
            place = f"{where}: " if where else ""
            raise Permanent(f'{place}table "{table.name}" has no column "{name}"'
                            f"{did_you_mean(name, table.c.keys())}; map the field to a column or "
                            "leave it out")
        if isinstance(value, dict | list):
            raise Permanent(f'{where + "." if where else ""}{name}: a column takes one value, not '
                            f"{type(value).__name__}")
        row[name] = to_column(table.c[name], value, zone)
    return row
