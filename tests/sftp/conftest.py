"""Fixtures of the SFTP tests: `sshd`, a real OpenSSH server on loopback (skipped where
openssh-server is not installed, failed under CI, where `.ci/run` installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.sftp.server import SSHD, SshServer, password_login_problem

SSHD_PASSWORD = "correct horse battery staple"
"""The password `sshd_with_password` takes for the current user."""


def _missing(message: str | None) -> None:
    if message:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def sshd(tmp_path: Path):
    _missing(None if Path(SSHD).exists() else
             "OpenSSH's sshd is not installed (Debian: apt-get install openssh-server)")
    server = SshServer(tmp_path / "sshd").start()
    yield server
    server.kill()


@pytest.fixture
def sshd_with_password(tmp_path: Path):
    """An sshd that also takes SSHD_PASSWORD for the current user (see tests/sftp/server.py)."""
    _missing(None if Path(SSHD).exists() else
             "OpenSSH's sshd is not installed (Debian: apt-get install openssh-server)")
    _missing(password_login_problem())
    server = SshServer(tmp_path / "sshd", password=SSHD_PASSWORD).start()
    yield server
    server.kill()
