"""Shared fixtures. Tests that need RabbitMQ use `broker_url`: it skips when the broker is
unreachable on a developer machine, and fails when the CI environment variable is set."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SAMPLES = PROJECT.parent / "shared" / "samples"
DEFAULT_TEST_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _broker_reachable(url: str) -> str | None:
    import pika

    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except Exception as error:  # any failure to connect means "not reachable"
        return f"{type(error).__name__}: {error}"
    connection.close()
    return None


@pytest.fixture(scope="session")
def broker_url() -> str:
    url = os.environ.get("ESB_TEST_BROKER_URL", DEFAULT_TEST_BROKER)
    reason = _broker_reachable(url)
    if reason:
        message = f"RabbitMQ not reachable at {url}: {reason}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def unique_name() -> str:
    """A short name no other test uses, for routes, queues and exchanges."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """`../shared/samples`, the real files of other authors: absent from a plain clone of the
    project, so their tests skip there with the reason, and fail in CI, where they must be."""
    if not SAMPLES.is_dir():
        message = f"the shared samples are not here: {SAMPLES} (they sit beside the project's checkout)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SAMPLES
