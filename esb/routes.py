"""The configuration model: systems, routes and their endpoints, as loaded from routes.yaml.

`esb.config` builds these from the file (and reports problems); everything else reads them.
Plain frozen dataclasses: no I/O, no broker, no adapter code here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esb.retry import RetryPolicy
from esb.splitter import Split


@dataclass(frozen=True, slots=True)
class System:
    """A named external system: per adapter, its connection settings (`{"rest": {...}}`)."""

    name: str
    settings: dict[str, dict[str, Any]]
    line: int = 0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One `from` or `to` block: the adapter name and its options (`system` already resolved)."""

    adapter: str
    options: dict[str, Any]
    line: int = 0

    @property
    def system(self) -> str | None:
        return self.options.get("system")


@dataclass(frozen=True, slots=True)
class Destination:
    """One `to` entry of a route; `name` is unique within the route and names its queues."""

    name: str
    endpoint: Endpoint
    map: str | None = None  # path of the outbound mapping (canonical -> target format)
    filter: str | None = None  # an extra condition for this destination only
    line: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    source: Endpoint
    destinations: tuple[Destination, ...]
    map: str | None = None  # path of the inbound mapping (source format -> canonical)
    validate: str | None = None  # canonical type
    schema_version: int = 1
    filter: str | None = None  # JMESPath over the envelope ({payload, type, ...}); falsy = skip
    split: Split | None = None  # one document per value of a field of its lines (esb.splitter)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"queue_type": "quorum"}
    line: int = 0

    def destination(self, name: str) -> Destination:
        for destination in self.destinations:
            if destination.name == name:
                return destination
        from esb.problems import UnknownName, did_you_mean

        known = [d.name for d in self.destinations]
        raise UnknownName(f'route "{self.name}" has no destination "{name}"{did_you_mean(name, known)}; '
                          f"known: {', '.join(known)}")


@dataclass(frozen=True, slots=True)
class Config:
    path: str  # the routes file; relative paths in it are relative to its directory
    systems: dict[str, System]
    routes: tuple[Route, ...]
    settings: dict[str, Any] = field(default_factory=dict)  # top-level `settings:` (broker url, ...)

    def route(self, name: str) -> Route:
        for route in self.routes:
            if route.name == name:
                return route
        from esb.problems import UnknownName, unknown

        raise UnknownName(unknown("route", name, [r.name for r in self.routes]))
