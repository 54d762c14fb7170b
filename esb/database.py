"""One small layer over the two databases the bus keeps state in: SQLite (a file, the default)
and PostgreSQL (a `postgresql://` DSN, for several nodes). Used by the journal and the
idempotency store; the broker holds the messages themselves."""

from __future__ import annotations

import sqlite3
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

SCHEMA_LOCK = 0x65736273  # "esbs": the advisory lock the bus's CREATE ... IF NOT EXISTS take on PostgreSQL


def is_postgres(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


class Database:
    """Connections and SQL dialect for one target; each thread uses its own connection."""

    def __init__(self, target: str | Path):
        self.target = str(target)
        self.postgres = is_postgres(self.target)
        if not self.postgres:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)

    @property
    def placeholder(self) -> str:
        return "%s" if self.postgres else "?"

    def params(self, count: int) -> str:
        return ", ".join([self.placeholder] * count)

    def schema_transaction(self, connection: Any) -> transaction:
        """The transaction to create tables in. On PostgreSQL, `CREATE TABLE IF NOT EXISTS` is not
        safe when several nodes start at once on a fresh database: all but one fail on a unique
        index of the catalog. An advisory lock held to the commit lets them create one at a time."""
        return transaction(connection, lock=SCHEMA_LOCK if self.postgres else None)

    def select(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        """Every row of one query, on a connection of its own."""
        with closing(self.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute(sql, parameters)
            return cursor.fetchall()

    def where(self, equal: dict[str, Any],
              since: tuple[str, float | None] | None = None) -> tuple[str, tuple]:
        """`WHERE` (or nothing) and its parameters: each column of `equal` whose value is not None
        equals it, and `since`'s column (when its value is not None) is at least that value."""
        p = self.placeholder
        conditions = [(f"{column} = {p}", value) for column, value in equal.items() if value is not None]
        if since is not None and since[1] is not None:
            conditions.append((f"{since[0]} >= {p}", since[1]))
        if not conditions:
            return "", ()
        return "WHERE " + " AND ".join(c for c, _ in conditions), tuple(v for _, v in conditions)

    def connect(self) -> Any:
        """A connection in autocommit mode; group statements with `transaction()`."""
        if self.postgres:
            import psycopg  # optional dependency: pip install 'esb[postgres]'

            return psycopg.connect(self.target, autocommit=True)
        connection = sqlite3.connect(self.target, timeout=30, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection


class transaction:
    """BEGIN ... COMMIT (ROLLBACK on error) on an autocommit connection, SQLite or PostgreSQL;
    `lock` (PostgreSQL only): the number of an advisory lock taken at BEGIN, released at the end."""

    def __init__(self, connection: Any, *, lock: int | None = None):
        self.connection = connection
        self.lock = lock

    def __enter__(self) -> Any:
        self.connection.execute("BEGIN")
        if self.lock is not None:
            self.connection.execute(f"SELECT pg_advisory_xact_lock({int(self.lock)})")
        return self.connection.cursor()

    def __exit__(self, error_type, error, traceback) -> None:
        self.connection.execute("ROLLBACK" if error_type else "COMMIT")


def close_quietly(connection: Any) -> None:
    with suppress(Exception):  # closing a broken connection may fail too; nothing to do about it
        connection.close()
