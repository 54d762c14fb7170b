"""Fixtures of the AS2 tests: throw-away certificate pairs for "us" and a partner."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest

from adapters.as2.keys import make_pair, write_pair


@pytest.fixture(scope="session")
def pairs(tmp_path_factory):
    """name -> (cert, key, cert_path, key_path) for `bus`, `acme`, `other` and `expired`."""
    directory = tmp_path_factory.mktemp("as2-keys")
    made = {}
    for name in ("bus", "acme", "other"):
        cert, key = make_pair(name)
        made[name] = (cert, key, *write_pair(cert, key, directory, name))
    cert, key = make_pair("expired", days=1, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    made["expired"] = (cert, key, *write_pair(cert, key, directory, "expired"))
    return made


@pytest.fixture(scope="session")
def openssl():
    """The openssl command line: the independent partner of the tests."""
    path = shutil.which("openssl")
    if path is None:
        message = "the openssl command is not installed (Debian: apt-get install openssl)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
