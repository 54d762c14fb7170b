"""The database side of the table adapter: one SQLAlchemy 2 Core engine per database, tables
read from the database itself (reflection), values converted both ways, and database errors
turned into the bus's outcomes.

URLs are SQLAlchemy's (`postgresql+psycopg://host/db`, `mysql+pymysql://host/db`,
`sqlite:///path.db`); `username` and `password` are set into the URL by the adapter, so a
password with `@` or `/` needs no escaping, and both come from `${ENV}` in routes.yaml.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from esb.errors import Permanent, Retryable
from esb.problems import did_you_mean

log = logging.getLogger("esb.adapters.table")

DEFAULT_POOL_SIZE = 5
"""Connections an engine keeps open (per process); the claim source uses one, sinks one each."""

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the database server to answer a new connection."""

MESSAGE_ID_NAMESPACE = uuid.UUID("5b0c3a4e-8d1f-4b7a-9e65-2f1d6c0a7e19")
"""uuid5 namespace of the message ids derived from a table row (table + row key)."""

_engines: dict[tuple, sa.Engine] = {}
_engines_lock = threading.Lock()


class LayoutError(Exception):
    """The database does not have what the route names (a table, a column); `problems` are
    sentences, one per missing thing."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def database_url(system: dict[str, Any]) -> sa.URL:
    """The system's URL with `username` / `password` set into it."""
    try:
        url = sa.make_url(system["url"])
    except exc.ArgumentError as error:
        raise ValueError(f"url: not a SQLAlchemy database URL ({error})") from None
    changes = {key: system[key] for key in ("username", "password") if system.get(key)}
    return url.set(**changes) if changes else url


def shown(url: sa.URL) -> str:
    """The URL for logs and problems: never with its password."""
    return url.render_as_string(hide_password=True)


def engine_for(system: dict[str, Any]) -> sa.Engine:
    """The engine of a database (one per URL and process, shared by its sources and sinks)."""
    url = database_url(system)
    pool_size = int(system.get("pool_size") or DEFAULT_POOL_SIZE)
    timeout = float(system.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT)
    key = (url.render_as_string(hide_password=False), pool_size, timeout)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(url, pool_size, timeout)
        return engine


def _create_engine(url: sa.URL, pool_size: int, timeout: float) -> sa.Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": timeout})
        _serialize_sqlite_writers(engine)
        return engine
    connect_args = {"connect_timeout": max(1, round(timeout))}
    # READ COMMITTED on both servers: a claim sees what other nodes committed since it began, and
    # MariaDB's default (REPEATABLE READ) would take gap locks that make claimers wait on each other.
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                            isolation_level="READ COMMITTED", connect_args=connect_args)


def _serialize_sqlite_writers(engine: sa.Engine) -> None:
    """SQLite has no row locks: each transaction takes the write lock at BEGIN (IMMEDIATE), so two
    claimers never read the same new rows (SQLAlchemy's documented recipe)."""

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def reflect(engine: sa.Engine, name: str, schema: str | None = None) -> sa.Table:
    """The table (or view) as the database has it; `LayoutError` naming it when it is missing."""
    try:
        return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=engine)
    except exc.NoSuchTableError:
        known = sa.inspect(engine).get_table_names(schema=schema)
        views = sa.inspect(engine).get_view_names(schema=schema)
        where = f"schema {schema}" if schema else "the database"
        raise LayoutError([f'table "{name}" does not exist in {where}{did_you_mean(name, [*known, *views])}'
                           ]) from None


def column(table: sa.Table, name: str, option: str) -> sa.Column:
    """The column `name` of `table`; `LayoutError` naming the option and the known columns."""
    try:
        return table.c[name]
    except KeyError:
        known = list(table.c.keys())
        raise LayoutError([f'{option}: table "{table.name}" has no column "{name}"{did_you_mean(name, known)}'
                           f"; its columns: {', '.join(known)}"]) from None


def columns(table: sa.Table, names: list[str], option: str) -> list[sa.Column]:
    """Every named column; one `LayoutError` listing every missing one."""
    found, problems = [], []
    for name in names:
        try:
            found.append(column(table, name, option))
        except LayoutError as error:
            problems.extend(error.problems)
    if problems:
        raise LayoutError(problems)
    return found


def plain(value: Any) -> Any:
    """A database value as JSON-ready data: times and dates as ISO 8601, Decimal kept exact, bytes
    as hex, UUIDs as text."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def to_column(column: sa.Column, value: Any, zone: tzinfo = UTC) -> Any:
    """A JSON value as the column's type wants it (ISO text to a date or time, numbers to
    Decimal); `Permanent` naming the column when it cannot be. A time with an offset written to a
    column without a zone is written as the time in `zone`."""
    if value is None or isinstance(value, bool):
        return value
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    try:
        if python_type is datetime and isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is not None and not getattr(column.type, "timezone", False):
                moment = moment.astimezone(zone).replace(tzinfo=None)
            return moment
        if python_type is date and isinstance(value, str):
            return date.fromisoformat(value[:10])
        if python_type is Decimal and not isinstance(value, Decimal):
            return Decimal(str(value))
        if python_type is int and not isinstance(value, int):
            return int(Decimal(str(value)))
        if python_type is str and not isinstance(value, str):
            return str(value)
    except (ValueError, InvalidOperation, ArithmeticError):
        raise Permanent(f'column "{column.name}": {value!r} is not a {python_type.__name__}') from None
    return value


def outcome(error: exc.SQLAlchemyError, what: str) -> Exception:
    """The bus's outcome of a database error: a server that is down, a lost connection, a lock or
    deadlock timeout are `Retryable`; a duplicate key (two writers of one new document) is too,
    since the next attempt updates; anything else (a bad value, a missing column) is `Permanent`."""
    text = f"{what}: {type(error.orig or error).__name__}: {_first_line(error)}"
    passing = exc.OperationalError | exc.InterfaceError | exc.TimeoutError | exc.DisconnectionError
    if isinstance(error, passing):
        return Retryable(text)
    if isinstance(error, exc.IntegrityError) and is_duplicate_key(error):
        return Retryable(text)
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return Retryable(text)
    return Permanent(text)


def is_duplicate_key(error: exc.IntegrityError) -> bool:
    original = error.orig
    if getattr(original, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    arguments = getattr(original, "args", ())
    if arguments and arguments[0] == 1062:  # MariaDB / MySQL ER_DUP_ENTRY
        return True
    return "UNIQUE constraint failed" in str(original)  # SQLite


def _first_line(error: exc.SQLAlchemyError) -> str:
    text = str(error.orig) if getattr(error, "orig", None) is not None else str(error)
    return text.strip().splitlines()[0][:500] if text.strip() else type(error).__name__


def unreachable(error: Exception, url: sa.URL) -> str:
    """A sentence for a database that does not answer (for logs, /readyz and esb check --connect)."""
    detail = _first_line(error) if isinstance(error, exc.SQLAlchemyError) else str(error)
    return f"database {shown(url)} does not answer: {detail}"
