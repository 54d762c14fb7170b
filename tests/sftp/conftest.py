"""Fixtures of the SFTP tests: `sshd`, a real OpenSSH server on loopback (skipped where
openssh-server is not installed, failed under CI, where `.ci/run` installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sftp.server import SSHD, SshServer


@pytest.fixture
def sshd(tmp_path: Path):
    if not Path(SSHD).exists():
        message = "OpenSSH's sshd is not installed (Debian: apt-get install openssh-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = SshServer(tmp_path / "sshd").start()
    yield server
    server.kill()
