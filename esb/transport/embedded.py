"""The embedded transport: the bus on one SQLite file, standard library only (no broker).

It is the twin of `esb.transport.rabbitmq` for one machine: the default when no broker URL is
configured, it runs the demo and the route tests, and the contract tests
(`tests/contract/test_transport_contract.py`) pass on both.

Storage
    One SQLite file in WAL mode (`synchronous=FULL`): a `queues` table (the declared work and
    dead-letter queues, named as on RabbitMQ by `esb.transport.names`) and a `messages` table
    (queue, message id, properties and headers as JSON, body, `available_at`, `lease_owner`,
    `deliveries`). A publish is durable once its transaction committed; its future is resolved
    after the commit.

Delivery
    Each consumer (route, destination) has a fetcher thread that claims up to `prefetch`
    available messages with one atomic `UPDATE ... RETURNING`: a claimed message is leased to
    this transport (invisible to every other consumer) until it is settled or its lease expires.
    The transport renews its leases while it runs; after a crash they expire (`lease` seconds)
    and the message is delivered again with `redelivered=True`. So several processes on one
    machine may share the file as competing consumers. Handlers run on `concurrency` worker
    threads (or on the fetcher thread with `inline=True`); their outcome goes through
    `decide()`, as on RabbitMQ.

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
import contextlib
import functools
import json
import logging
import queue
import sqlite3
import threading
import time
import types
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from esb.envelope import Envelope
from esb.errors import DecodeError, InputError
from esb.transport import names
from esb.transport.contract import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PREFETCH,
    DEFAULT_STOP_TIMEOUT,
    Action,
    DeadLetter,
    Decision,
    Delivery,
    Handler,
    Transport,
    TransportEvents,
    dead_letter_queues,
    decide,
    route_model,
)
from esb.transport.errors import NotConnected, PublishError, TransportError, Unroutable
from esb.transport.headers import (
    REASON_INPUT,
    REASON_PERMANENT,
    REASON_UNDECODABLE,
    attempts_so_far,
    dead_letter_headers,
    failure_headers,
    replay_headers,
)
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

BUSY_TIMEOUT_MS = 10_000
"""Milliseconds a statement waits for another process's write lock before failing."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    route TEXT NOT NULL,
    destination TEXT
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT,
    properties TEXT NOT NULL,
    body BLOB NOT NULL,
    available_at REAL NOT NULL,
    lease_owner TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, available_at);
"""


class _Consumer:
    """A registered consumer: its handler, queue, policy, threads and counters."""

    def __init__(self, route: Any, destination: str, handler: Handler, prefetch: int, concurrency: int):
        self.route = route
        self.destination = destination
        self.queue_name = names.work_queue_name(route.name, destination)
        self.handler = handler
        self.policy = route.retry
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.workers: list[threading.Thread] = []
        self.fetcher: threading.Thread | None = None
        self.wake = threading.Event()
        self.paused = False
        self.stopping = False
        self.lock = threading.Lock()
        self.in_hand = 0  # claimed and not yet settled (bounded by prefetch)
        self.running = 0  # handlers in progress or awaiting their future (stop() waits for them)


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
        self._prefetch = prefetch
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self._lease = lease
        self._events = events or TransportEvents()
        self._owner = uuid.uuid4().hex  # this transport's name on the leases it holds
        self._lock = threading.RLock()  # one connection, one statement at a time
        self._connection: sqlite3.Connection | None = None
        self._consumers: list[_Consumer] = []
        self._connected = False
        self._stopped = threading.Event()
        self._keeper: threading.Thread | None = None

    # --- the file ---------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        """The connection (opened, and the schema made, on first use); call under `_lock`."""
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         timeout=BUSY_TIMEOUT_MS / 1000)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            connection.executescript(SCHEMA)
            self._connection = connection
        return self._connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _execute(self, sql: str, parameters: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db().execute(sql, tuple(parameters))

    # --- life -------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    def declare(self) -> None:
        """Record the routes' work and dead-letter queues in the file (idempotent)."""
        rows = [(q.name, q.kind, q.route, q.destination) for q in self.topology.queues
                if q.kind in (WORK, DEAD_LETTER, INBOUND_DEAD_LETTER)]
        try:
            with self._transaction() as db:
                db.executemany("INSERT OR IGNORE INTO queues (name, kind, route, destination) "
                               "VALUES (?, ?, ?, ?)", rows)
        except sqlite3.Error as error:
            raise TransportError(f"cannot use the embedded transport file {self.path}: {error}") from None

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
        for consumer in self._consumers:
            consumer.stopping = True
            consumer.wake.set()
        while time.monotonic() < deadline and any(c.running for c in self._consumers):
            time.sleep(0.02)
        with self._lock:  # from here on, late outcomes are dropped (see _settle)
            self._stopped.set()
            was_connected, self._connected = self._connected, False
            if self._connection is not None:
                # what was taken but not finished goes back to its queue, marked as redelivered
                self._connection.execute("UPDATE messages SET lease_owner = NULL, available_at = ? "
                                         "WHERE lease_owner = ?", (time.time(), self._owner))
        for consumer in self._consumers:
            if consumer.fetcher is not None:
                consumer.fetcher.join(max(0.0, deadline - time.monotonic()) + 1)
            for _ in consumer.workers:
                consumer.inbox.put(None)
        if self._keeper is not None:
            self._keeper.join(1)
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        if was_connected:
            self._events.disconnected(None)

    def _keep_leases(self) -> None:
        """Renew this transport's leases while it runs, so only a crash lets them expire."""
        while not self._stopped.wait(self._lease / 3):
            try:
                with self._lock:
                    if self._stopped.is_set():
                        return
                    self._db().execute("UPDATE messages SET available_at = ? WHERE lease_owner = ?",
                                       (time.time() + self._lease, self._owner))
            except sqlite3.Error as error:
                log.warning("esb: could not renew the leases in %s: %s", self.path, error)

    # --- publishing -------------------------------------------------------------------------
    def _route(self, route: str, destination: str | None = None) -> Any:
        return route_model(self._routes, route, destination)

    def publish(self, envelope: Envelope, route: str,
                destination: str | None = None) -> concurrent.futures.Future[None]:
        model = self._route(route, destination)
        targets = [destination] if destination is not None else [d.name for d in model.destinations]
        queues = [names.work_queue_name(route, name) for name in targets]
        return self._store(queues, envelope.amqp_properties(), envelope.amqp_body())

    def publish_dead_letter(self, route: str, destination: str | None, body: bytes,
                            error: BaseException, headers: Mapping[str, Any] | None = None, *,
                            message_id: str | None = None, correlation_id: str | None = None,
                            content_type: str | None = None) -> concurrent.futures.Future[None]:
        self._route(route, destination)
        reason = REASON_INPUT if isinstance(error, InputError) else REASON_PERMANENT
        properties = {"message_id": message_id or str(uuid.uuid4()), "correlation_id": correlation_id,
                      "type": None, "content_type": content_type,
                      "headers": dead_letter_headers(headers, error, route=route, destination=destination,
                                                     attempts=1, reason=reason)}
        return self._store([names.dead_letter_queue_name(route, destination)], properties, body)

    def _store(self, queues: list[str], properties: dict[str, Any],
               body: bytes) -> concurrent.futures.Future[None]:
        """Insert one row per declared queue in one transaction; the future is settled after COMMIT."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if not self._connected:
            future.set_exception(NotConnected("the embedded transport is not started"))
            return future
        text = json.dumps(properties)
        try:
            with self._transaction() as db:
                marks = ", ".join("?" * len(queues))
                declared = {row[0] for row in db.execute(f"SELECT name FROM queues WHERE name IN ({marks})",
                                                         queues)}
                targets = [name for name in queues if name in declared]
                if not targets:
                    raise Unroutable(f"no queue took the message sent to {', '.join(queues)} "
                                     "(not declared in the embedded transport file)")
                now = time.time()
                db.executemany("INSERT INTO messages (queue, message_id, properties, body, available_at) "
                               "VALUES (?, ?, ?, ?, ?)",
                               [(name, properties.get("message_id"), text, body, now) for name in targets])
        except PublishError as error:
            future.set_exception(error)
            return future
        except sqlite3.Error as error:
            future.set_exception(PublishError(f"could not store the message in {self.path}: {error}"))
            return future
        future.set_result(None)
        for consumer in self._consumers:
            if consumer.queue_name in targets:
                consumer.wake.set()
        return future

    # --- consuming --------------------------------------------------------------------------
    def consume(self, route: str, destination: str, handler: Handler, *, prefetch: int | None = None,
                concurrency: int | None = None, inline: bool = False) -> None:
        model = self._route(route, destination)
        consumer = _Consumer(model, destination, handler, prefetch or self._prefetch,
                             0 if inline else concurrency or self._concurrency)
        for n in range(consumer.concurrency):
            worker = threading.Thread(target=self._work, args=(consumer,), daemon=True,
                                      name=f"esb-{route}-{destination}-{n + 1}")
            consumer.workers.append(worker)
            worker.start()
        self._consumers.append(consumer)
        if self._connected:
            self._start_fetcher(consumer)

    def _start_fetcher(self, consumer: _Consumer) -> None:
        consumer.fetcher = threading.Thread(target=self._fetch, args=(consumer,), daemon=True,
                                            name=f"esb-{consumer.queue_name}-fetch")
        consumer.fetcher.start()

    def _fetch(self, consumer: _Consumer) -> None:
        """A consumer's fetcher thread: claim what is available, up to the prefetch, hand it out."""
        while not consumer.stopping:
            consumer.wake.clear()
            rows: list[tuple] = []
            if not consumer.paused:
                with consumer.lock:
                    room = consumer.prefetch - consumer.in_hand
                if room > 0:
                    try:
                        rows = self._claim(consumer.queue_name, room)
                    except sqlite3.Error as error:
                        log.warning("esb: could not take messages from %s: %s", consumer.queue_name, error)
            if not rows:
                consumer.wake.wait(self._poll_interval)
                continue
            with consumer.lock:
                consumer.in_hand += len(rows)
            for row in rows:
                if consumer.workers:
                    consumer.inbox.put(row)
                else:  # inline: on this thread, with no hand-off
                    self._process(consumer, row)

    def _claim(self, queue_name: str, limit: int) -> list[tuple]:
        """Lease up to `limit` available messages of a queue to this transport, atomically."""
        now = time.time()
        with self._lock:
            if self._stopped.is_set():
                return []
            db = self._db()
            # a read first: an idle poll must not take the file's write lock
            if db.execute("SELECT 1 FROM messages WHERE queue = ? AND available_at <= ? LIMIT 1",
                          (queue_name, now)).fetchone() is None:
                return []
            rows = db.execute(
                "UPDATE messages SET lease_owner = ?, available_at = ?, deliveries = deliveries + 1 "
                "WHERE seq IN (SELECT seq FROM messages WHERE queue = ? AND available_at <= ? "
                "ORDER BY seq LIMIT ?) RETURNING seq, properties, body, deliveries",
                (self._owner, now + self._lease, queue_name, now, limit)).fetchall()
        return sorted(rows)

    def _work(self, consumer: _Consumer) -> None:
        while (row := consumer.inbox.get()) is not None:
            self._process(consumer, row)

    def _process(self, consumer: _Consumer, row: tuple) -> None:
        with consumer.lock:
            if consumer.stopping:  # taken but not started: stop() puts it back
                return
            consumer.running += 1
        seq = row[0]
        settled = False
        try:
            settled = self._handle(consumer, *row)
        except Exception:  # a bug in the bus itself: put the message back rather than lose it
            log.exception("esb: failed to process a message from %s", consumer.queue_name)
            self._settle(consumer, seq, "UPDATE messages SET lease_owner = NULL, available_at = ? "
                         "WHERE seq = ? AND lease_owner = ?", (time.time(), seq, self._owner))
            settled = True
        finally:
            if settled:
                with consumer.lock:
                    consumer.running -= 1

    def _handle(self, consumer: _Consumer, seq: int, properties_text: str, body: bytes,
                deliveries: int) -> bool:
        """Run the handler; returns False when the outcome comes later (a future)."""
        properties = json.loads(properties_text)
        headers = properties.get("headers") or {}
        delivery = Delivery(consumer.route.name, consumer.destination, properties.get("message_id"),
                            properties.get("correlation_id"), attempts_so_far(headers) + 1, deliveries > 1,
                            headers)
        started = time.perf_counter()
        try:
            envelope = Envelope.from_amqp(types.SimpleNamespace(**properties), body)
        except Exception as error:
            problem = DecodeError(f"not a valid bus message: {type(error).__name__}: {error}")
            self._fail(consumer, seq, properties, delivery, problem,
                       Decision(Action.DEAD_LETTER, reason=REASON_UNDECODABLE))
            return True
        try:
            result = consumer.handler(envelope, delivery)
        except Exception as error:
            self._fail(consumer, seq, properties, delivery, error)
            return True
        if isinstance(result, concurrent.futures.Future):
            result.add_done_callback(functools.partial(self._handler_done, consumer, seq, properties,
                                                       delivery, started))
            return False
        self._ack(consumer, seq, delivery, started)
        return True

    def _handler_done(self, consumer: _Consumer, seq: int, properties: dict[str, Any], delivery: Delivery,
                      started: float, done: concurrent.futures.Future) -> None:
        try:
            try:
                error = done.exception()
            except concurrent.futures.CancelledError as cancelled:
                error = cancelled
            if error is None:
                self._ack(consumer, seq, delivery, started)
            else:
                self._fail(consumer, seq, properties, delivery, error)
        finally:
            with consumer.lock:
                consumer.running -= 1

    def _ack(self, consumer: _Consumer, seq: int, delivery: Delivery, started: float) -> None:
        if self._settle(consumer, seq, "DELETE FROM messages WHERE seq = ? AND lease_owner = ?",
                        (seq, self._owner)):
            self._events.acked(delivery, time.perf_counter() - started)

    def _fail(self, consumer: _Consumer, seq: int, properties: dict[str, Any], delivery: Delivery,
              error: BaseException, decision: Decision | None = None) -> None:
        decision = decision or decide(error, delivery.attempt, consumer.policy)
        route, destination = consumer.route.name, consumer.destination
        now = time.time()
        if decision.action is Action.RETRY:
            delay = decision.delay or 0.0
            properties = {**properties, "headers": failure_headers(
                properties.get("headers"), error, route=route, destination=destination,
                attempts=delivery.attempt)}
            log.info("esb: %s attempt %d failed (%s: %s); retry in %gs", consumer.queue_name,
                     delivery.attempt, type(error).__name__, error, delay)
            if self._settle(consumer, seq, "UPDATE messages SET properties = ?, available_at = ?, "
                            "lease_owner = NULL, deliveries = 0 WHERE seq = ? AND lease_owner = ?",
                            (json.dumps(properties), now + delay, seq, self._owner)):
                self._events.retried(delivery, error, delay)
            return
        reason = decision.reason or REASON_PERMANENT
        dead_letter_queue = names.dead_letter_queue_name(route, destination)
        properties = {**properties, "headers": dead_letter_headers(
            properties.get("headers"), error, route=route, destination=destination,
            attempts=delivery.attempt, reason=reason)}
        log.warning("esb: message %s dead-lettered to %s after %d attempt(s): %s: %s",
                    delivery.message_id, dead_letter_queue, delivery.attempt, type(error).__name__, error)
        if self._settle(consumer, seq, "UPDATE messages SET queue = ?, properties = ?, available_at = ?, "
                        "lease_owner = NULL, deliveries = 0 WHERE seq = ? AND lease_owner = ?",
                        (dead_letter_queue, json.dumps(properties), now, seq, self._owner)):
            self._events.dead_lettered(delivery, error, reason)

    def _settle(self, consumer: _Consumer, seq: int, sql: str, parameters: tuple) -> bool:
        """Apply one outcome to a leased message; False when the lease is no longer ours."""
        stopped = False
        try:
            with self._lock:
                stopped = self._stopped.is_set()  # stop() has put the message back: drop the outcome
                changed = 0 if stopped else self._db().execute(sql, parameters).rowcount
        except sqlite3.Error as error:  # the lease expires and the message comes back
            log.error("esb: could not settle message %d of %s: %s", seq, consumer.queue_name, error)
            changed = 0
        finally:
            with consumer.lock:
                consumer.in_hand -= 1
            consumer.wake.set()
        if not changed and not stopped:
            log.warning("esb: message %d of %s was settled after its lease ended; it will be delivered again",
                        seq, consumer.queue_name)
        return bool(changed)

    # --- pause and resume -------------------------------------------------------------------
    def _consumers_of(self, route: str, destination: str | None) -> list[_Consumer]:
        self._route(route, destination)
        return [c for c in self._consumers if c.route.name == route
                and (destination is None or c.destination == destination)]

    def pause(self, route: str, destination: str | None = None) -> list[str]:
        consumers = self._consumers_of(route, destination)
        for consumer in consumers:
            consumer.paused = True
        return [consumer.destination for consumer in consumers]

    def resume(self, route: str, destination: str | None = None) -> list[str]:
        consumers = self._consumers_of(route, destination)
        for consumer in consumers:
            consumer.paused = False
            consumer.wake.set()
        return [consumer.destination for consumer in consumers]

    def paused(self, route: str) -> set[str]:
        return {c.destination for c in self._consumers_of(route, None) if c.paused}

    # --- dead-letter admin (works without start(), from any thread or process) ---------------
    def queue_stats(self) -> dict[str, tuple[int, int]]:
        """{queue: (messages, consumers)} like RabbitMQ's, for metrics and the admin API.

        Retries wait in their work queue here (`available_at` in the future), so the messages
        waiting for a retry are counted on the destination's first retry queue; consumers are
        this process's (other processes sharing the file are not seen)."""
        now = time.time()
        rows = self._execute("SELECT queue, available_at > ?, COUNT(*) FROM messages GROUP BY 1, 2",
                             (now,)).fetchall()
        ready: dict[str, int] = {}
        waiting: dict[str, int] = {}
        for queue_name, delayed, count in rows:
            (waiting if delayed else ready)[queue_name] = count
        consumers = {c.queue_name: 0 if c.paused else 1 for c in self._consumers}
        stats: dict[str, tuple[int, int]] = {}
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
            rows = self._execute("SELECT properties, body FROM messages WHERE queue = ? ORDER BY seq LIMIT ?",
                                 (queue_name, -1 if limit is None else limit - len(letters))).fetchall()
            letters += [_dead_letter(route, queue_destination, json.loads(p), body) for p, body in rows]
            if limit is not None and len(letters) >= limit:
                break
        return letters

    def replay_dead_letters(self, route: str, destination: str | None = None, *,
                            ids: Iterable[str] | None = None) -> int:
        wanted = set(ids) if ids is not None else None
        replayed = 0
        queues = dead_letter_queues(self._routes, route, destination, inbound=False)
        with self._transaction() as db:
            for queue_name, queue_destination in queues:
                work_queue = names.work_queue_name(route, queue_destination)
                rows = db.execute("SELECT seq, message_id, properties FROM messages WHERE queue = ? "
                                  "ORDER BY seq", (queue_name,)).fetchall()
                rows = [row for row in rows if wanted is None or row[1] in wanted]
                declared = db.execute("SELECT 1 FROM queues WHERE name = ?", (work_queue,)).fetchone()
                if rows and declared is None:
                    raise Unroutable(f'work queue "{work_queue}" does not exist; run `esb topology declare`')
                now = time.time()
                for seq, _message_id, properties_text in rows:
                    properties = json.loads(properties_text)
                    properties["headers"] = replay_headers(properties.get("headers"))
                    db.execute("UPDATE messages SET queue = ?, properties = ?, available_at = ?, "
                               "lease_owner = NULL, deliveries = 0 WHERE seq = ?",
                               (work_queue, json.dumps(properties), now, seq))
                replayed += len(rows)
        for consumer in self._consumers:
            if consumer.route.name == route:
                consumer.wake.set()
        return replayed

    def purge_dead_letters(self, route: str, destination: str | None = None, *,
                           ids: Iterable[str] | None = None) -> int:
        wanted = list(ids) if ids is not None else None
        purged = 0
        queues = dead_letter_queues(self._routes, route, destination, inbound=True)
        with self._transaction() as db:
            for queue_name, _destination in queues:
                if wanted is None:
                    purged += db.execute("DELETE FROM messages WHERE queue = ?", (queue_name,)).rowcount
                else:
                    for message_id in wanted:
                        purged += db.execute("DELETE FROM messages WHERE queue = ? AND message_id = ?",
                                             (queue_name, message_id)).rowcount
        return purged



def _dead_letter(route: str, destination: str | None, properties: dict[str, Any], body: bytes) -> DeadLetter:
    return DeadLetter(route=route, destination=destination, message_id=properties.get("message_id"),
                      correlation_id=properties.get("correlation_id"), type=properties.get("type"),
                      content_type=properties.get("content_type"), body=bytes(body),
                      headers=dict(properties.get("headers") or {}))
