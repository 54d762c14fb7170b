"""The cluster fixture: one 3-node RabbitMQ cluster per session, started only when a test here
asks for it (about 20-40 s), stopped at the end. `journal_dsn`: a PostgreSQL database of its own
for the bus nodes' shared journal and idempotency keys, dropped afterwards."""

from __future__ import annotations

import os
import uuid

import pytest

from .rabbit_cluster import RabbitCluster, start_cluster

POSTGRES_ADMIN_DSN = os.environ.get("ESB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


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

    name = "esb_cluster_" + uuid.uuid4().hex[:10]
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as error:
        _unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {str(error).strip()}")
    yield POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
