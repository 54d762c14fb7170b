"""The reliability scenarios need real processes; the disk-full one needs to mount a tmpfs (root)."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def rabbitmqctl() -> str:
    """The broker's own CLI, to close the bus's connections from the broker's side."""
    path = shutil.which("rabbitmqctl")
    if path is None:
        message = "rabbitmqctl is not installed here"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
