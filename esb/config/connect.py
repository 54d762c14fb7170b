"""`esb check --connect`: the checks that ask the running systems (a database: does every table
and column the routes name exist?), through each adapter's `connect_check`. Kept apart from the
file checks, which never open a connection."""

from __future__ import annotations

from esb.plugins import get_adapter
from esb.problems import Problem
from esb.routes import Config, Endpoint


def connect_problems(config: Config) -> list[Problem]:
    """Every problem the adapters find on the systems of `config`'s routes, at the endpoint's line."""
    problems = []
    for route in config.routes:
        endpoints: list[tuple[Endpoint, str, str]] = [(route.source, "source", "from")]
        endpoints += [(d.endpoint, "sink", f"to {d.name}") for d in route.destinations]
        for endpoint, role, place in endpoints:
            spec = get_adapter(endpoint.adapter)
            if spec.connect_check is None:
                continue
            system = config.systems.get(endpoint.system) if endpoint.system else None
            settings = system.settings.get(endpoint.adapter) if system is not None else None
            problems.extend(Problem(config.path, endpoint.line, f"route {route.name} ({place}): {sentence}")
                            for sentence in spec.connect_check(endpoint, settings, role))
    return problems
