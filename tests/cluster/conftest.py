"""The cluster fixture: one 3-node RabbitMQ cluster per session, started only when a test here
asks for it (about 20-40 s), stopped at the end. `journal_dsn`: a PostgreSQL database of its own
for the bus nodes' shared journal and idempotency keys, dropped afterwards."""

from __future__ import annotations

import contextlib
import os

import pytest

from .bus_nodes import POSTGRES_ADMIN_DSN, postgres_database
from .rabbit_cluster import RabbitCluster, start_cluster


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def rabbit_cluster() -> RabbitCluster:
    try:
        cluster = start_cluster(3)
    except (FileNotFoundError, RuntimeError, OSError) as error:
        _unavailable(f"cannot start a RabbitMQ cluster: {error}")
    yield cluster
    cluster.stop()


@pytest.fixture
def journal_dsn() -> str:
    """The DSN of a fresh database `esb_cluster_<random>` on the machine's PostgreSQL."""
    import psycopg

    stack = contextlib.ExitStack()
    try:
        dsn = stack.enter_context(postgres_database(POSTGRES_ADMIN_DSN))
    except psycopg.Error as error:
        _unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {str(error).strip()}")
    with stack:
        yield dsn
