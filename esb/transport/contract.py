"""The transport contract: what the route runtime asks of a broker, whatever the broker is.

Two implementations share it: `esb.transport.rabbitmq` (production) and `esb.transport.embedded`
(one SQLite file, standard library only: one machine, no broker; the default without a broker
URL). The contract tests (tests/contract/) run on both, so everything a route runtime relies on
is said here, and the pure parts (outcome decision, failure headers) live here too so both
transports behave alike.

Publishing
    `publish(envelope, route, destination=None) -> Future[None]` is thread-safe. The future is
    resolved once the broker has durably accepted the message (publisher confirm), and fails
    with `Unroutable` (no queue took it), `PublishNacked`, `ConnectionLost` (the connection went
    before the confirm: the message may or may not be stored, publish it again with the same id)
    or `NotConnected`. It is never resolved "ok" for a message that was not confirmed.
    `publish_confirmed(...)` is the blocking form for one caller (an HTTP request thread).
    With `destination=None` the message goes to every destination of the route (fan-out).

Consuming
    `consume(route, destination, handler)` registers `handler(envelope, delivery) -> None` for
    one (route, destination) queue before or after `start()`. The handler runs on a worker
    thread (never the connection's thread), up to `concurrency` at once per destination; only
    with `inline=True` does it run on the transport's own thread (for handlers that never block).
    Returning means delivered: the message is acked. A handler may instead return a
    `concurrent.futures.Future` (say, of its own `publish()`): the message is then settled when
    that future completes, its exception classified like a raised one; this lets a route stage
    consume, publish and ack after the confirm without holding a worker thread per message.
    Raising is classified by `decide()`:

    - `esb.errors.Permanent` (input, mapping, validation errors, HTTP 4xx, SOAP client faults):
      dead-lettered at once;
    - `esb.errors.Retryable` (timeouts, connection errors, HTTP 5xx/408/429, SOAP server faults):
      retried after the route's next backoff delay, dead-lettered when attempts are used up;
    - **any other exception is retryable.** An unclassified error is most often the world
      failing (a socket or TLS error a library raised in its own type, a target that answered
      garbage) or a bug that a fix and a redeploy cure; retrying costs a bounded number of
      attempts and the message still ends in the dead-letter queue with its error, whereas
      treating it as permanent would dead-letter good messages on every transient hiccup.

    A retry never sleeps in the consumer: the message waits in a retry queue while others flow.
    The original is acked only after its retry or dead-letter copy was confirmed.

Dead letters
    `dead_letters`, `replay_dead_letters`, `purge_dead_letters` serve `esb dlq` and the admin API.
    A dead letter keeps its body, message id and correlation id, and carries the failure headers
    below. A replayed message keeps its id, loses its attempt count and error headers (a fresh
    start), gains `esb-replays`, and goes back to its own destination's work queue only.
    `publish_dead_letter(route, destination_or_None, body, error)` stores a raw payload that could
    not become a message (a polled source's bad input) in the route's dead-letter queue.

Failure headers
    The names and the functions that write them are in `esb.transport.headers`; the errors in
    `esb.transport.errors`.
"""

from __future__ import annotations

import concurrent.futures
import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from esb.envelope import Envelope
from esb.errors import InputError, Permanent
from esb.problems import unknown
from esb.retry import RetryPolicy
from esb.transport import names
from esb.transport.errors import PublishTimeout
from esb.transport.headers import (
    H_DEAD_LETTER_REASON,
    H_DEAD_LETTERED_AT,
    H_FIRST_ERROR,
    H_FIRST_ERROR_CLASS,
    H_FIRST_FAILED_AT,
    H_LAST_ERROR,
    H_LAST_ERROR_CLASS,
    H_LAST_FAILED_AT,
    REASON_EXHAUSTED,
    REASON_INPUT,
    REASON_PERMANENT,
    attempts_so_far,
    header_text,
)
from esb.transport.topology import Topology

DEFAULT_PREFETCH = 100
"""Messages the broker may hand one destination's consumer before it acks any (bounded memory)."""

DEFAULT_CONCURRENCY = 8
"""Handler threads per destination: this many slow target calls may be in progress at once."""

DEFAULT_STOP_TIMEOUT = 10.0
"""Seconds `stop()` waits for handlers in progress before requeueing their messages."""

DEFAULT_PUBLISH_TIMEOUT = 10.0
"""Seconds `publish_confirmed()` waits for the broker's confirm."""


# --- consuming ------------------------------------------------------------------------------
@dataclass(slots=True)
class Delivery:
    """What a handler learns about the delivery besides the envelope.

    `attempt` is 1 on the first delivery and grows by one per retry; `headers` are the message's
    headers as received (failure headers of earlier attempts included).
    """

    route: str
    destination: str
    message_id: str | None
    correlation_id: str | None
    attempt: int
    redelivered: bool
    headers: Mapping[str, Any]


class Handler(Protocol):
    """Delivers one message to its target; raises `Retryable`, `Permanent` or anything else.

    Returns None (done) or a Future whose outcome is the delivery's outcome.
    """

    def __call__(self, envelope: Envelope, delivery: Delivery) -> concurrent.futures.Future | None: ...


class Action(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a delivery: `delay` (seconds) for a retry, `reason` for a dead letter."""

    action: Action
    delay: float | None = None
    reason: str | None = None


ACK = Decision(Action.ACK)


def decide(error: BaseException | None, attempt: int, policy: RetryPolicy) -> Decision:
    """The one place where a delivery's outcome becomes ack, retry or dead-letter.

    `attempt` is the 1-based number of the delivery that ended with `error` (None = success).
    Permanent errors are dead-lettered at once; anything else is retried while
    `attempt < policy.attempts`, waiting `policy.delay(attempt)` seconds.
    """
    if error is None:
        return ACK
    if isinstance(error, Permanent):
        return Decision(Action.DEAD_LETTER, reason=REASON_INPUT if isinstance(error, InputError)
                        else REASON_PERMANENT)
    if attempt < policy.attempts:
        return Decision(Action.RETRY, delay=policy.delay(attempt))
    return Decision(Action.DEAD_LETTER, reason=REASON_EXHAUSTED)


# --- routes ---------------------------------------------------------------------------------
def route_model(routes: Mapping[str, Any], route: str, destination: str | None = None) -> Any:
    """The `Route` called `route` (checking `destination` is one of it); KeyError with a
    "did you mean" sentence otherwise."""
    if route not in routes:
        raise KeyError(unknown("route", route, routes))
    model = routes[route]
    if destination is not None:
        model.destination(destination)  # KeyError naming the destination
    return model


def dead_letter_queues(routes: Mapping[str, Any], route: str, destination: str | None,
                       inbound: bool) -> list[tuple[str, str | None]]:
    """[(queue, destination)] of a destination's dead letters, or of every destination of the route
    (and, with `inbound`, the route's raw inbound dead letters, destination None)."""
    model = route_model(routes, route, destination)
    if destination is not None:
        return [(names.dead_letter_queue_name(route, destination), destination)]
    queues: list[tuple[str, str | None]] = [(names.dead_letter_queue_name(route, d.name), d.name)
                                             for d in model.destinations]
    if inbound:
        queues.append((names.dead_letter_queue_name(route), None))
    return queues


# --- dead letters ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered message as the admin sees it (list, show, replay, purge)."""

    route: str
    destination: str | None  # None: a raw inbound payload
    message_id: str | None
    correlation_id: str | None
    type: str | None
    content_type: str | None
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def attempts(self) -> int:
        return attempts_so_far(self.headers)

    def header(self, name: str) -> str | None:
        return header_text(self.headers, name)

    def summary(self) -> dict[str, Any]:
        """The one-line facts: id, attempts, last error and when."""
        return {"id": self.message_id, "correlation_id": self.correlation_id, "route": self.route,
                "destination": self.destination, "attempts": self.attempts,
                "reason": self.header(H_DEAD_LETTER_REASON),
                "last_error": _joined(self.header(H_LAST_ERROR_CLASS), self.header(H_LAST_ERROR)),
                "last_failed_at": self.header(H_LAST_FAILED_AT),
                "dead_lettered_at": self.header(H_DEAD_LETTERED_AT)}

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready: the body as text when it is UTF-8."""
        try:
            body: Any = self.body.decode("utf-8")
        except UnicodeDecodeError:
            body = {"hex": self.body.hex()}
        headers = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                   for k, v in self.headers.items()}
        return {**self.summary(), "type": self.type, "content_type": self.content_type,
                "headers": headers, "body": body,
                "first_error": _joined(self.header(H_FIRST_ERROR_CLASS), self.header(H_FIRST_ERROR)),
                "first_failed_at": self.header(H_FIRST_FAILED_AT)}


def _joined(kind: str | None, text: str | None) -> str | None:
    return f"{kind}: {text}" if kind else text


# --- events -----------------------------------------------------------------------------------
class TransportEvents:
    """Hooks a transport calls (for metrics and logs); each is a documented no-op to override.

    They run on the transport's threads and must be quick and must not raise.
    """

    def connected(self) -> None:
        """The connection is up and the topology declared (also after a reconnect)."""

    def disconnected(self, error: BaseException | None) -> None:
        """The connection went; the transport reconnects unless it is stopping."""

    def acked(self, delivery: Delivery, seconds: float) -> None:
        """A handler returned: the message was delivered in `seconds` of handler time."""

    def retried(self, delivery: Delivery, error: BaseException, delay: float) -> None:
        """A delivery failed and the message waits `delay` seconds in a retry queue."""

    def dead_lettered(self, delivery: Delivery, error: BaseException, reason: str) -> None:
        """A delivery failed for good; the message is in its dead-letter queue."""


# --- the contract -----------------------------------------------------------------------------
QueueStats = dict[str, tuple[int, int]]
"""{queue name: (messages ready, consumers)}, as `Transport.queue_stats()` reports them."""


class Transport(ABC):
    """A broker for the bus. Built with the routes it serves (their topology and retry policies)."""

    topology: Topology
    """The queues of the routes (`esb.transport.topology`), declared by `declare()` and `start()`."""

    @abstractmethod
    def start(self, timeout: float = 30.0) -> None:
        """Connect, declare the topology and begin consuming; BrokerUnavailable after `timeout` s."""

    @abstractmethod
    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop taking messages, let handlers in progress finish for up to `timeout` seconds,
        requeue what could not finish, wait for outstanding confirms, close. Safe to call twice;
        the CLI and runtime call it on SIGTERM/SIGINT."""

    @abstractmethod
    def declare(self) -> None:
        """Create the broker objects of the routes now (idempotent); a transport without any does nothing."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while the broker connection is up (readiness)."""

    @abstractmethod
    def publish(self, envelope: Envelope, route: str,
                destination: str | None = None) -> concurrent.futures.Future[None]:
        """Queue a persistent publish for the route (all its destinations, or one); thread-safe."""

    def publish_confirmed(self, envelope: Envelope, route: str, destination: str | None = None,
                          timeout: float = DEFAULT_PUBLISH_TIMEOUT) -> None:
        """Publish and wait for the confirm; raises a `PublishError` when not confirmed in time."""
        wait_for_confirm(self.publish(envelope, route, destination), timeout)

    @abstractmethod
    def publish_dead_letter(self, route: str, destination: str | None, body: bytes,
                            error: BaseException, headers: Mapping[str, Any] | None = None, *,
                            message_id: str | None = None, correlation_id: str | None = None,
                            content_type: str | None = None) -> concurrent.futures.Future[None]:
        """Store a raw payload with its error in the route's (or destination's) dead-letter queue."""

    @abstractmethod
    def consume(self, route: str, destination: str, handler: Handler, *, prefetch: int | None = None,
                concurrency: int | None = None, inline: bool = False) -> None:
        """Deliver the (route, destination) queue's messages to `handler` (see the module doc).

        `prefetch`: messages in hand at most; `concurrency`: handler threads. `inline=True` runs the
        handler on the transport's own thread, with no hand-off: only for handlers that never block
        (no network, no disk, no sleep) and return at once, typically a stage that maps, publishes
        and returns the publish's future. A blocking inline handler stalls the whole connection."""

    @abstractmethod
    def pause(self, route: str, destination: str | None = None) -> list[str]:
        """Stop taking messages for a route's destinations (or one): what is in hand finishes,
        the rest waits in the queue, also across reconnects. Returns the destinations paused."""

    @abstractmethod
    def resume(self, route: str, destination: str | None = None) -> list[str]:
        """Take messages again after `pause`; returns the destinations resumed."""

    @abstractmethod
    def paused(self, route: str) -> set[str]:
        """The destinations of a route that are paused now."""

    @abstractmethod
    def queue_stats(self) -> QueueStats:
        """Messages and consumers of each queue of the topology, for metrics and the admin API;
        works without `start()`. A queue the broker does not have (yet) is left out."""

    @abstractmethod
    def dead_letters(self, route: str, destination: str | None = None, *,
                     limit: int | None = None) -> list[DeadLetter]:
        """Browse the dead letters of a destination (or every queue of the route); nothing is removed."""

    @abstractmethod
    def replay_dead_letters(self, route: str, destination: str | None = None, *,
                            ids: Iterable[str] | None = None) -> int:
        """Send dead letters (those with `ids`, or all) back to their own work queue; returns how many.

        Raw inbound payloads (`esb.<route>.dlq`) are not replayed here: they are not messages yet and
        must go through the route's inbound stage again (the route runtime's business)."""

    @abstractmethod
    def purge_dead_letters(self, route: str, destination: str | None = None, *,
                           ids: Iterable[str] | None = None) -> int:
        """Delete dead letters (those with `ids`, or all); returns how many."""


def wait_for_confirm(future: concurrent.futures.Future[None], timeout: float) -> None:
    """`future.result(timeout)` with the transport's own errors."""
    try:
        future.result(timeout)
    except concurrent.futures.TimeoutError:
        raise PublishTimeout(f"the broker did not confirm the publish within {timeout:g}s") from None
