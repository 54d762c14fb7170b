"""Header and line rows made into one document, the same way for both source modes.

Three layouts, chosen by the route's options:
- one row, one document (neither `lines` nor `group_by`);
- a header table and a line table (`lines: {table, key}`): the document is the header row's
  columns plus `lines`, the line rows whose `lines.key` columns hold the header's `key`;
- one flat table whose rows are lines (`group_by: po_number`): the rows that share the value
  make one document, the first row's columns as the header plus `lines`, every row.

The bookkeeping columns (status, processed_at, message id, error) are left out of documents.
A document's identity (table + row key, and the revision when the route names one) gives its
idempotency key and its message id, so reading the same row again makes the same message.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from adapters.table.engine import MESSAGE_ID_NAMESPACE, LayoutError, column, columns, plain, reflect

DEFAULT_LINES_FIELD = "lines"
"""Name of the document field that holds the line rows."""


def as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass
class Document:
    """One document read from the table: its key, its JSON-ready body and the keys of the rows it
    covers (one header row; every row of the group with `group_by`)."""

    key: tuple
    body: dict[str, Any]
    row_keys: list[tuple] = field(default_factory=list)
    revision: Any = None
    watermark: Any = None


class Layout:
    """The tables and columns a route reads, checked against the database (`LayoutError` lists
    every missing table or column)."""

    def __init__(self, engine: sa.Engine, options: dict[str, Any], *,
                 bookkeeping: dict[str, str | None] | None = None):
        problems: list[str] = []
        self.table = reflect(engine, options["table"], options.get("schema"))
        self.key = _collect(problems, lambda: columns(self.table, as_list(options["key"]), "key"))
        kept = [name for name in (bookkeeping or {}).values() if name]
        for option, name in (bookkeeping or {}).items():
            _optional_column(problems, self.table, name, option)
        wanted = as_list(options.get("columns")) or [c.name for c in self.table.c if c.name not in kept]
        self.columns = _collect(problems, lambda: columns(self.table, wanted, "columns")) or []
        self.group_by = _optional_column(problems, self.table, options.get("group_by"), "group_by")
        self.revision = _optional_column(problems, self.table, options.get("revision_column"),
                                         "revision_column")
        self.watermark = _optional_column(problems, self.table, options.get("watermark_column"),
                                          "watermark_column")
        self.lines: Lines | None = None
        if options.get("lines"):
            try:
                self.lines = Lines(engine, options["lines"], options.get("schema"), len(self.key or []))
            except LayoutError as error:
                problems.extend(error.problems)
        if problems:
            raise LayoutError(problems)
        self.lines_field = (options.get("lines") or {}).get("field") or DEFAULT_LINES_FIELD
        self.name = f"{options['schema']}.{options['table']}" if options.get("schema") else options["table"]
        self.selected = list(dict.fromkeys([*self.key, *self.columns,
                                            *(c for c in (self.revision, self.watermark, self.group_by) if
                                              c is not None)]))

    def row_key(self, row: sa.Row) -> tuple:
        return tuple(row._mapping[c] for c in self.key)

    def documents(self, connection: sa.Connection, rows: Sequence[sa.Row]) -> list[Document]:
        """The documents of `rows` (header rows, or the flat rows of whole groups), in their order."""
        if self.group_by is not None:
            return self._grouped(rows)
        lines = self.lines.read(connection, [self.row_key(r) for r in rows]) if self.lines else None
        documents = []
        for row in rows:
            key = self.row_key(row)
            body = self._body(row)
            if lines is not None:
                body[self.lines_field] = lines.get(key, [])
            documents.append(Document(key, body, [key], self._value(row, self.revision),
                                      self._value(row, self.watermark)))
        return documents

    def _grouped(self, rows: Sequence[sa.Row]) -> list[Document]:
        groups: dict[Any, Document] = {}
        for row in rows:
            value = row._mapping[self.group_by]
            document = groups.get(value)
            if document is None:
                body = self._body(row)
                body[self.lines_field] = []
                document = groups[value] = Document((value,), body, [], self._value(row, self.revision))
            document.body[self.lines_field].append(self._body(row))
            document.row_keys.append(self.row_key(row))
        return list(groups.values())

    def _body(self, row: sa.Row) -> dict[str, Any]:
        mapping = row._mapping
        return {c.name: plain(mapping[c]) for c in self.columns}

    @staticmethod
    def _value(row: sa.Row, selected: sa.Column | None) -> Any:
        return row._mapping[selected] if selected is not None else None

    def identity(self, system: str | None, document: Document) -> str:
        """The idempotency key of a document: table, row key (or group value) and revision."""
        parts = "/".join(str(plain(part)) for part in document.key)
        revision = f"@{plain(document.revision)}" if document.revision is not None else ""
        return f"table:{system or '-'}:{self.name}:{parts}{revision}"


def message_id(identity: str) -> str:
    """The message id of a document: the same identity always gives the same UUID."""
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, identity))


class Lines:
    """The line table of a header table: its rows whose `key` columns hold a header's key."""

    def __init__(self, engine: sa.Engine, options: dict[str, Any], schema: str | None, header_key_count: int):
        self.table = reflect(engine, options["table"], options.get("schema") or schema)
        self.parent = columns(self.table, as_list(options["key"]), "lines.key")
        if header_key_count and len(self.parent) != header_key_count:
            raise LayoutError([f"lines.key names {len(self.parent)} columns but key names "
                               f"{header_key_count}; give the line table's columns that hold the header's "
                               "key, in its order"])
        self.order_by = columns(self.table, as_list(options.get("order_by")), "lines.order_by")
        self.shown = [c for c in self.table.c if c.name in set(as_list(options.get("columns")))] \
            if options.get("columns") else list(self.table.c)

    def read(self, connection: sa.Connection, keys: list[tuple]) -> dict[tuple, list[dict[str, Any]]]:
        """The line rows of every header key, each list in `order_by` order."""
        found: dict[tuple, list[dict[str, Any]]] = {key: [] for key in keys}
        if not keys:
            return found
        if len(self.parent) == 1:
            condition = self.parent[0].in_([key[0] for key in keys])
        else:
            condition = sa.tuple_(*self.parent).in_(keys)
        query = sa.select(*dict.fromkeys([*self.parent, *self.shown])).where(condition).order_by(
            *self.parent, *self.order_by)
        for row in connection.execute(query):
            mapping = row._mapping
            found.setdefault(tuple(mapping[c] for c in self.parent), []).append(
                {c.name: plain(mapping[c]) for c in self.shown})
        return found


def _collect(problems: list[str], build):
    try:
        return build()
    except LayoutError as error:
        problems.extend(error.problems)
        return None


def _optional_column(problems: list[str], table: sa.Table, name: str | None, option: str) -> sa.Column | None:
    return _collect(problems, lambda: column(table, name, option)) if name else None
