"""The demo's 3PL SFTP server: a real SSH/SFTP server in-process, on paramiko's server classes
(`ServerInterface`, `SFTPServerInterface`), serving a local folder on a free loopback port, so
`esb demo` needs no sshd: only Python and the bus's own dependencies.

It takes one user with a password (the bus reads it from an environment variable, as in
production), shows a host key made at start (the bus finds it in a known_hosts file the demo
writes, so the check that refuses unknown keys is on), and serves what the bus's SFTP adapter
uses: list, stat, open, rename (refusing to replace, as SFTP v3 says), posix-rename, remove,
mkdir, rmdir. The folder is the login folder, "/" to the client; nothing outside it is reachable.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import threading
from pathlib import Path

import paramiko

_SFTP_OK = paramiko.sftp.SFTP_OK


def _error(error: OSError) -> int:
    return paramiko.SFTPServer.convert_errno(error.errno)


class _Login(paramiko.ServerInterface):
    def __init__(self, user: str, password: str):
        self.user, self.password = user, password

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        good = username == self.user and hmac.compare_digest(password.encode(), self.password.encode())
        return paramiko.AUTH_SUCCESSFUL if good else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else \
            paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(paramiko.SFTPHandle):
    def stat(self):
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as error:
            return _error(error)

    def chattr(self, attr):
        return _SFTP_OK


class _Folder(paramiko.SFTPServerInterface):
    """The SFTP operations on `root`; client paths are taken relative to it."""

    def __init__(self, server, *args, root: Path, **kwargs):
        super().__init__(server, *args, **kwargs)
        self.root = root.resolve()

    def _real(self, path: str) -> str:
        real = (self.root / self.canonicalize(path).lstrip("/")).resolve()
        if real != self.root and self.root not in real.parents:
            raise PermissionError(13, "outside the served folder")
        return str(real)

    def _call(self, action, *paths: str):
        try:
            return action(*(self._real(path) for path in paths))
        except OSError as error:
            return _error(error)

    def list_folder(self, path):
        def listing(real):
            return [paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)), name)
                    for name in os.listdir(real)]
        return self._call(listing, path)

    def stat(self, path):
        return self._call(lambda real: paramiko.SFTPAttributes.from_stat(os.stat(real)), path)

    def lstat(self, path):
        return self._call(lambda real: paramiko.SFTPAttributes.from_stat(os.lstat(real)), path)

    def open(self, path, flags, attr):
        def opened(real):
            descriptor = os.open(real, flags | getattr(os, "O_BINARY", 0), 0o644)
            if flags & os.O_WRONLY:
                mode = "ab" if flags & os.O_APPEND else "wb"
            elif flags & os.O_RDWR:
                mode = "a+b" if flags & os.O_APPEND else "r+b"
            else:
                mode = "rb"
            handle = _Handle(flags)
            handle.filename = real
            handle.readfile = handle.writefile = os.fdopen(descriptor, mode)
            return handle
        return self._call(opened, path)

    def remove(self, path):
        return self._call(lambda real: os.remove(real) or _SFTP_OK, path)

    def rename(self, oldpath, newpath):
        def renamed(old, new):
            if os.path.lexists(new):
                return paramiko.sftp.SFTP_FAILURE  # SFTP v3: a rename never replaces
            os.rename(old, new)
            return _SFTP_OK
        return self._call(renamed, oldpath, newpath)

    def posix_rename(self, oldpath, newpath):
        return self._call(lambda old, new: os.replace(old, new) or _SFTP_OK, oldpath, newpath)

    def mkdir(self, path, attr):
        return self._call(lambda real: os.mkdir(real) or _SFTP_OK, path)

    def rmdir(self, path):
        return self._call(lambda real: os.rmdir(real) or _SFTP_OK, path)

    def chattr(self, path, attr):
        return _SFTP_OK


class DemoSftpServer:
    """`start()` serves `root` on 127.0.0.1:`port` (a free one); `known_hosts` is the file with its
    host key; `stop()` closes the listener and every session."""

    def __init__(self, root: Path, known_hosts: Path, *, user: str, password: str):
        self.root, self.known_hosts, self.user, self._password = root, known_hosts, user, password
        self.host_key = paramiko.ECDSAKey.generate()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._stopping = threading.Event()

    def start(self) -> DemoSftpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key.get_name()} "
                                    f"{self.host_key.get_base64()}\n")
        threading.Thread(target=self._accept, name="demo-sftp", daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(connection)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _Folder, root=self.root)
            self._transports.append(transport)
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=_Login(self.user, self._password))

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        for transport in self._transports:
            transport.close()
