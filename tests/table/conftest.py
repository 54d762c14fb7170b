"""Fixtures of the interface-table tests: a database of its own on each real server, per test run.

`sql_url` is parametrized over PostgreSQL (127.0.0.1:5432), MariaDB (127.0.0.1:3306) and SQLite
(a file): each server gets a database named `esb_t<random>` at the first test that needs it,
dropped at the end of the run, so parallel runs never meet. A server that does not answer skips
its tests with the reason, and fails them when `CI` is set. `ESB_TEST_POSTGRES_URL` and
`ESB_TEST_MARIADB_URL` (SQLAlchemy URLs of a database the test user may create databases from)
point them elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

SERVERS = {
    "postgresql": os.environ.get("ESB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": os.environ.get("ESB_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sql_servers() -> Iterator[dict[str, str]]:
    """Per server, the URL of this run's own database (created lazily, dropped at the end)."""
    created: dict[str, str] = {}
    yield created
    for kind, url in created.items():
        if kind == "sqlite":
            continue
        admin = sa.create_engine(SERVERS[kind], isolation_level="AUTOCOMMIT")
        name = sa.make_url(url).database
        with admin.connect() as connection:
            force = " WITH (FORCE)" if kind == "postgresql" else ""
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()


def database_of_this_run(kind: str, servers: dict[str, str], tmp_path_factory) -> str:
    if kind in servers:
        return servers[kind]
    if kind == "sqlite":
        servers[kind] = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'interface.db'}"
        return servers[kind]
    name = "esb_t" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(SERVERS[kind], isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as error:
        _unavailable(f"{kind} not reachable at {sa.make_url(SERVERS[kind]).render_as_string()}: "
                     f"{str(error.orig).strip().splitlines()[0]}")
    finally:
        admin.dispose()
    servers[kind] = sa.make_url(SERVERS[kind]).set(database=name).render_as_string(hide_password=False)
    return servers[kind]


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def sql_url(request, sql_servers, tmp_path_factory) -> str:
    """A SQLAlchemy URL of an empty-enough database of this run (tests drop what they create)."""
    return database_of_this_run(request.param, sql_servers, tmp_path_factory)


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request, sql_servers, tmp_path_factory) -> str:
    """As sql_url, on the servers with row locks only (the tests of several nodes at once)."""
    return database_of_this_run(request.param, sql_servers, tmp_path_factory)
