"""The cluster fixture: one 3-node RabbitMQ cluster per session, started only when a test here
asks for it (about 20-40 s), stopped at the end."""

from __future__ import annotations

import os

import pytest

from .rabbit_cluster import RabbitCluster, start_cluster


@pytest.fixture(scope="session")
def rabbit_cluster() -> RabbitCluster:
    try:
        cluster = start_cluster(3)
    except (FileNotFoundError, RuntimeError, OSError) as error:
        if os.environ.get("CI"):
            pytest.fail(f"cannot start a RabbitMQ cluster: {error}")
        pytest.skip(f"cannot start a RabbitMQ cluster: {error}")
    yield cluster
    cluster.stop()
