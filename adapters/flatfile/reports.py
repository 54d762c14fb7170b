"""The error report of a file: one entry per bad part (its lines, what is wrong, whether it was
dead-lettered), and moving a file that cannot be finished into error_dir."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from adapters.flatfile.claims import display_name
from adapters.flatfile.progress import json_bytes
from adapters.flatfile.store import FileStore, StoreUnavailable

log = logging.getLogger("esb.adapters.flatfile")

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
                             "message": getattr(error, "message", None) or describe(error)}
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
    report = {**report, "moved_to": display_name(str(target))}
    store.write(target.with_name(target.name + REPORT_SUFFIX), json_bytes(report))
    return store.move_aside(path, error_dir, target.name)


def describe(error: BaseException) -> str:
    """An unexpected error in a sentence: its type and its text."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class ErrorFolder:
    """Moves the files a source cannot finish into `error_dir` with a report, counts each in the
    `set_aside(reason)` hook (a metric), and remembers a file that could not even be moved: that
    one is logged and counted once, then skipped until the process restarts.

    Parameters: `store`, `error_dir`, `route` (named in reports and logs), `set_aside`."""

    def __init__(self, store: FileStore, error_dir: PurePath, route: str,
                 set_aside: Callable[[str], None] | None = None):
        self.store = store
        self.dir = error_dir
        self.route = route
        self.set_aside = set_aside
        self._stuck: set[str] = set()

    def is_stuck(self, path: PurePath) -> bool:
        return str(path) in self._stuck

    def move(self, path: PurePath, name: str, report: dict[str, Any], reason: str) -> PurePath | None:
        """Move `path` (the file `name`) aside with `report`; None when it could not be moved."""
        shown = display_name(name)
        try:
            target = write_report_and_move(self.store, path, self.dir, name, {"file": shown, **report})
        except StoreUnavailable:
            raise  # not this file's fault: it is moved once the store is back
        except Exception as failure:  # noqa: BLE001 - whatever it is, the poll goes on without this file
            if not self.is_stuck(path):
                self._stuck.add(str(path))
                log.error("route %s: %s cannot be moved to %s (%s): %s; it is skipped until the bus "
                          "restarts", self.route, shown, self.dir, describe(failure), report.get("error"))
                self._count("unmovable")
            return None
        log.warning("route %s: %s moved to %s: %s", self.route, shown, display_name(str(target)),
                    report.get("error") or f"{report.get('refused')} bad parts (dead-lettered)")
        self._count(reason)
        return target

    def _count(self, reason: str) -> None:
        if self.set_aside is not None:
            try:
                self.set_aside(reason)
            except Exception:  # a metric never stops a poll
                log.exception("route %s: counting a file set aside failed", self.route)
