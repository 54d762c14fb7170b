"""One consumer for every transport: the inbox, the worker threads, pause, and the path of one
message (decode -> handler -> decide -> settle), so that RabbitMQ and the embedded transport
handle a delivery the same way and differ only in how they store its outcome.

A transport takes messages from a queue (RabbitMQ's I/O thread, the embedded fetcher) and hands
each to `Consumer.take()` as an `InHand`. The consumer runs the handler on one of its
`concurrency` worker threads (or at once, on the taking thread, when `concurrency` is 0: inline)
and turns the outcome into one call of the transport's `Settlement`:

| outcome | call |
| --- | --- |
| the handler returned, or the future it returned succeeded | `ack(message)` |
| `decide()` says retry | `retry(message, headers, delay)`, the failure recorded in `headers` |
| `decide()` says dead-letter, or the body is not a bus message | `dead_letter(message, headers)` |
| taken while stopping, or a bug in the bus itself | `requeue(message)`: back to its queue as it was |

The settlement calls `consumer.settled(message)` once the outcome is stored (the ack sent, the
retry copy confirmed, the row updated), which reports it to the transport's `TransportEvents`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from esb.envelope import Envelope
from esb.errors import DecodeError
from esb.routes import Route
from esb.transport import names
from esb.transport.contract import (
    ACK,
    Action,
    Decision,
    Delivery,
    Handler,
    TransportEvents,
    decide,
    route_model,
)
from esb.transport.errors import describe
from esb.transport.headers import (
    REASON_PERMANENT,
    REASON_UNDECODABLE,
    attempts_so_far,
    dead_letter_headers,
    failure_headers,
)

log = logging.getLogger(__name__)

UNDECODABLE = Decision(Action.DEAD_LETTER, reason=REASON_UNDECODABLE)


@dataclass(slots=True, eq=False)
class InHand:
    """A message taken from a queue and not settled yet.

    `tag` names it to its transport (the AMQP delivery tag, the embedded row's number); `channel`
    is what the tag belongs to (the RabbitMQ channel it came on; None in the embedded file).
    `properties` holds the AMQP properties as attributes (`message_id`, `correlation_id`,
    `headers`, ...). The consumer fills in the rest as the message goes along.
    """

    consumer: Consumer
    tag: int
    properties: Any
    body: bytes
    redelivered: bool
    channel: Any = None
    delivery: Delivery | None = None
    started: float = 0.0  # time.perf_counter() when handling began
    error: BaseException | None = None
    decision: Decision = ACK


class Settlement(ABC):
    """How one transport stores the outcome of a message in hand.

    Each call settles the message once; when the outcome is stored, the settlement calls
    `message.consumer.settled(message)`. Calls come from worker threads, from the transport's own
    thread (inline handlers) and from the threads that complete a handler's future.
    """

    def stale(self, message: InHand) -> bool:
        """True when the message can no longer be settled (the broker has put it back already)."""
        return False

    @abstractmethod
    def ack(self, message: InHand) -> None:
        """Delivered: remove the message from its queue."""

    @abstractmethod
    def retry(self, message: InHand, headers: dict[str, Any], delay: float) -> None:
        """Deliver the message again after `delay` seconds, with `headers`; then remove the original."""

    @abstractmethod
    def dead_letter(self, message: InHand, headers: dict[str, Any]) -> None:
        """Move the message, with `headers`, to its destination's dead-letter queue."""

    @abstractmethod
    def requeue(self, message: InHand) -> None:
        """Put the message back in its queue unchanged (it was not handled)."""


class Consumer:
    """One (route, destination) queue's consumer: its handler, worker threads and pause flag.

    `prefetch` bounds the messages in hand (the transport's business); `concurrency` is the
    number of worker threads, 0 for an inline handler run on the thread that takes messages.
    """

    def __init__(self, route: Route, destination: str, handler: Handler, settlement: Settlement,
                 events: TransportEvents, *, prefetch: int, concurrency: int):
        self.route = route
        self.destination = destination
        self.queue_name = names.work_queue_name(route.name, destination)
        self.handler = handler
        self.settlement = settlement
        self.events = events
        self.policy = route.retry
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.inbox: queue.SimpleQueue[InHand | None] = queue.SimpleQueue()
        self.workers: list[threading.Thread] = []
        self.paused = False  # by an admin: take nothing, also after a reconnect
        self.stopping = False
        self.running = 0  # handlers in progress or awaiting their future, under `lock`
        self.lock = threading.Lock()

    # --- threads ----------------------------------------------------------------------------
    def start_workers(self) -> None:
        for n in range(self.concurrency):
            worker = threading.Thread(target=self._work, daemon=True,
                                      name=f"esb-{self.route.name}-{self.destination}-{n + 1}")
            self.workers.append(worker)
            worker.start()

    def stop_workers(self) -> None:
        """Let the worker threads end once the inbox is empty."""
        for _ in self.workers:
            self.inbox.put(None)

    def take(self, message: InHand) -> None:
        """A message from the queue: to a worker, or handled here and now when inline."""
        if self.workers:
            self.inbox.put(message)
        else:
            self.process(message)

    def _work(self) -> None:
        inbox = self.inbox
        while (message := inbox.get()) is not None:
            self.process(message)

    # --- one message ------------------------------------------------------------------------
    def process(self, message: InHand) -> None:
        settlement = self.settlement
        if settlement.stale(message):
            return
        with self.lock:
            stopping = self.stopping
            if not stopping:
                self.running += 1
        if stopping:  # taken but not started: back to the queue
            settlement.requeue(message)
            return
        finished = True
        try:
            finished = self._handle(message)
        except Exception:  # a bug in the bus itself: requeue rather than lose the message
            log.exception("esb: failed to process a message from %s", self.queue_name)
            settlement.requeue(message)
        finally:
            if finished:
                self._finished()

    def _handle(self, message: InHand) -> bool:
        """Decode, run the handler, settle; False when the outcome comes later (a future)."""
        properties = message.properties
        headers = properties.headers or {}
        delivery = message.delivery = Delivery(
            self.route.name, self.destination, properties.message_id, properties.correlation_id,
            attempts_so_far(headers) + 1, message.redelivered, headers)
        message.started = time.perf_counter()
        try:
            envelope = Envelope.from_amqp(properties, message.body)
        except Exception as error:
            self._failed(message, DecodeError(f"not a valid bus message: {describe(error)}"), UNDECODABLE)
            return True
        try:
            result = self.handler(envelope, delivery)
        except Exception as error:
            self._failed(message, error)
            return True
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(functools.partial(self._handler_done, message))
            return False
        self.settlement.ack(message)
        return True

    def _handler_done(self, message: InHand, done: concurrent.futures.Future) -> None:
        """A handler's future completed (often on the transport's own thread: keep it short)."""
        try:
            try:
                error = done.exception()
            except concurrent.futures.CancelledError as cancelled:
                error = cancelled
            if error is None:
                self.settlement.ack(message)
            else:
                self._failed(message, error)
        finally:
            self._finished()

    def _finished(self) -> None:
        with self.lock:
            self.running -= 1

    def _failed(self, message: InHand, error: BaseException, decision: Decision | None = None) -> None:
        """The one place a failed delivery becomes a retry or a dead letter."""
        delivery = message.delivery
        assert delivery is not None
        decision = decision or decide(error, delivery.attempt, self.policy)
        route, destination, attempts = self.route.name, self.destination, delivery.attempt
        if decision.action is Action.RETRY:
            delay = decision.delay or 0.0
            message.error, message.decision = error, decision
            headers = failure_headers(message.properties.headers, error, route=route,
                                      destination=destination, attempts=attempts)
            log.info("attempt %d at %s failed (%s); retry in %gs", attempts, self.queue_name,
                     describe(error), delay, extra=log_fields(delivery, "retried"))
            self.settlement.retry(message, headers, delay)
            return
        reason = decision.reason or REASON_PERMANENT
        message.error, message.decision = error, Decision(Action.DEAD_LETTER, reason=reason)
        headers = dead_letter_headers(message.properties.headers, error, route=route,
                                      destination=destination, attempts=attempts, reason=reason)
        log.warning("dead-lettered to %s after %d attempt(s): %s",
                    names.dead_letter_queue_name(route, destination), attempts, describe(error),
                    extra=log_fields(delivery, "dead-lettered"))
        self.settlement.dead_letter(message, headers)

    def settled(self, message: InHand) -> None:
        """The transport stored `message`'s outcome: tell the events."""
        decision, delivery = message.decision, message.delivery
        assert delivery is not None
        if decision.action is Action.ACK:
            self.events.acked(delivery, time.perf_counter() - message.started)
        elif decision.action is Action.RETRY:
            self.events.retried(delivery, message.error, decision.delay or 0.0)
        else:
            self.events.dead_lettered(delivery, message.error, decision.reason or REASON_PERMANENT)


class Consumers:
    """A transport's consumers: registration with its defaults, lookup, pause and resume.

    `kind` is the transport's `Consumer` subclass (with what it keeps per consumer).
    """

    def __init__(self, routes: Mapping[str, Route], settlement: Settlement, events: TransportEvents, *,
                 prefetch: int, concurrency: int, kind: type[Consumer] = Consumer):
        self._routes = routes
        self._settlement = settlement
        self._events = events
        self._prefetch = prefetch
        self._concurrency = concurrency
        self._kind = kind
        self._all: list[Consumer] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(self._all)

    def add(self, route: str, destination: str, handler: Handler, *, prefetch: int | None = None,
            concurrency: int | None = None, inline: bool = False) -> Any:
        """A new consumer of the (route, destination) queue, its workers started; see `Transport.consume`."""
        consumer = self._kind(route_model(self._routes, route, destination), destination, handler,
                              self._settlement, self._events, prefetch=prefetch or self._prefetch,
                              concurrency=0 if inline else concurrency or self._concurrency)
        consumer.start_workers()
        self._all.append(consumer)
        return consumer

    def of(self, route: str, destination: str | None = None) -> list[Any]:
        """The consumers of a route (or of one destination); KeyError for an unknown name."""
        route_model(self._routes, route, destination)
        return [c for c in self._all if c.route.name == route
                and (destination is None or c.destination == destination)]

    def pause(self, route: str, destination: str | None = None) -> list[Any]:
        consumers = self.of(route, destination)
        for consumer in consumers:
            consumer.paused = True
        return consumers

    def resume(self, route: str, destination: str | None = None) -> list[Any]:
        consumers = self.of(route, destination)
        for consumer in consumers:
            consumer.paused = False
        return consumers

    def paused(self, route: str) -> set[str]:
        return {c.destination for c in self.of(route) if c.paused}

    def stopping(self) -> None:
        """Take no more messages: what is taken and not started is requeued."""
        for consumer in self._all:
            consumer.stopping = True

    def running(self) -> bool:
        """Handlers are in progress (or awaiting their future)."""
        return any(consumer.running for consumer in self._all)

    def stop_workers(self) -> None:
        for consumer in self._all:
            consumer.stop_workers()


def log_fields(delivery: Delivery, outcome: str) -> dict[str, Any]:
    """`extra=` of a log line about one delivery (esb.logs writes these as JSON fields)."""
    return {"message_id": delivery.message_id, "correlation_id": delivery.correlation_id,
            "route": delivery.route, "destination": delivery.destination, "attempt": delivery.attempt,
            "outcome": outcome}
