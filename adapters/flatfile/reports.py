"""The error report of a file: one entry per bad part (its lines, what is wrong, whether it was
dead-lettered), and moving a finished file to processed_dir or error_dir."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from adapters.flatfile.progress import json_bytes
from adapters.flatfile.store import FileStore

REPORT_SUFFIX = ".error.json"

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



def write_report_and_move(store: FileStore, path: PurePath, error_dir: PurePath, name: str,
                          report: dict[str, Any]) -> PurePath:
    """Move the file at `path` (named `name` in the inbox) into `error_dir`, with the `report`
    beside it as `<name>.error.json` (written first, so a file in error_dir always has one)."""
    store.make_folder(error_dir)
    target = store.free_name(error_dir, name, REPORT_SUFFIX)
    report = {**report, "moved_to": str(target)}
    store.write(target.with_name(target.name + REPORT_SUFFIX), json_bytes(report))
    return store.move_aside(path, error_dir, target.name)
