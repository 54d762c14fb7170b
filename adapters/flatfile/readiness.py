"""Which entries of a source directory to take now, which to leave, and which to move aside.

A file is taken when its writer is done with it, told by one of (Camel's file component offers
the same): its marker (`done_file: "{name}.done"`), or its size and modification time unchanged
for `min_age` seconds. Dot-names and the `ignore` globs (`*.tmp`, `*.part`, ...) are never
taken, so a writer that writes under such a name and renames when done needs neither.

What matches `pattern` but is not a regular file (a directory, a FIFO, a socket, a symbolic link
unless `follow_symlinks`) is never opened: it is returned to be moved aside with a report.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.flatfile.store import DIRECTORY, FILE, SYMLINK, Entry, FileStore


@dataclass(frozen=True, slots=True)
class Stray:
    """An entry that matches `pattern` but cannot be read as a file: why, in a sentence."""

    entry: Entry
    why: str


KINDS = {DIRECTORY: "a directory", SYMLINK: "a symbolic link", "other": "not a regular file (a FIFO, "
                                                                        "socket or device)"}


class Readiness:
    """Decides, scan by scan, what of a source directory is complete (see the module docstring).

    Parameters: `options` (the endpoint's), `store`, `directory`, `own` (names of the source's own
    folders inside the directory: processed, error), `clock` (seconds since the epoch)."""

    def __init__(self, options: dict[str, Any], store: FileStore, directory: Path, own: set[str]):
        self.pattern = options["pattern"]
        self.ignore = list(options["ignore"] or [])
        self.min_age = float(options["min_age"] or 0)
        self.done_file = options["done_file"]
        self.follow_symlinks = bool(options["follow_symlinks"])
        self.store = store
        self.dir = directory
        self.own = own
        self._seen: dict[str, tuple[int, int]] = {}

    def marker_of(self, name: str) -> str | None:
        """The name of the done-file of `name`, when markers are used."""
        if not self.done_file:
            return None
        stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
        return self.done_file.replace("{name}", name).replace("{stem}", stem)

    def is_marker(self, name: str) -> bool:
        if not self.done_file:
            return False
        return fnmatch.fnmatchcase(name, self.done_file.replace("{name}", "*").replace("{stem}", "*"))

    def scan(self, entries: list[Entry], now: float) -> tuple[list[Entry], list[Stray]]:
        """(the files to take now, in name order; the strays to move aside)."""
        names = {entry.name for entry in entries}
        ready: list[Entry] = []
        strays: list[Stray] = []
        seen: dict[str, tuple[int, int]] = {}
        for entry in sorted(entries, key=lambda entry: entry.name):
            if not self._candidate(entry.name):
                continue
            if entry.kind == SYMLINK and self.follow_symlinks:
                target = self.store.stat(self.dir / entry.name, follow_symlinks=True)
                if target is None:
                    strays.append(Stray(entry, "a symbolic link to nothing (its target is gone)"))
                    continue
                if target.kind != FILE:
                    strays.append(Stray(entry, f"a symbolic link to {KINDS.get(target.kind, target.kind)}"))
                    continue
                entry = Entry(entry.name, FILE, target.size, target.mtime_ns)
            elif entry.kind != FILE:
                why = KINDS.get(entry.kind, entry.kind)
                if entry.kind == SYMLINK:
                    why += " (follow_symlinks is false)"
                strays.append(Stray(entry, why))
                continue
            seen[entry.name] = (entry.size, entry.mtime_ns)
            if self._complete(entry, names, now):
                ready.append(entry)
        self._seen = seen
        return ready, strays

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)

    def _candidate(self, name: str) -> bool:
        if name.startswith(".") or name in self.own or self.is_marker(name):
            return False
        if any(fnmatch.fnmatchcase(name, glob) for glob in self.ignore):
            return False
        return fnmatch.fnmatchcase(name, self.pattern)

    def _complete(self, entry: Entry, names: set[str], now: float) -> bool:
        if self.done_file:
            return self.marker_of(entry.name) in names
        changed = self._seen.get(entry.name, (entry.size, entry.mtime_ns)) != (entry.size, entry.mtime_ns)
        return not changed and now - entry.mtime_ns / 1e9 >= self.min_age
