"""`SftpStore`: the file source's `FileStore` on an SFTP server, so that claims, progress files,
`processed/` and `error/` all live on the partner's server, as they would in a local directory.

A call that finds the connection gone raises `StoreUnavailable` (the source keeps its claim and
resumes at the next poll, from the progress saved on the server); an SFTP status error (no such
file, permission denied) is an `OSError`, as on a local disk. The claim is SFTP's plain RENAME,
which OpenSSH carries out as link + unlink: it fails when the target exists, so of two workers
only one gets a file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import secrets
import stat as stat_module
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import BinaryIO, TypeVar

import paramiko

from adapters.flatfile.store import DIRECTORY, FILE, OTHER, SYMLINK, Entry, fitted, stamped
from adapters.sftp.connection import SftpConnection

T = TypeVar("T")

READ_BUFFER = 65_536
"""Bytes asked of the server per read (two SFTP requests of 32 KiB): a record is streamed, never
the whole file."""


DROPPED = (EOFError, paramiko.SSHException, TimeoutError)
"""What paramiko raises when the connection itself failed (an SFTP status error is an OSError)."""


def _active(sftp: paramiko.SFTPClient) -> bool:
    transport = sftp.get_channel().get_transport()
    return transport is not None and transport.is_active()


def _kind(mode: int | None) -> str:
    mode = mode or 0
    if stat_module.S_ISREG(mode):
        return FILE
    if stat_module.S_ISDIR(mode):
        return DIRECTORY
    if stat_module.S_ISLNK(mode):
        return SYMLINK
    return OTHER


def _entry(name: str, attributes: paramiko.SFTPAttributes) -> Entry:
    mtime_ns = int(attributes.st_mtime or 0) * 10**9  # SFTP v3 gives whole seconds
    return Entry(name, _kind(attributes.st_mode), attributes.st_size or 0, mtime_ns)


class SftpStore:
    """A `FileStore` on an SFTP server, through `connection` (shared with the system's other routes)."""

    def __init__(self, connection: SftpConnection):
        self.connection = connection

    def call(self, action: Callable[[paramiko.SFTPClient], T]) -> T:
        """`action(sftp)`; a dropped connection becomes StoreUnavailable, an SFTP status error stays."""
        with self.connection.lock:
            sftp = self.connection.sftp()
            try:
                return action(sftp)
            except (EOFError, OSError, paramiko.SSHException) as error:
                if isinstance(error, DROPPED) or not _active(sftp):
                    raise self.connection.lost(error) from None
                raise

    def _lstat(self, path) -> paramiko.SFTPAttributes | None:
        try:
            return self.call(lambda sftp: sftp.lstat(str(path)))
        except FileNotFoundError:
            return None

    def entries(self, folder) -> list[Entry]:
        try:
            listed = self.call(lambda sftp: sftp.listdir_attr(str(folder)))
        except FileNotFoundError:
            return []
        return [_entry(attributes.filename, attributes) for attributes in listed]

    def stat(self, path, *, follow_symlinks: bool = False) -> Entry | None:
        try:
            attributes = self.call(lambda sftp: (sftp.stat if follow_symlinks else sftp.lstat)(str(path)))
        except FileNotFoundError:
            return None
        return _entry(PurePosixPath(str(path)).name, attributes)

    def open(self, path, *, follow_symlinks: bool = False) -> BinaryIO:
        entry = self.stat(path, follow_symlinks=follow_symlinks)
        if entry is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
        if entry.kind != FILE:  # a FIFO would block the server's reader
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with self.connection.lock:
            sftp = self.connection.sftp()
            handle = self.call(lambda sftp: sftp.open(str(path), "rb"))
        return io.BufferedReader(_RemoteFile(handle, sftp, self.connection), READ_BUFFER)  # type: ignore

    def rename(self, source, target) -> bool:
        try:
            self.call(lambda sftp: sftp.rename(str(source), str(target)))
        except OSError:
            if self._lstat(source) is None:
                return False
            raise
        return True

    def move_aside(self, source, folder, name: str):
        self.make_folder(folder)
        target = type(source)(folder) / fitted(name)
        if self._lstat(target) is not None:
            target = type(source)(folder) / stamped(name)
        self.call(lambda sftp: sftp.rename(str(source), str(target)))
        return target

    def free_name(self, folder, name: str, *companions: str):
        room = max((len(extra.encode()) for extra in companions), default=0)
        target = type(folder)(folder) / fitted(name, room)
        if any(self._lstat(target.with_name(target.name + extra)) is not None for extra in ("", *companions)):
            target = type(folder)(folder) / stamped(name, room)
        return target

    def write(self, path, data: bytes) -> None:
        """Write under a temporary dot-name, then rename over `path` (OpenSSH's posix-rename)."""
        final = PurePosixPath(str(path))
        temporary = str(final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp"))

        def write(sftp: paramiko.SFTPClient) -> None:
            try:
                with sftp.open(temporary, "wb") as handle:
                    handle.write(data)
                sftp.posix_rename(temporary, str(final))
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(temporary)
                raise

        self.call(write)

    def read(self, path) -> bytes | None:
        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(str(path), "rb") as handle:
                return handle.read()

        try:
            return self.call(read)
        except FileNotFoundError:
            return None

    def remove(self, path) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.call(lambda sftp: sftp.remove(str(path)))

    def make_folder(self, folder) -> None:
        missing = []
        current = PurePosixPath(str(folder))
        while self._lstat(current) is None and current != current.parent:
            missing.append(current)
            current = current.parent
        for directory in reversed(missing):
            try:
                self.call(lambda sftp, directory=directory: sftp.mkdir(str(directory)))
            except OSError:
                if self._lstat(directory) is None:  # not made by another worker meanwhile
                    raise

    def remove_folder(self, folder) -> None:
        with contextlib.suppress(OSError):
            self.call(lambda sftp: sftp.rmdir(str(folder)))


class _RemoteFile(io.RawIOBase):
    """A file open on the server, as a raw stream; a dropped connection is StoreUnavailable."""

    def __init__(self, handle: paramiko.SFTPFile, sftp: paramiko.SFTPClient, connection: SftpConnection):
        self._handle = handle
        self._sftp = sftp  # the session it was opened in (the connection may have been reopened since)
        self._connection = connection

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            with self._connection.lock:
                data = self._handle.read(len(buffer))
        except (EOFError, OSError, paramiko.SSHException) as error:
            if isinstance(error, DROPPED) or not _active(self._sftp):
                raise self._connection.lost(error) from None
            raise
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._handle.seek(offset, whence)
        return self._handle.tell()

    def tell(self) -> int:
        return self._handle.tell()

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._handle.close()
        super().close()
