"""Names of the broker objects, made by tiny pure functions so every part of the bus agrees.

- exchange `esb` (direct, durable): every publish of an inbound stage, routing key = route name;
- work queue `esb.<route>.<destination>`: what one destination of a route has to deliver, bound
  to `esb` with key `<route>` (one publish fans out to every destination of the route);
- retry queue `esb.<route>.<destination>.retry.<delay>` (`500ms`, `5s`, `2m`, `1h`): messages
  waiting that long before they go back to the work queue;
- dead-letter queue `esb.<route>.<destination>.dlq`: messages that failed for good, with their
  error headers;
- inbound dead-letter queue `esb.<route>.dlq`: raw payloads a polled source could not turn into
  a message (they have no destination yet).

Retry queues are named by their *delay*, not by the retry number: the delay is the queue's
`x-message-ttl`, which RabbitMQ will not change on a re-declare, so a route whose backoff is
edited gets new queues instead of a PRECONDITION_FAILED at start-up.

Route and destination names must not contain a dot (the queue names would become ambiguous)
and a destination must not be called `dlq` (its work queue would be the inbound dead-letter
queue); `check_name` says so.
"""

from __future__ import annotations

EXCHANGE = "esb"
"""The bus's direct exchange: inbound stages publish here with the route name as routing key."""

PREFIX = "esb"
"""First part of every queue name."""

RESERVED_DESTINATION_NAMES = frozenset({"dlq"})


def exchange_name() -> str:
    """The exchange every inbound publish goes to."""
    return EXCHANGE


def route_binding_key(route: str) -> str:
    """Routing key that reaches every work queue of `route`."""
    return route


def work_queue_name(route: str, destination: str) -> str:
    """`esb.<route>.<destination>`: the queue one destination of a route consumes."""
    return f"{PREFIX}.{route}.{destination}"


def delay_label(seconds: float) -> str:
    """A short, exact label for a delay: `500ms`, `5s`, `90s`, `2m`, `1h`, `1500ms`."""
    milliseconds = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def retry_queue_name(route: str, destination: str, delay: float) -> str:
    """`esb.<route>.<destination>.retry.<delay>`: holds messages `delay` seconds, then back to work."""
    return f"{work_queue_name(route, destination)}.retry.{delay_label(delay)}"


def dead_letter_queue_name(route: str, destination: str | None = None) -> str:
    """`esb.<route>.<destination>.dlq`, or `esb.<route>.dlq` for raw inbound payloads (no destination)."""
    if destination is None:
        return f"{PREFIX}.{route}.dlq"
    return f"{work_queue_name(route, destination)}.dlq"


def check_name(kind: str, name: str) -> str | None:
    """A sentence saying why `name` cannot name a route or destination's queues, or None when it can."""
    if not name:
        return f"a {kind} name cannot be empty"
    if "." in name:
        return f'{kind} name "{name}" contains a dot, which would make its queue names ambiguous'
    if kind == "destination" and name in RESERVED_DESTINATION_NAMES:
        return f'destination name "{name}" is reserved (its queue would be the route\'s dead-letter queue)'
    if len(name.encode()) > 100:
        return f'{kind} name "{name}" is too long for a queue name (100 bytes at most)'
    return None
