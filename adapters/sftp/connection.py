"""One SSH connection per partner system, shared by its sources and sinks: opened on first use,
checked against a `known_hosts` file, reopened with backoff after it drops.

Every failure to connect is one sentence (`StoreUnavailable`): an unknown or changed host key,
refused credentials, a server that does not answer. It is logged once per change, never with a
traceback, and `/readyz` shows it (`problem`).
"""

from __future__ import annotations

import logging
import stat
import threading
import time
from pathlib import Path
from typing import Any

import paramiko

from adapters.flatfile.store import StoreUnavailable

log = logging.getLogger("esb.adapters.sftp")

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the server to answer, finish the handshake and accept the login, and for
the answer to each request."""

DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 60.0
"""Seconds before the first reconnect attempt after a failure; each failure doubles it, up to
MAX_BACKOFF. Attempts in between fail at once with the last failure's sentence."""


class HostKeyRefused(paramiko.SSHException):
    """The server's host key is not in known_hosts."""


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        raise HostKeyRefused(f"{key.get_name()} {key.fingerprint}")


def fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class SftpConnection:
    """The SFTP session to one server, reopened when it dropped.

    Parameters: `settings`, a system's `sftp` block: `host`, `port` (22), `user`, `password` or
    `key_file` (+ `key_passphrase`), `known_hosts` (a file in OpenSSH's format; required: no key is
    ever accepted on first sight), `connect_timeout` (seconds, 10)."""

    def __init__(self, settings: dict[str, Any]):
        self.host = settings["host"]
        self.port = int(settings.get("port") or DEFAULT_PORT)
        self.user = settings["user"]
        self.password = settings.get("password")
        self.key_file = settings.get("key_file")
        self.key_passphrase = settings.get("key_passphrase")
        self.known_hosts = settings["known_hosts"]
        self.timeout = float(settings.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT)
        self.backoff = float(settings.get("reconnect_backoff") or DEFAULT_BACKOFF)
        self.where = f"sftp {self.user}@{self.host}:{self.port}"
        self.lock = threading.RLock()
        """Held for each SFTP request: paramiko's SFTPClient must not be used by two threads at once
        (one thread can read the other's answer), and the system's source and sinks share it."""
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.problem: str | None = None
        """The last failure's sentence while the server cannot be used, else None."""

    def sftp(self) -> paramiko.SFTPClient:
        """The live session, opened (again) if needed; StoreUnavailable with one sentence if not."""
        with self.lock:
            if self._sftp is not None and self.alive():
                return self._sftp
            self.close()
            if self.problem is not None and time.monotonic() < self._retry_at:
                raise StoreUnavailable(self.problem)
            try:
                self._open()
            except StoreUnavailable as failure:
                self._failed(str(failure))
                raise
            if self.problem is not None:
                log.warning("%s: connected again", self.where)
            self.problem, self._failures = None, 0
            return self._sftp

    def alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    def lost(self, error: BaseException) -> StoreUnavailable:
        """The error to raise for `error` raised by a call that found the connection gone."""
        with self.lock:
            self.close()
            self._failed(f"{self.where}: the connection was lost ({type(error).__name__}: {error})")
            return StoreUnavailable(self.problem)

    def close(self) -> None:
        with self.lock:
            client, self._client, self._sftp = self._client, None, None
            if client is not None:
                client.close()

    def _failed(self, sentence: str) -> None:
        if sentence != self.problem:
            log.warning("%s", sentence)
        self.problem = sentence
        self._retry_at = time.monotonic() + min(self.backoff * 2 ** self._failures, MAX_BACKOFF)
        self._failures += 1

    def _open(self) -> None:
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(self.known_hosts)
        except OSError as error:
            raise StoreUnavailable(f"{self.where}: cannot read known_hosts {self.known_hosts}: "
                                   f"{error.strerror or error}") from None
        client.set_missing_host_key_policy(_RefuseUnknown())
        try:
            client.connect(self.host, self.port, username=self.user, password=self.password,
                           key_filename=self.key_file, passphrase=self.key_passphrase,
                           timeout=self.timeout, banner_timeout=self.timeout, auth_timeout=self.timeout,
                           look_for_keys=False, allow_agent=False)
            self._sftp = client.open_sftp()
            self._sftp.get_channel().settimeout(self.timeout)  # a server that stops answering is lost
        except HostKeyRefused as error:
            client.close()
            raise StoreUnavailable(f"{self.where}: host key {error} is not in {self.known_hosts}; refused "
                                   f"(check the fingerprint with the partner, then add the key: "
                                   f"ssh-keyscan -p {self.port} {self.host} >> {self.known_hosts})") from None
        except paramiko.BadHostKeyException as error:
            client.close()
            raise StoreUnavailable(f"{self.where}: the host key CHANGED: the server shows "
                                   f"{fingerprint(error.key)}, {self.known_hosts} has "
                                   f"{fingerprint(error.expected_key)}; refused (if the partner really "
                                   f"changed its key, replace the line in known_hosts)") from None
        except paramiko.AuthenticationException as error:
            client.close()
            what = "the key " + Path(self.key_file).name if self.key_file else "the password"
            raise StoreUnavailable(f"{self.where}: login refused with {what} ({error})") from None
        except (OSError, EOFError, paramiko.SSHException) as error:
            client.close()
            text = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise StoreUnavailable(f"{self.where}: unreachable ({text})") from None
        self._client = client


_connections: dict[tuple, SftpConnection] = {}
_connections_lock = threading.Lock()


def connection_for(settings: dict[str, Any]) -> SftpConnection:
    """The one connection of the system whose `sftp` block is `settings` (shared by every route)."""
    key = tuple(sorted((name, str(value)) for name, value in settings.items()))
    with _connections_lock:
        connection = _connections.get(key)
        if connection is None:
            connection = _connections[key] = SftpConnection(settings)
        return connection


def connect_problems(endpoint, system: dict[str, Any] | None, role: str) -> list[str]:
    """`esb check --connect`: the server answers, shows the host key known_hosts has, and takes the
    login; one sentence per problem (the same as the bus would log), none when all is well. Uses a
    connection of its own, closed at once, and logs nothing (the checker prints the sentences)."""
    if not system:
        return []
    connection = SftpConnection(system)
    try:
        with connection.lock:
            connection._open()
            folder = endpoint.options.get("dir")
            attributes = _stat_quietly(connection._sftp, folder) if folder else None
        if attributes is not None and attributes.st_mode is not None and not stat.S_ISDIR(attributes.st_mode):
            return [f"{connection.where}: {folder} is not a folder on the server"]
        return []
    except StoreUnavailable as failure:
        return [str(failure)]
    finally:
        connection.close()


def _stat_quietly(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.stat(path)
    except OSError:
        return None  # absent: the source and the sink make their folders
