"""The demo's bus: a runtime that notes every message it accepted, and the shipped routes pointed at
the simulators."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from esb.config import load_config
from esb.routes import Config, Endpoint
from esb.runtime import Runtime

FILE_POLL = 0.5
"""Seconds between two polls of a polled source (files, SOAP) in the demo (10 s to 1 h in the
shipped routes), so the demo does not wait for them."""


class _DemoRuntime(Runtime):
    """The runtime, noting the id of every message it accepted, and how many raw inputs it
    dead-lettered, per route."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.accepted: dict[str, list[str]] = {route.name: [] for route in self.config.routes}
        self.raw_dead_letters: dict[str, int] = {route.name: 0 for route in self.config.routes}
        self._accepted_lock = threading.Lock()

    def dead_letter(self, route_name, raw, error):
        message_id = super().dead_letter(route_name, raw, error)
        with self._accepted_lock:
            self.raw_dead_letters[route_name] += 1
        return message_id

    def stored(self, route_name, accepted):
        with self._accepted_lock:
            known = self.accepted[route_name]
            known.extend(i for i in accepted.message_ids if i not in known)


def demo_config(routes_path: Path, environ: dict[str, str], prefix: str = "",
                extra: tuple[Path, ...] = ()) -> Config:
    """The shipped routes with `environ` pointing them at the simulators; every poll made fast
    and, with `prefix`, every route renamed `<prefix><name>` (its queues too). The routes (and
    systems) of the `extra` files are added: the partner flow of `esb.demo.partners`."""
    config = load_config(routes_path, environ)
    for path in extra:
        more = load_config(path, environ)
        config = dataclasses.replace(config, systems={**config.systems, **more.systems},
                                     routes=config.routes + more.routes)
    routes = []
    for route in config.routes:
        source = route.source
        if source.options.get("poll"):
            options = {**source.options, "poll": FILE_POLL}
            if source.adapter == "file":
                options["min_age"] = 0  # the simulated WMS renames a finished file into place
            source = dataclasses.replace(source, options=options)
        source = _renamed_links(source, "alert_into", prefix)
        if prefix and source.adapter == "alerts" and source.options.get("rules"):
            rules = [{**rule, "routes": [prefix + name for name in rule["routes"]]} if rule.get("routes")
                     else rule for rule in source.options["rules"]]
            source = dataclasses.replace(source, options={**source.options, "rules": rules})
        destinations = tuple(dataclasses.replace(d, endpoint=_renamed_links(d.endpoint, "into", prefix))
                             for d in route.destinations)
        routes.append(dataclasses.replace(route, name=prefix + route.name, source=source,
                                          destinations=destinations))
    return dataclasses.replace(config, routes=tuple(routes))


def _renamed_links(endpoint: Endpoint, option: str, prefix: str) -> Endpoint:
    """An endpoint naming another route (aggregate `into`, `alert_into`) names it with the prefix."""
    if not prefix or not isinstance(endpoint.options.get(option), str):
        return endpoint
    renamed = prefix + endpoint.options[option]
    return dataclasses.replace(endpoint, options={**endpoint.options, option: renamed})
