"""What the admin API and the dashboard show of a route: its state, counters, queue depths and
last error."""

from __future__ import annotations

from typing import Any

from esb import metrics
from esb.routes import Route
from esb.transport.contract import Transport
from esb.transport.topology import DEAD_LETTER, INBOUND_DEAD_LETTER, RETRY, WORK


def route_state(
    route: Route,
    counters: dict[str, Any],
    errors: dict[str, Any],
    queues: metrics.QueueCollector,
    transport: Transport,
    latency: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One route: `counters` from `metrics.counters_by_route()`, `errors` from
    `Journal.last_errors()`, depths and consumers from `queues`, pauses from `transport`, the
    p50/p99 end-to-end latency per destination from `metrics.latency_by_destination()`."""
    counted = counters.get(route.name, {"total": {}, "destinations": {}, "last_success": None})
    destinations = []
    for destination in route.destinations:
        work = queues.depth(route.name, destination.name, WORK)
        destinations.append(
            {
                "name": destination.name,
                "adapter": destination.endpoint.adapter,
                "counters": counted["destinations"].get(destination.name, {}),
                "queue_depth": work,
                "consumers": queues.consumers(route.name, destination.name, WORK),
                "retry_depth": queues.depth(route.name, destination.name, RETRY),
                "dead_letter_depth": queues.depth(route.name, destination.name, DEAD_LETTER),
                "latency": (latency or {}).get((route.name, destination.name),
                                               {"count": 0, "p50": None, "p99": None}),
            }
        )
    consumers = [d["consumers"] for d in destinations]
    paused = transport.paused(route.name)
    for destination in destinations:
        destination["paused"] = destination["name"] in paused
    if not transport.connected:
        state = "disconnected"
    elif paused and len(paused) == len(destinations):
        state = "paused"
    elif any(c is None for c in consumers):
        state = "unknown"
    elif all(consumers):
        state = "running"
    else:
        state = "degraded" if any(consumers) else "stopped"
    dead_letter_depths = [d["dead_letter_depth"] for d in destinations]
    inbound = queues.depth(route.name, None, INBOUND_DEAD_LETTER)
    return {
        "name": route.name,
        "source": route.source.adapter,
        "state": state,
        "counters": counted["total"],
        "last_success": counted["last_success"],
        "last_error": errors.get(route.name),
        "dead_letter_depth": None
        if None in dead_letter_depths or inbound is None
        else sum(dead_letter_depths) + inbound,
        "destinations": destinations,
    }
