"""Writing a file so that no reader sees half of it and no other file is overwritten."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` to `directory/name` under a temporary dot-name, fsync it, then link it to its
    name; a file already there with other content keeps its name and this one gets `-2`, `-3`..."""
    temporary = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    with open(temporary, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return link_no_overwrite(temporary, directory, name, data)


def link_no_overwrite(temporary: Path, directory: Path, name: str, data: bytes | None = None) -> Path:
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


def fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
