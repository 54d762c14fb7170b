"""The embedded transport: the bus on one SQLite file, standard library only (no broker).

It is the twin of `esb.transport.rabbitmq` for one machine: the default when no broker URL is
configured, it runs the demo and the route tests, and the contract tests
(`tests/contract/test_transport_contract.py`) pass on both.

Storage
    One SQLite file (`esb.transport.embedded_store`). A publish is durable once its transaction
    committed; its future is resolved after the commit.

Delivery
    Each consumer (route, destination) has a fetcher thread that claims up to `prefetch`
    available messages with one atomic `UPDATE ... RETURNING`: a claimed message is leased to
    this transport (invisible to every other consumer) until it is settled or its lease expires.
    The transport renews its leases while it runs; after a crash they expire (`lease` seconds)
    and the message is delivered again with `redelivered=True`. So several processes on one
    machine may share the file as competing consumers. Handlers run on `concurrency` worker
    threads (or on the fetcher thread with `inline=True`) by the consumer both transports share
    (`esb.transport.consumer`); their outcome goes through `decide()`, as on RabbitMQ.

Retry and dead letters
    A retry is the same row with the failure headers (`failure_headers`) and
    `available_at = now + delay`, so a waiting retry never blocks the consumer or the messages
    behind it; there are no retry queues. A dead letter is the row moved to
    `esb.<route>.<destination>.dlq` with `dead_letter_headers`. Both are one transaction with the
    settlement of the original: nothing is lost or doubled in between.

Supports: confirmed (committed) publishing, fan-out to a route's destinations or one destination,
`Unroutable` when no declared queue takes a message, manual settlement with leases, bounded
prefetch, per-destination worker threads, inline handlers, handlers returning futures, retry
with backoff, dead letters with the failure headers, browse/replay/purge, raw dead letters,
pause/resume, `TransportEvents`, graceful stop, competing consumers across processes, survival
of process restarts and crashes (at-least-once).

Does not support: more than one machine (SQLite over a network file system is not safe), a
cluster or replication, queue types (`queue_type` is accepted and ignored), per-message TTL or
priorities, push delivery across processes (other processes see new messages after at most
`poll_interval` seconds), broker-side delivery limits, or high throughput (every commit is an
fsync).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import sqlite3
import threading
import time
import types
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from esb.envelope import Envelope
from esb.errors import InputError
from esb.transport import names
from esb.transport.consumer import Consumer, Consumers, InHand, Settlement
from esb.transport.contract import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PREFETCH,
    DEFAULT_STOP_TIMEOUT,
    DeadLetter,
    Handler,
    QueueStats,
    Transport,
    TransportEvents,
    dead_letter_queues,
    route_model,
)
from esb.transport.embedded_store import Store
from esb.transport.errors import NotConnected, PublishError
from esb.transport.headers import REASON_INPUT, REASON_PERMANENT, dead_letter_headers
from esb.transport.topology import DEAD_LETTER, INBOUND_DEAD_LETTER, RETRY, WORK, Topology

log = logging.getLogger(__name__)

DEFAULT_PATH = Path(".esb") / "transport.sqlite"
"""The file when none is given: `transport.sqlite` in the default data directory."""

DEFAULT_POLL_INTERVAL = 0.1
"""Seconds a consumer waits before looking for messages again when it found none (messages
published by this process wake it at once; other processes' messages are seen after this)."""

DEFAULT_LEASE = 30.0
"""Seconds a claimed message stays invisible to others; renewed while the transport runs, so it
only matters after a crash (the message is redelivered that long after)."""


class _Properties(types.SimpleNamespace):
    """A stored message's properties as attributes; those the consumer reads default to None
    (class attributes: the stored JSON keeps only what was there)."""

    message_id = correlation_id = type = content_type = headers = None


class _FileConsumer(Consumer):
    """The shared consumer, plus its fetcher thread and the count of messages it holds."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fetcher: threading.Thread | None = None
        self.wake = threading.Event()
        self.in_hand = 0  # claimed and not yet settled (bounded by prefetch), under `lock`


class _FileSettlement(Settlement):
    """Each outcome is one statement on the leased row (see `Store`)."""

    def __init__(self, store: Store):
        self._store = store

    def ack(self, message: InHand) -> None:
        if self._applied(message, self._store.delete, message.tag):
            message.consumer.settled(message)

    def retry(self, message: InHand, headers: dict[str, Any], delay: float) -> None:
        properties = {**vars(message.properties), "headers": headers}
        if self._applied(message, self._store.delay, message.tag, properties, time.time() + delay):
            message.consumer.settled(message)

    def dead_letter(self, message: InHand, headers: dict[str, Any]) -> None:
        consumer = message.consumer
        queue_name = names.dead_letter_queue_name(consumer.route.name, consumer.destination)
        properties = {**vars(message.properties), "headers": headers}
        if self._applied(message, self._store.move, message.tag, queue_name, properties):
            consumer.settled(message)

    def requeue(self, message: InHand) -> None:
        self._applied(message, self._store.unlease, message.tag)

    def _applied(self, message: InHand, change: Any, *arguments: Any) -> bool:
        """Apply one outcome to the leased row; False when it is no longer ours (or we stopped)."""
        consumer = message.consumer
        changed: int | None = 0
        try:
            changed = change(*arguments)  # None: stop() has put the message back, drop the outcome
        except sqlite3.Error as error:  # the lease expires and the message comes back
            log.error("esb: could not settle message %d of %s: %s", message.tag, consumer.queue_name, error)
        finally:
            with consumer.lock:
                consumer.in_hand -= 1
            consumer.wake.set()
        if changed == 0:
            log.warning("esb: message %d of %s was settled after its lease ended; it will be delivered again",
                        message.tag, consumer.queue_name)
        return bool(changed)


class EmbeddedTransport(Transport):
    """The bus on one SQLite file.

    Parameters (keyword-only after `routes`):
        path (str | Path): the SQLite file; default `.esb/transport.sqlite` (directories are made).
        routes: the `esb.routes.Route`s it serves (or an `esb.routes.Config`).
        prefetch (int): messages in hand per destination consumer; default DEFAULT_PREFETCH (100).
        concurrency (int): handler threads per destination; default DEFAULT_CONCURRENCY (8).
        poll_interval (float): seconds between looks for new messages when idle; default 0.1.
        lease (float): seconds a crashed process's messages stay invisible; default 30.
        events (TransportEvents): hooks for metrics; default no-ops.
        queue_type (str): accepted for the RabbitMQ twin's sake and ignored.
    """

    def __init__(self, path: str | Path | None, routes: Iterable[Any], *, prefetch: int = DEFAULT_PREFETCH,
                 concurrency: int = DEFAULT_CONCURRENCY, poll_interval: float = DEFAULT_POLL_INTERVAL,
                 lease: float = DEFAULT_LEASE, events: TransportEvents | None = None,
                 queue_type: str | None = None):
        config_routes = getattr(routes, "routes", None)
        self._routes = {r.name: r for r in (config_routes if config_routes is not None else routes)}
        self.topology = Topology.from_routes(self._routes.values())  # TopologyError for bad names
        self.path = Path(path) if path else DEFAULT_PATH
        self._poll_interval = poll_interval
        self._lease = lease
        self._events = events or TransportEvents()
        self._store = Store(self.path, uuid.uuid4().hex, lease)
        self._consumers = Consumers(self._routes, _FileSettlement(self._store), self._events,
                                    prefetch=prefetch, concurrency=concurrency, kind=_FileConsumer)
        self._connected = False
        self._stopped = threading.Event()
        self._keeper: threading.Thread | None = None

    # --- life -------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def declare(self) -> None:
        """Record the routes' work and dead-letter queues in the file (idempotent)."""
        self._store.declare((q.name, q.kind, q.route, q.destination) for q in self.topology.queues
                            if q.kind in (WORK, DEAD_LETTER, INBOUND_DEAD_LETTER))

    def start(self, timeout: float = 30.0) -> None:
        if self._connected or self._stopped.is_set():
            return
        self.declare()
        self._connected = True
        self._keeper = threading.Thread(target=self._keep_leases, name="esb-embedded-leases", daemon=True)
        self._keeper.start()
        for consumer in self._consumers:
            self._start_fetcher(consumer)
        self._events.connected()

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        if self._stopped.is_set():
            return
        deadline = time.monotonic() + timeout
        self._consumers.stopping()
        for consumer in self._consumers:
            consumer.wake.set()
        while time.monotonic() < deadline and self._consumers.running():
            time.sleep(0.02)
        with self._store.lock:  # from here on, late outcomes are dropped (see Store)
            self._stopped.set()
            was_connected, self._connected = self._connected, False
            self._store.release_leases()
        for consumer in self._consumers:
            if consumer.fetcher is not None:
                consumer.fetcher.join(max(0.0, deadline - time.monotonic()) + 1)
        self._consumers.stop_workers()
        if self._keeper is not None:
            self._keeper.join(1)
        self._store.close()
        if was_connected:
            self._events.disconnected(None)

    def _keep_leases(self) -> None:
        """Renew this transport's leases while it runs, so only a crash lets them expire."""
        while not self._stopped.wait(self._lease / 3):
            try:
                self._store.renew_leases()
            except sqlite3.Error as error:
                log.warning("esb: could not renew the leases in %s: %s", self.path, error)

    # --- publishing -------------------------------------------------------------------------
    def publish(self, envelope: Envelope, route: str,
                destination: str | None = None) -> concurrent.futures.Future[None]:
        model = route_model(self._routes, route, destination)
        targets = [destination] if destination is not None else [d.name for d in model.destinations]
        queues = [names.work_queue_name(route, name) for name in targets]
        return self._insert(queues, envelope.amqp_properties(), envelope.amqp_body())

    def publish_dead_letter(self, route: str, destination: str | None, body: bytes,
                            error: BaseException, headers: Mapping[str, Any] | None = None, *,
                            message_id: str | None = None, correlation_id: str | None = None,
                            content_type: str | None = None) -> concurrent.futures.Future[None]:
        route_model(self._routes, route, destination)
        reason = REASON_INPUT if isinstance(error, InputError) else REASON_PERMANENT
        properties = {"message_id": message_id or str(uuid.uuid4()), "correlation_id": correlation_id,
                      "type": None, "content_type": content_type,
                      "headers": dead_letter_headers(headers, error, route=route, destination=destination,
                                                     attempts=1, reason=reason)}
        return self._insert([names.dead_letter_queue_name(route, destination)], properties, body)

    def _insert(self, queues: list[str], properties: dict[str, Any],
                body: bytes) -> concurrent.futures.Future[None]:
        """Store the message in every declared queue of `queues`; the future is settled after COMMIT."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if not self._connected:
            future.set_exception(NotConnected("the embedded transport is not started"))
            return future
        try:
            targets = self._store.insert(queues, properties, body)
        except PublishError as error:
            future.set_exception(error)
            return future
        future.set_result(None)
        for consumer in self._consumers:
            if consumer.queue_name in targets:
                consumer.wake.set()
        return future

    # --- consuming --------------------------------------------------------------------------
    def consume(self, route: str, destination: str, handler: Handler, *, prefetch: int | None = None,
                concurrency: int | None = None, inline: bool = False) -> None:
        consumer = self._consumers.add(route, destination, handler, prefetch=prefetch,
                                       concurrency=concurrency, inline=inline)
        if self._connected:
            self._start_fetcher(consumer)

    def _start_fetcher(self, consumer: _FileConsumer) -> None:
        consumer.fetcher = threading.Thread(target=self._fetch, args=(consumer,), daemon=True,
                                            name=f"esb-{consumer.queue_name}-fetch")
        consumer.fetcher.start()

    def _fetch(self, consumer: _FileConsumer) -> None:
        """A consumer's fetcher thread: claim what is available, up to the prefetch, hand it out."""
        while not consumer.stopping:
            consumer.wake.clear()
            rows: list[tuple] = []
            if not consumer.paused:
                with consumer.lock:
                    room = consumer.prefetch - consumer.in_hand
                if room > 0:
                    try:
                        rows = self._store.claim(consumer.queue_name, room)
                    except sqlite3.Error as error:
                        log.warning("esb: could not take messages from %s: %s", consumer.queue_name, error)
            if not rows:
                consumer.wake.wait(self._poll_interval)
                continue
            with consumer.lock:
                consumer.in_hand += len(rows)
            for seq, properties, body, deliveries in rows:
                consumer.take(InHand(consumer, seq, _Properties(**json.loads(properties)), body,
                                     deliveries > 1))

    # --- pause and resume -------------------------------------------------------------------
    def pause(self, route: str, destination: str | None = None) -> list[str]:
        return [consumer.destination for consumer in self._consumers.pause(route, destination)]

    def resume(self, route: str, destination: str | None = None) -> list[str]:
        consumers = self._consumers.resume(route, destination)
        for consumer in consumers:
            consumer.wake.set()
        return [consumer.destination for consumer in consumers]

    def paused(self, route: str) -> set[str]:
        return self._consumers.paused(route)

    # --- statistics and dead letters (work without start(), from any thread or process) -----
    def queue_stats(self) -> QueueStats:
        """{queue: (messages, consumers)} like RabbitMQ's, for metrics and the admin API.

        Retries wait in their work queue here (`available_at` in the future), so the messages
        waiting for a retry are counted on the destination's first retry queue; consumers are
        this process's (other processes sharing the file are not seen)."""
        ready, waiting = self._store.counts()
        consumers = {c.queue_name: 0 if c.paused else 1 for c in self._consumers}
        stats: QueueStats = {}
        seen_retry: set[str] = set()
        for spec in self.topology.queues:
            if spec.kind == RETRY:
                work = names.work_queue_name(spec.route, spec.destination)
                stats[spec.name] = (0 if work in seen_retry else waiting.get(work, 0), 0)
                seen_retry.add(work)
            else:
                stats[spec.name] = (ready.get(spec.name, 0), consumers.get(spec.name, 0))
        return stats

    def dead_letters(self, route: str, destination: str | None = None, *,
                     limit: int | None = None) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        queues = dead_letter_queues(self._routes, route, destination, inbound=True)
        for queue_name, queue_destination in queues:
            rows = self._store.browse(queue_name, None if limit is None else limit - len(letters))
            letters += [_dead_letter(route, queue_destination, properties, body) for properties, body in rows]
            if limit is not None and len(letters) >= limit:
                break
        return letters

    def replay_dead_letters(self, route: str, destination: str | None = None, *,
                            ids: Iterable[str] | None = None) -> int:
        queues = dead_letter_queues(self._routes, route, destination, inbound=False)
        replayed = self._store.replay([(queue_name, names.work_queue_name(route, queue_destination))
                                       for queue_name, queue_destination in queues],
                                      set(ids) if ids is not None else None)
        for consumer in self._consumers:
            if consumer.route.name == route:
                consumer.wake.set()
        return replayed

    def purge_dead_letters(self, route: str, destination: str | None = None, *,
                           ids: Iterable[str] | None = None) -> int:
        queues = dead_letter_queues(self._routes, route, destination, inbound=True)
        return self._store.purge([queue_name for queue_name, _ in queues],
                                 list(ids) if ids is not None else None)


def _dead_letter(route: str, destination: str | None, properties: dict[str, Any], body: bytes) -> DeadLetter:
    return DeadLetter(route=route, destination=destination, message_id=properties.get("message_id"),
                      correlation_id=properties.get("correlation_id"), type=properties.get("type"),
                      content_type=properties.get("content_type"), body=bytes(body),
                      headers=dict(properties.get("headers") or {}))
