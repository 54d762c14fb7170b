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

Failure headers (AMQP headers; other transports store the same names)
    | header | value |
    | --- | --- |
    | `esb-route`, `esb-destination` | where the message failed |
    | `esb-attempts` | deliveries that failed so far (absent = none) |
    | `esb-first-error-class`, `esb-first-error`, `esb-first-failed-at` | the first failure |
    | `esb-last-error-class`, `esb-last-error`, `esb-last-failed-at` | the latest failure |
    | `esb-dead-letter-reason` | `permanent`, `attempts-exhausted`, `undecodable` or `input` |
    | `esb-dead-lettered-at` | when it reached the dead-letter queue |
    | `esb-replays`, `esb-replayed-at` | how often and when last it was replayed |

    Error texts are cut to `MAX_ERROR_TEXT` characters (AMQP frames are bounded). Times are
    RFC 3339 UTC.
"""

from __future__ import annotations

import concurrent.futures
import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from esb.envelope import Envelope, now_rfc3339
from esb.errors import EsbError, InputError, Permanent
from esb.problems import unknown
from esb.retry import RetryPolicy
from esb.transport import names

DEFAULT_PREFETCH = 100
"""Messages the broker may hand one destination's consumer before it acks any (bounded memory)."""

DEFAULT_CONCURRENCY = 8
"""Handler threads per destination: this many slow target calls may be in progress at once."""

DEFAULT_STOP_TIMEOUT = 10.0
"""Seconds `stop()` waits for handlers in progress before requeueing their messages."""

DEFAULT_PUBLISH_TIMEOUT = 10.0
"""Seconds `publish_confirmed()` waits for the broker's confirm."""

MAX_ERROR_TEXT = 2000
"""Characters of an error's text kept in a header."""

# --- header names ---------------------------------------------------------------------------
H_ROUTE = "esb-route"
H_DESTINATION = "esb-destination"
H_ATTEMPTS = "esb-attempts"
H_FIRST_ERROR_CLASS = "esb-first-error-class"
H_FIRST_ERROR = "esb-first-error"
H_FIRST_FAILED_AT = "esb-first-failed-at"
H_LAST_ERROR_CLASS = "esb-last-error-class"
H_LAST_ERROR = "esb-last-error"
H_LAST_FAILED_AT = "esb-last-failed-at"
H_DEAD_LETTER_REASON = "esb-dead-letter-reason"
H_DEAD_LETTERED_AT = "esb-dead-lettered-at"
H_REPLAYS = "esb-replays"
H_REPLAYED_AT = "esb-replayed-at"

FAILURE_HEADERS = (H_ATTEMPTS, H_FIRST_ERROR_CLASS, H_FIRST_ERROR, H_FIRST_FAILED_AT, H_LAST_ERROR_CLASS,
                   H_LAST_ERROR, H_LAST_FAILED_AT, H_DEAD_LETTER_REASON, H_DEAD_LETTERED_AT)
"""Headers a replay removes: the message starts afresh."""

BROKER_HEADER_PREFIXES = ("x-death", "x-first-death", "x-last-death", "x-delivery-count")
"""Headers RabbitMQ adds when it dead-letters or redelivers; dropped when the bus re-publishes."""

REASON_PERMANENT = "permanent"
REASON_EXHAUSTED = "attempts-exhausted"
REASON_UNDECODABLE = "undecodable"
REASON_INPUT = "input"


# --- errors ---------------------------------------------------------------------------------
class TransportError(EsbError):
    """Something went wrong between the bus and its broker."""


class BrokerUnavailable(TransportError):
    """The broker could not be reached (or refused the credentials)."""


class TopologyError(TransportError):
    """The broker refused to declare a queue or exchange (e.g. it exists with other arguments)."""


class PublishError(TransportError):
    """A publish was not confirmed: the message is not known to be stored."""


class Unroutable(PublishError):
    """The broker returned the message: no queue is bound for its route or destination."""


class PublishNacked(PublishError):
    """The broker refused the message (basic.nack): it is not stored."""


class ConnectionLost(PublishError):
    """The connection went before the confirm came: the message may or may not be stored."""


class NotConnected(ConnectionLost):
    """The transport is not connected (starting, reconnecting or stopped): nothing was sent."""


class PublishTimeout(PublishError):
    """No confirm within the timeout: the message may still be stored later; treat as failed."""


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


def error_class(error: BaseException) -> str:
    """`ValueError`, `esb.errors.Permanent`, `adapters.rest.HttpError`: builtins stay short."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def error_text(error: BaseException) -> str:
    text = str(error) or error_class(error)
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def header_text(headers: Mapping[str, Any], name: str) -> str | None:
    """A header as text (AMQP clients may hand long strings back as bytes)."""
    value = headers.get(name)
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value


def attempts_so_far(headers: Mapping[str, Any] | None) -> int:
    """Failed deliveries recorded on the message (0 for a fresh one)."""
    if not headers:
        return 0
    try:
        return int(headers.get(H_ATTEMPTS) or 0)
    except (TypeError, ValueError):
        return 0


def without_broker_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items() if not k.startswith(BROKER_HEADER_PREFIXES)}


def failure_headers(headers: Mapping[str, Any] | None, error: BaseException, *, route: str,
                    destination: str | None, attempts: int, now: str | None = None) -> dict[str, Any]:
    """The message's headers after a failed delivery: attempt count, first and last error, times."""
    now = now or now_rfc3339()
    updated = without_broker_headers(headers)
    updated[H_ROUTE] = route
    if destination is not None:
        updated[H_DESTINATION] = destination
    updated[H_ATTEMPTS] = attempts
    kind, text = error_class(error), error_text(error)
    if H_FIRST_ERROR_CLASS not in updated:
        updated[H_FIRST_ERROR_CLASS] = kind
        updated[H_FIRST_ERROR] = text
        updated[H_FIRST_FAILED_AT] = now
    updated[H_LAST_ERROR_CLASS] = kind
    updated[H_LAST_ERROR] = text
    updated[H_LAST_FAILED_AT] = now
    return updated


def dead_letter_headers(headers: Mapping[str, Any] | None, error: BaseException, *, route: str,
                        destination: str | None, attempts: int, reason: str,
                        now: str | None = None) -> dict[str, Any]:
    """`failure_headers` plus why and when the message was dead-lettered."""
    now = now or now_rfc3339()
    updated = failure_headers(headers, error, route=route, destination=destination, attempts=attempts,
                              now=now)
    updated[H_DEAD_LETTER_REASON] = reason
    updated[H_DEAD_LETTERED_AT] = now
    return updated


def replay_headers(headers: Mapping[str, Any] | None, now: str | None = None) -> dict[str, Any]:
    """A dead letter's headers for its replay: a fresh attempt count, no errors, one more replay."""
    updated = {k: v for k, v in without_broker_headers(headers).items() if k not in FAILURE_HEADERS}
    try:
        replays = int((headers or {}).get(H_REPLAYS) or 0)
    except (TypeError, ValueError):
        replays = 0
    updated[H_REPLAYS] = replays + 1
    updated[H_REPLAYED_AT] = now or now_rfc3339()
    return updated


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
class Transport(ABC):
    """A broker for the bus. Built with the routes it serves (their topology and retry policies)."""

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


def create_transport(url: str | None, routes: Iterable[Any], *, path: Any = None, data_dir: Any = None,
                     **options: Any) -> Transport:
    """The transport for a broker URL: `amqp://` or `amqps://` means RabbitMQ (loaded lazily); none,
    `""` or `embedded://<path>` means the embedded transport (one SQLite file).

    The embedded transport's file is the URL's path, else `path`, else `<data_dir>/transport.sqlite`,
    else `.esb/transport.sqlite`. `path` and `data_dir` are ignored for RabbitMQ.
    """
    scheme = url.split(":", 1)[0] if url else ""
    if scheme in ("amqp", "amqps"):
        from esb.transport.rabbitmq import RabbitMQTransport

        return RabbitMQTransport(url, routes, **options)
    if not url or scheme == "embedded":
        from pathlib import Path

        from esb.transport.embedded import DEFAULT_PATH, EmbeddedTransport

        if url and url.startswith("embedded://") and url[len("embedded://"):]:
            path = url[len("embedded://"):]
        elif path is None:
            path = Path(data_dir) / DEFAULT_PATH.name if data_dir else DEFAULT_PATH
        return EmbeddedTransport(path, routes, **options)
    raise TransportError(f"unknown broker URL scheme in {url!r} (use amqp://, amqps:// or embedded://<path>)")
