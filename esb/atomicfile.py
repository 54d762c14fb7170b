"""Write a file so that a reader (or a crash) never sees half of it.

The data goes to a temporary dot-name in the same directory, is flushed and fsynced, and is
renamed over the target; then the directory itself is fsynced, so the rename survives a power
cut too. Watermarks, progress files and adapter outputs all go through here: `atomic_write`
replaces a file, `write_new` never overwrites another one (an output beside other outputs).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically and durably (parent directories are made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name(path.name))
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def temporary_name(name: str) -> str:
    """A dot-name to write `name` under, no longer than a file name may be (255 bytes)."""
    prefix = os.fsencode(name)[:200]
    return f".{os.fsdecode(prefix)}.{secrets.token_hex(4)}.tmp"


def write_new(directory: str | Path, name: str, data: bytes) -> Path:
    """Write `data` to `directory/name` under a temporary dot-name, fsync it, then link it to its
    name; a file already there with other content keeps its name and this one gets `-2`, `-3`...
    The same content already there is taken as this write done before (a redelivery)."""
    directory = Path(directory)
    temporary = directory / temporary_name(name)
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return link_new(temporary, directory, name, data)


def link_new(temporary: Path, directory: Path, name: str, data: bytes | None = None) -> Path:
    """Give the finished file `temporary` the name `name` in `directory` (or `name-2`, ... when
    taken) without overwriting anything, and remove the temporary name; `data`: see `write_new`."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    try:
        for attempt in range(1, 1000):
            numbered = f"{stem}-{attempt}.{suffix}" if suffix else f"{stem}-{attempt}"
            target = directory / (name if attempt == 1 else numbered)
            try:
                os.link(temporary, target)
            except FileExistsError:
                if data is not None and target.stat().st_size == len(data) and target.read_bytes() == data:
                    return target  # the same message, delivered again
                continue
            except OSError:  # no hard links here (some network shares): rename, if still free
                if target.exists():
                    continue
                os.replace(temporary, target)
            fsync_directory(directory)
            return target
        raise OSError(f"no free name for {name} in {directory}")
    finally:
        temporary.unlink(missing_ok=True)


def fsync_directory(directory: str | Path) -> None:
    """Make a rename or link in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
