"""Interface tables (staging tables) on PostgreSQL, MariaDB/MySQL and SQLite, with SQLAlchemy 2 Core.

- `from: {table: ...}` reads documents from a table: `mode: claim` (a status column; several bus
  nodes share the table, each row is taken once: `claim_source`) or `mode: watermark` (a view the
  bus may only read: `watermark_source`); header and line rows make one document (`documents`);
- `to: {table: ...}` writes a document as header + lines in one transaction, upserted by its
  business key (`sink`);
- `engine`: one engine per database URL, reflection, value conversion, error outcomes.

Connections are `systems.<name>.table` (url, username, password from `${ENV}`). `esb check`
checks the options; `esb check --connect` (`connect_problems`) also asks the database whether
every table and column named exists. Keywords `x-esb-*`: see adapters/rest.py.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import exc

from adapters.table.claim_source import ClaimSource, claim_bookkeeping
from adapters.table.documents import DEFAULT_LINES_FIELD, Layout, message_id
from adapters.table.engine import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POOL_SIZE,
    LayoutError,
    database_url,
    engine_for,
    unreachable,
)
from adapters.table.sink import SinkLayout, TableSink
from adapters.table.source import TableSource
from adapters.table.watermark_source import WatermarkSource
from esb.durations import duration_option
from esb.plugins import AdapterSpec, register

__all__ = ["ENDPOINT_SCHEMA", "SYSTEM_SCHEMA", "ClaimSource", "Layout", "LayoutError", "SinkLayout",
           "TableSink", "TableSource", "WatermarkSource", "connect_problems", "engine_for", "message_id"]

DEFAULT_BATCH = 100
"""Documents (rows of a flat table with group_by) claimed or read in one transaction."""

_COLUMNS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
            "x-esb-expected": "a column name or a list of them"}


def _columns(description: str, **keywords: Any) -> dict[str, Any]:
    return {**_COLUMNS, "description": description, **keywords}


def _column(description: str, default: str | None = None, **keywords: Any) -> dict[str, Any]:
    return {"type": ["string", "null"] if default is None else "string", "default": default,
            "description": description, **keywords}


SYSTEM_SCHEMA = {
    "type": "object",
    "description": "A database reached with SQLAlchemy. Secrets come from ${ENV} variables only.",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "pattern": r"^[a-z][a-z0-9+]*://",
                "x-esb-expected": "a SQLAlchemy URL such as postgresql+psycopg://host/db",
                "description": "SQLAlchemy URL: postgresql+psycopg://host:5432/db, "
                               "mysql+pymysql://host:3306/db (MariaDB, MySQL) or sqlite:///path.db. "
                               "Leave the password out of it: give username and password as ${ENV} "
                               "variables."},
        "username": {"type": ["string", "null"], "default": None,
                     "description": "Database user, set into the URL (e.g. ${ERP_DB_USER})."},
        "password": {"type": ["string", "null"], "default": None,
                     "description": "Password of username, set into the URL (e.g. ${ERP_DB_PASSWORD}); no "
                                    "escaping needed."},
        "pool_size": {"type": "integer", "minimum": 1, "default": DEFAULT_POOL_SIZE,
                      "description": "Connections kept open per process (as many again may be opened "
                                     "under load)."},
        "connect_timeout": duration_option("Seconds to wait for the server when connecting, or a duration "
                                           "such as 10s.", DEFAULT_CONNECT_TIMEOUT),
    },
}

LINES_SCHEMA = {
    "type": ["object", "null"],
    "default": None,
    "additionalProperties": False,
    "required": ["table", "key"],
    "description": "The line table: its rows whose key columns hold the header's key are the document's "
                   "lines (source), or are replaced by them (sink).",
    "properties": {
        "table": {"type": "string", "description": "Name of the line table."},
        "schema": _column("Database schema of the line table; default: the header's."),
        "key": _columns("Columns of the line table that hold the header's key, in the order of key."),
        "order_by": {**_COLUMNS, "default": None,
                     "description": "Source: columns that order the lines (e.g. line_no)."},
        "columns": {**_COLUMNS, "default": None,
                    "description": "Source: the line columns in the document; default: all."},
        "field": {"type": "string", "default": DEFAULT_LINES_FIELD,
                  "description": "The document field that holds the lines."},
    },
}

ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "from: documents read from an interface table (claimed by status, or past a watermark); "
                   "to: documents written as header + lines, upserted by their key.",
    "x-esb-source": True,
    "x-esb-sink": True,
    "additionalProperties": False,
    "required": ["system", "table", "key"],
    "properties": {
        "system": {"type": "string", "description": "The database (under systems:, with a table: block)."},
        "table": {"type": "string", "description": "Name of the (header) table or view."},
        "schema": _column("Database schema of the table (PostgreSQL schema, MariaDB database); default: the "
                          "connection's."),
        "key": _columns("Source: the row key (primary key) columns, which with the table make each "
                        "message's id; sink: the business key the document is upserted by."),
        "lines": LINES_SCHEMA,
        "message_id_column": _column("Column that receives the message id (source: set when the row is "
                                     "marked; sink: written with the row)."),
        # source options
        "mode": {"enum": ["claim", "watermark"], "default": "claim", "x-esb-role": "source",
                 "description": "claim: take rows whose status is new_status and mark them (several nodes "
                                "may share the table); watermark: read rows past the last watermark_column "
                                "value seen, writing nothing (a read-only view)."},
        "poll": duration_option("Seconds between two polls, or a duration such as 5s; a poll reads batches "
                                "until nothing new is left.", "5s", **{"x-esb-role": "source"}),
        "batch": {"type": "integer", "minimum": 1, "default": DEFAULT_BATCH, "x-esb-role": "source",
                  "description": "Documents claimed (or read) in one transaction; with group_by, rows."},
        "columns": {**_COLUMNS, "default": None, "x-esb-role": "source",
                    "description": "The header columns in the document; default: all but the bookkeeping "
                                   "columns."},
        "group_by": _column("A flat table whose rows are lines: the column whose value makes rows one "
                            "document (the first row's columns are the header). Claim mode only.",
                            **{"x-esb-role": "source"}),
        "status_column": _column("Claim: the status column.", "status", **{"x-esb-role": "source"}),
        "new_status": {"type": ["string", "integer"], "default": "new", "x-esb-role": "source",
                       "description": "Claim: the status of rows to take."},
        "done_status": {"type": ["string", "integer"], "default": "done", "x-esb-role": "source",
                        "description": "Claim: the status set once the document is stored by the bus."},
        "error_status": {"type": ["string", "integer"], "default": "error", "x-esb-role": "source",
                         "description": "Claim: the status set when the mapping or the schema refused the "
                                        "document."},
        "error_column": _column("Claim: column that receives the reason a document was refused.",
                                **{"x-esb-role": "source"}),
        "processed_at_column": _column("Claim: column set to the database's current time when the row is "
                                       "marked.", **{"x-esb-role": "source"}),
        "revision_column": _column("A column whose value changes when the ERP sends a row again as a new "
                                   "version (it becomes part of the message id); default: a row is one "
                                   "message, ever.", **{"x-esb-role": "source"}),
        "watermark_column": _column("Watermark: a column that only grows (updated_at, an id); rows past the "
                                    "last value seen are read.", **{"x-esb-role": "source"}),
        # sink options
        "timezone": {"type": "string", "default": "UTC", "x-esb-role": "sink",
                     "description": "Zone of the times written to columns without a zone (a time with an "
                                    "offset is converted to it)."},
    },
}


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """The options that go together (no database needed; `connect_problems` asks the database)."""
    options, problems = endpoint.options, []
    source = "mode" in options  # only a source's options carry the source defaults
    if source and options["mode"] == "watermark" and not options.get("watermark_column"):
        problems.append("mode watermark needs watermark_column (a column that only grows, e.g. updated_at)")
    if source and options.get("group_by") and options.get("lines"):
        problems.append("give either lines (a line table) or group_by (a flat table), not both")
    if source and options.get("group_by") and options["mode"] == "watermark":
        problems.append("group_by works in claim mode only; in watermark mode use lines: (a line table)")
    zone = options.get("timezone")
    if zone and not source:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f'unknown time zone "{zone}" (use an IANA name such as UTC or Asia/Shanghai)')
    return problems


def connect_problems(endpoint, system: dict | None, role: str) -> list[str]:
    """`esb check --connect`: whether the database answers and has every table and column named."""
    if not system:
        return []
    try:
        engine = engine_for(system)
        if role == "source":
            claims = endpoint.options.get("mode") != "watermark"
            Layout(engine, endpoint.options,
                   bookkeeping=claim_bookkeeping(endpoint.options) if claims else {})
        else:
            SinkLayout(engine, endpoint.options)
    except LayoutError as error:
        return error.problems
    except exc.SQLAlchemyError as error:
        return [unreachable(error, database_url(system))]
    return []


def _source(endpoint, system: dict | None, route_name: str) -> TableSource:
    if endpoint.options.get("mode") == "watermark":
        return WatermarkSource(endpoint, system or {}, route_name)
    return ClaimSource(endpoint, system or {}, route_name)


register(AdapterSpec(
    name="table",
    summary="Interface tables on PostgreSQL, MariaDB or SQLite: claim or watermark rows, upsert documents",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema=SYSTEM_SCHEMA,
    source_factory=_source,
    sink_factory=lambda endpoint, system: TableSink(endpoint, system or {}),
    check=check_endpoint,
    connect_check=connect_problems,
))
