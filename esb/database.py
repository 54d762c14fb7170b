"""One small layer over the two databases the bus keeps state in: SQLite (a file, the default)
and PostgreSQL (a `postgresql://` DSN, for several nodes). Used by the journal and the
idempotency store; the broker holds the messages themselves."""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import Any


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
    """BEGIN ... COMMIT (ROLLBACK on error) on an autocommit connection, SQLite or PostgreSQL."""

    def __init__(self, connection: Any):
        self.connection = connection

    def __enter__(self) -> Any:
        self.connection.execute("BEGIN")
        return self.connection.cursor()

    def __exit__(self, error_type, error, traceback) -> None:
        self.connection.execute("ROLLBACK" if error_type else "COMMIT")


def close_quietly(connection: Any) -> None:
    with suppress(Exception):  # closing a broken connection may fail too; nothing to do about it
        connection.close()
