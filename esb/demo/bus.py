"""The demo's bus: a runtime that notes every message it accepted, and the shipped routes pointed at
the simulators."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from esb.config import load_config
from esb.routes import Config
from esb.runtime import Runtime

FILE_POLL = 0.5
"""Seconds between two polls of a file source in the demo (10 s in the shipped routes); min_age is
0 there, since the simulated WMS renames a finished file into place."""



class _DemoRuntime(Runtime):
    """The runtime, noting the id of every message it accepted, per route."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.accepted: dict[str, list[str]] = {route.name: [] for route in self.config.routes}
        self._accepted_lock = threading.Lock()

    def submit(self, route_name, raw, *, idempotency_key=None):
        accepted = super().submit(route_name, raw, idempotency_key=idempotency_key)
        with self._accepted_lock:
            known = self.accepted[route_name]
            known.extend(i for i in accepted.message_ids if i not in known)
        return accepted


def demo_config(routes_path: Path, environ: dict[str, str], prefix: str = "") -> Config:
    """The shipped routes with `environ` pointing them at the simulators; the file poll made fast
    and, with `prefix`, every route renamed `<prefix><name>` (its queues too)."""
    config = load_config(routes_path, environ)
    routes = []
    for route in config.routes:
        source = route.source
        if source.adapter == "file":
            source = dataclasses.replace(source, options={**source.options, "poll": FILE_POLL,
                                                                   "min_age": 0})
        routes.append(dataclasses.replace(route, name=prefix + route.name, source=source))
    return dataclasses.replace(config, routes=tuple(routes))
