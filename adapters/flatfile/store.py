"""Where the file source's files are: the `FileStore` interface, and `LocalDirectory`, a directory
of the local (or a mounted network) file system.

The source never touches a file but through a store, so another store (an SFTP server, issue
18) only needs these operations: list a folder without following links, stat, open a regular
file for reading, an atomic rename that tells whether the file was still there (the claim),
move a file into another folder under a free name, write a small file atomically (progress and
reports), read and remove one. Paths are `PurePath`s under the store's folders.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat as stat_module
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import BinaryIO, Protocol

from esb.atomicfile import atomic_write

NAME_MAX = 255
"""Longest file name, in bytes, on the usual file systems (ext4, XFS, btrfs, tmpfs, NFS)."""

FILE, DIRECTORY, SYMLINK, OTHER = "file", "directory", "symlink", "other"
"""The kinds of entry a folder holds (OTHER: a FIFO, socket or device)."""


class StoreUnavailable(Exception):
    """The store cannot be reached now (an SFTP server down): the source keeps its claims and
    tries again at the next poll; nothing is moved aside for it."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a folder, as it is (a symbolic link is not followed)."""

    name: str
    kind: str
    size: int
    mtime_ns: int


class FileStore(Protocol):
    """The operations the file source needs from the place its files are."""

    def entries(self, folder: PurePath) -> list[Entry]:
        """The entries of `folder`, links not followed; [] when it does not exist."""

    def stat(self, path: PurePath, *, follow_symlinks: bool = False) -> Entry | None:
        """What `path` is now; None when it is gone."""

    def open(self, path: PurePath, *, follow_symlinks: bool = False) -> BinaryIO:
        """`path` for reading; OSError unless it is a regular file (a FIFO is never opened)."""

    def rename(self, source: PurePath, target: PurePath) -> bool:
        """Rename atomically; False when `source` is gone (another worker took it)."""

    def move_aside(self, source: PurePath, folder: PurePath, name: str) -> PurePath:
        """Move `source` into `folder` (made when missing) as `name`, with a UTC time added when
        that name is taken; returns where it went."""

    def free_name(self, folder: PurePath, name: str, *companions: str) -> PurePath:
        """`folder/name`, or with a UTC time added when it or `name + companion` is taken."""

    def write(self, path: PurePath, data: bytes) -> None:
        """Replace `path` with `data` atomically (a temporary name, then a rename)."""

    def read(self, path: PurePath) -> bytes | None:
        """The content of `path`; None when it does not exist."""

    def remove(self, path: PurePath) -> None:
        """Remove a file; nothing when it is gone."""

    def make_folder(self, folder: PurePath) -> None:
        """Make `folder` and its parents when missing."""

    def remove_folder(self, folder: PurePath) -> None:
        """Remove `folder` if it is empty; nothing when it is gone or holds something."""


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


def fitted(name: str, room: int = 0) -> str:
    """`name`, or a shorter one with a digest of it, so that `room` more bytes still fit in NAME_MAX;
    the extension is kept."""
    raw = os.fsencode(name)
    if len(raw) + room <= NAME_MAX:
        return name
    stem, dot, extension = raw.rpartition(b".")
    if not dot or not stem or len(extension) > 16:
        stem, dot, extension = raw, b"", b""
    digest = hashlib.sha256(raw).hexdigest()[:12].encode()
    keep = max(0, NAME_MAX - room - len(digest) - 1 - len(dot + extension))
    return os.fsdecode(stem[:keep] + b"~" + digest + dot + extension)


def stamped(name: str, room: int = 0) -> str:
    """`name` with the UTC time before its extension (for a name already taken), fitted."""
    stem, dot, suffix = name.rpartition(".")
    return fitted(f"{stem}.{_stamp()}.{suffix}" if dot and stem else f"{name}.{_stamp()}", room)


def _kind(mode: int) -> str:
    if stat_module.S_ISREG(mode):
        return FILE
    if stat_module.S_ISDIR(mode):
        return DIRECTORY
    if stat_module.S_ISLNK(mode):
        return SYMLINK
    return OTHER


class LocalDirectory:
    """A `FileStore` on the local file system (or a mounted share)."""

    def entries(self, folder: PurePath) -> list[Entry]:
        try:
            scanned = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        entries = []
        for entry in scanned:
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # another worker claimed it since the scan
            entries.append(Entry(entry.name, _kind(stat.st_mode), stat.st_size, stat.st_mtime_ns))
        return entries

    def stat(self, path: PurePath, *, follow_symlinks: bool = False) -> Entry | None:
        try:
            stat = os.stat(path, follow_symlinks=follow_symlinks)
        except FileNotFoundError:
            return None
        return Entry(PurePath(path).name, _kind(stat.st_mode), stat.st_size, stat.st_mtime_ns)

    def open(self, path: PurePath, *, follow_symlinks: bool = False) -> BinaryIO:
        # O_NONBLOCK: a FIFO put in place of the file since it was listed does not block the poll
        no_follow = 0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | no_follow)
        try:
            if not stat_module.S_ISREG(os.fstat(descriptor).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(path))
            os.set_blocking(descriptor, True)
            return os.fdopen(descriptor, "rb")
        except BaseException:
            os.close(descriptor)
            raise

    def rename(self, source: PurePath, target: PurePath) -> bool:
        try:
            os.rename(source, target)
        except FileNotFoundError:
            if not os.path.lexists(source):
                return False
            raise
        return True

    def move_aside(self, source: PurePath, folder: PurePath, name: str) -> PurePath:
        self.make_folder(folder)
        target = Path(folder) / fitted(name)
        if os.path.lexists(target):
            target = Path(folder) / stamped(name)
        try:
            os.rename(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            shutil.move(str(source), str(target))  # another file system
        return target

    def free_name(self, folder: PurePath, name: str, *companions: str) -> PurePath:
        room = max((len(os.fsencode(extra)) for extra in companions), default=0)
        target = Path(folder) / fitted(name, room)
        if any(os.path.lexists(target.with_name(target.name + extra)) for extra in ("", *companions)):
            target = Path(folder) / stamped(name, room)
        return target

    def write(self, path: PurePath, data: bytes) -> None:
        atomic_write(path, data)

    def read(self, path: PurePath) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, path: PurePath) -> None:
        Path(path).unlink(missing_ok=True)

    def make_folder(self, folder: PurePath) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)

    def remove_folder(self, folder: PurePath) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            os.rmdir(folder)
