"""The broker objects a set of routes needs, derived from the routes alone (pure: no broker here).

For each route `R` with destinations `D1..Dn` and retry policy `P`:

- the bus exchange `esb` (direct, durable), shared by all routes;
- per destination `D`: a durable work queue `esb.R.D` bound to `esb` with key `R` (so one publish
  to the route reaches every destination), one retry queue `esb.R.D.retry.<delay>` per distinct
  delay of `P` and a dead-letter queue `esb.R.D.dlq`;
- `esb.R.dlq` for raw inbound payloads that never became a message.

A retry queue has a per-queue TTL (`x-message-ttl`, the delay) and dead-letters expired messages
through the default exchange back to its work queue (`x-dead-letter-exchange: ""`,
`x-dead-letter-routing-key: esb.R.D`): a per-queue TTL keeps expiry FIFO, which per-message TTLs
in one queue would not. A work queue dead-letters to its own dead-letter queue: the bus never
rejects without requeue itself, so this only catches what the broker drops on its own (an admin's
delivery-limit policy, say) instead of losing it.

Queue type: `classic` by default; `quorum` (replicated, for clusters) per route with the route
option `queue_type: quorum`, or for all routes with the transport's `queue_type`. Quorum retry
queues use at-least-once dead-lettering (`x-dead-letter-strategy: at-least-once` with
`x-overflow: reject-publish`, RabbitMQ 3.10+) so a message cannot be lost on its way back. The
bus counts attempts itself (`esb-attempts`); a quorum delivery-limit is no substitute, as it
also counts redeliveries after a crash or a reconnect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from esb.transport import names
from esb.transport.errors import TopologyError

QUEUE_TYPES = ("classic", "quorum")
DEFAULT_QUEUE_TYPE = "classic"

WORK = "work"
RETRY = "retry"
DEAD_LETTER = "dead-letter"
INBOUND_DEAD_LETTER = "inbound-dead-letter"


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One durable queue: its name, role, owner and declare arguments."""

    name: str
    kind: str  # WORK, RETRY, DEAD_LETTER or INBOUND_DEAD_LETTER
    route: str
    destination: str | None
    arguments: dict[str, Any] = field(default_factory=dict)
    binding_key: str | None = None  # bound to the bus exchange with this key (work queues)
    delay: float | None = None  # seconds a retry queue holds a message

    @property
    def queue_type(self) -> str:
        return self.arguments.get("x-queue-type", DEFAULT_QUEUE_TYPE)


@dataclass(frozen=True, slots=True)
class Topology:
    """Every exchange and queue of a set of routes, in declaration order (dead letters first)."""

    exchange: str
    queues: tuple[QueueSpec, ...]

    @classmethod
    def from_config(cls, config: Any, queue_type: str | None = None) -> Topology:
        """From an `esb.routes.Config`; `queue_type` defaults to `settings.queue_type` or classic."""
        default = queue_type or (getattr(config, "settings", None) or {}).get("queue_type")
        return cls.from_routes(config.routes, queue_type=default)

    @classmethod
    def from_routes(cls, routes: Iterable[Any], queue_type: str | None = None) -> Topology:
        """From `esb.routes.Route`s; raises TopologyError listing every name or option it cannot use."""
        problems: list[str] = []
        queues: list[QueueSpec] = []
        for route in routes:
            kind = (route.options or {}).get("queue_type") or queue_type or DEFAULT_QUEUE_TYPE
            problems += _route_problems(route, kind)
            queues += _route_queues(route, kind)
        if problems:
            raise TopologyError("; ".join(problems))
        return cls(exchange=names.exchange_name(), queues=tuple(queues))

    def queue(self, name: str) -> QueueSpec:
        for spec in self.queues:
            if spec.name == name:
                return spec
        raise KeyError(f"no queue {name!r} in the topology")

    def of(self, route: str, destination: str | None = None, kind: str | None = None) -> list[QueueSpec]:
        """The queues of a route (and destination, and kind)."""
        return [q for q in self.queues if q.route == route
                and (destination is None or q.destination == destination)
                and (kind is None or q.kind == kind)]

    def describe(self) -> str:
        """The topology for people: one line per object, grouped by route."""
        lines = [f"exchange {self.exchange} (direct, durable; routing key = route name)"]
        route = None
        for q in self.queues:
            if q.route != route:
                route = q.route
                lines.append(f"route {route}:")
            lines.append(f"  {q.name:<{self._width()}}  {_what(q, self.exchange)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"exchange": {"name": self.exchange, "type": "direct", "durable": True},
                "queues": [{"name": q.name, "kind": q.kind, "route": q.route, "destination": q.destination,
                            "queue_type": q.queue_type, "arguments": q.arguments,
                            "binding_key": q.binding_key, "delay": q.delay} for q in self.queues]}

    def _width(self) -> int:
        return max((len(q.name) for q in self.queues), default=0)


def _route_problems(route: Any, queue_type: str) -> list[str]:
    problems = [p for p in [names.check_name("route", route.name)] if p]
    problems += [p for d in route.destinations if (p := names.check_name("destination", d.name))]
    if queue_type not in QUEUE_TYPES:
        problems.append(f'route "{route.name}": queue_type "{queue_type}" is not one of '
                        f'{", ".join(QUEUE_TYPES)}')
    return problems


def _route_queues(route: Any, queue_type: str) -> list[QueueSpec]:
    typed = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
    queues: list[QueueSpec] = []
    for destination in route.destinations:
        work = names.work_queue_name(route.name, destination.name)
        dead = names.dead_letter_queue_name(route.name, destination.name)
        queues.append(QueueSpec(dead, DEAD_LETTER, route.name, destination.name, dict(typed)))
        for delay in route.retry.distinct_delays():
            arguments = {**typed, "x-message-ttl": round(delay * 1000), "x-dead-letter-exchange": "",
                         "x-dead-letter-routing-key": work}
            if queue_type == "quorum":
                arguments.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
            queues.append(QueueSpec(names.retry_queue_name(route.name, destination.name, delay), RETRY,
                                    route.name, destination.name, arguments, delay=delay))
        queues.append(QueueSpec(work, WORK, route.name, destination.name,
                                {**typed, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead},
                                binding_key=names.route_binding_key(route.name)))
    queues.append(QueueSpec(names.dead_letter_queue_name(route.name), INBOUND_DEAD_LETTER, route.name, None,
                            dict(typed)))
    return queues


def _what(q: QueueSpec, exchange: str) -> str:
    kind = "" if q.queue_type == "classic" else f" [{q.queue_type}]"
    if q.kind == WORK:
        return f'work queue{kind}, bound to {exchange} with key "{q.binding_key}"'
    if q.kind == RETRY:
        return f"retry after {names.delay_label(q.delay or 0)}{kind}, then back to " \
               f"{q.arguments['x-dead-letter-routing-key']}"
    if q.kind == DEAD_LETTER:
        return f"dead letters{kind}"
    return f"dead letters: raw inbound payloads{kind}"
