"""Write a file so that a reader (or a crash) never sees half of it.

The data goes to a temporary dot-name in the same directory, is flushed and fsynced, and is
renamed over the target; then the directory itself is fsynced, so the rename survives a power
cut too. Watermarks, progress files and adapter outputs all go through here.
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
    temporary = path.with_name(f".{path.name[:200]}.{secrets.token_hex(4)}.tmp")
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
