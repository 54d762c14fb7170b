"""The error report of a file: one entry per bad part (its lines, what is wrong, whether it was
dead-lettered), and moving a finished file to processed_dir or error_dir."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_LISTED_LINES = 100
"""A bad part of more lines than this is reported by its first and last line only."""


def problem_entry(error: BaseException, span: tuple[int, int] | None, dead_lettered: bool) -> dict[str, Any]:
    """One bad part of a file for the report: its lines, what is wrong, and whether its raw bytes
    went to the dead-letter queue. `span` is (first, last line); None: the lines the error names."""
    if span is None:  # per: file
        lines = sorted({int(number) for number in re.findall(r"\bline (\d+)", str(error))})
    else:
        lines = list(range(span[0], span[1] + 1))
    entry: dict[str, Any] = {"line": lines[0] if lines else None, "last_line": lines[-1] if lines else None,
                             "lines": lines if len(lines) <= MAX_LISTED_LINES else None,
                             "error": getattr(error, "kind", type(error).__name__),
                             "message": getattr(error, "message", str(error))}
    problems = getattr(error, "problems", None)
    if problems:
        entry["problems"] = [problem.as_dict() for problem in problems]
    entry["dead_lettered"] = dead_lettered
    return entry



def move_aside(path: Path, directory: Path, name: str) -> Path:
    """Move `path` to `directory/name`, adding a UTC time when that name is taken."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.exists():
        stem, dot, suffix = name.rpartition(".")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = directory / (f"{stem}.{stamp}.{suffix}" if dot and stem else f"{name}.{stamp}")
    try:
        os.rename(path, target)
    except OSError:  # another file system
        shutil.move(str(path), str(target))
    return target
