"""Hot reload of `esb run`: on SIGHUP, or with `--watch` when the routes file or a mapping it names
changes, the new files are checked as `esb check` checks them; only a clean config is swapped in
(`Runtime.reload`), and a broken one is refused with its problems logged while the old one keeps
running. Every attempt is written to the audit log (`esb.audit`, action "reload").

What a reload may change: mappings, filters, validation, splits and destination options. A
change of the set of routes or destinations, of a source or of a retry policy needs a restart (the
queues, consumers and endpoints are built at start): such a reload is refused and says so.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from esb.audit import AuditLog
from esb.errors import ConfigError
from esb.routes import Config

log = logging.getLogger("esb.reload")

WATCH_INTERVAL = 1.0
"""Seconds between two looks at the files' modification times with --watch."""


def restart_needed(old: Config, new: Config) -> list[str]:
    """What changed between `old` and `new` that a reload cannot apply (empty: it can)."""
    found = []
    old_routes = {route.name: route for route in old.routes}
    new_routes = {route.name: route for route in new.routes}
    if list(old_routes) != list(new_routes):
        changed = ", ".join(sorted(set(old_routes) ^ set(new_routes))) or "their order"
        found.append(f"the routes changed ({changed})")
    for name in old_routes.keys() & new_routes.keys():
        before, after = old_routes[name], new_routes[name]
        if [d.name for d in before.destinations] != [d.name for d in after.destinations]:
            found.append(f"route {name}: the destinations changed")
        if (before.source.adapter, before.source.options) != (after.source.adapter, after.source.options):
            found.append(f"route {name}: the source changed")
        if before.retry != after.retry or before.options != after.options:
            found.append(f"route {name}: the retry policy or route options changed")
        for destination in after.destinations:
            if any(d.name == destination.name and d.endpoint.adapter != destination.endpoint.adapter
                   for d in before.destinations):
                found.append(f"route {name}: destination {destination.name} changed its adapter")
    if old.settings != new.settings:
        found.append("the settings changed")
    return sorted(found)


def watched_files(config: Config) -> list[Path]:
    """The routes file and every mapping file it names."""
    maps = [route.map for route in config.routes] + [d.map for route in config.routes
                                                     for d in route.destinations]
    return [Path(config.path), *(Path(path) for path in dict.fromkeys(m for m in maps if m))]


class Reloader:
    """Reloads `runtime` from `path` on request (`request()`, safe in a signal handler) or on change."""

    def __init__(self, runtime: Any, path: str | os.PathLike, audit: AuditLog, *, watch: bool = False,
                 interval: float = WATCH_INTERVAL):
        self.runtime, self.path, self.audit = runtime, str(path), audit
        self.watch, self.interval = watch, interval
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._stamps = self._mtimes()
        self._thread = threading.Thread(target=self._loop, name="esb-reload", daemon=True)

    def start(self) -> Reloader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._wanted.set()
        self._thread.join(10)

    def request(self) -> None:
        """Ask for a reload (from SIGHUP): done on the reload thread, never in the handler."""
        self._wanted.set()

    def _loop(self) -> None:
        while not self._stopped.is_set():
            asked = self._wanted.wait(self.interval if self.watch else None)
            if self._stopped.is_set():
                return
            self._wanted.clear()
            if asked:
                self.reload("signal")
            elif self.watch and self._mtimes() != self._stamps:
                self.reload("watch")

    def _mtimes(self) -> dict[str, float | None]:
        stamps = {}
        for path in watched_files(self.runtime.config):
            try:
                stamps[str(path)] = path.stat().st_mtime_ns
            except OSError:
                stamps[str(path)] = None
        return stamps

    def reload(self, trigger: str) -> bool:
        """Check the files, then swap them in; False (logged, audited) when refused."""
        from esb.config import load_config

        try:
            config = load_config(self.path)
            problems = [f"needs a restart: {reason}"
                        for reason in restart_needed(self.runtime.config, config)]
            if not problems:
                self.runtime.reload(config)
        except ConfigError as error:
            problems = [str(problem) for problem in error.problems]
        except (OSError, RuntimeError, ValueError) as error:
            problems = [f"{type(error).__name__}: {error}"]
        self._stamps = self._mtimes()  # a refused change is not retried until the files change again
        ok = not problems
        for problem in problems:
            log.error("reload refused: %s", problem)
        if ok:
            log.info("reload done (%s): %d routes", trigger, len(self.runtime.config.routes))
        self.audit.record(who=f"esb run ({trigger})", action="reload",
                          target={"config": self.path, "pid": os.getpid()},
                          outcome={"ok": ok, "problems": problems})
        return ok
