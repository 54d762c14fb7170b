"""The RabbitMQ transport (pika): confirmed publishing, per-destination consumers, retry, dead letters.

Threads
    One I/O thread owns a pika `SelectConnection` (pika connections are not thread-safe) and
    does every broker call: publish, ack, nack, consume, cancel. Other threads never touch pika:
    they append work to a deque and wake the I/O thread with `ioloop.add_callback_threadsafe`,
    once per batch (a flag under a lock says a wake-up is already on its way), so a burst of
    publishes costs one wake-up, not one per message. Handlers run on per-destination worker
    threads, so a slow target never stalls the connection: heartbeats and the other destinations
    keep flowing. `consume(..., inline=True)` runs a handler that never blocks on the I/O thread
    itself (no hand-off; about 5 points faster in the route-stage benchmark).

The parts
    Publishing and its confirms: `esb.transport.rabbitmq_publisher`. Consumer channels, acks,
    retry and dead-letter copies: `esb.transport.rabbitmq_consuming` (on the consumer both
    transports share, `esb.transport.consumer`). Dead-letter admin: `esb.transport.rabbitmq_admin`.
    Connection parameters, topology declaration and error texts: `esb.transport.rabbitmq_connection`.

Reconnect
    Any unexpected connection or channel close (broker restart, `rabbitmqctl close_connection`,
    a network cut, a channel error) ends the connection; the I/O thread waits (0.5 s doubling to
    30 s, reset after a good connection), re-declares the topology, reopens the channels and
    consumes again. Handlers still running for a closed channel finish, but their outcome is
    dropped: the broker has already requeued their message (at-least-once; targets de-duplicate
    by the message id).

Topology and admin
    The topology (`esb.transport.topology`) is declared on a short-lived connection before each
    (re)connect; `declare` and the dead-letter admin use short-lived connections too.

Shutdown
    `stop()` cancels the consumers, requeues what was taken but not started, waits up to
    `timeout` seconds for running handlers and outstanding confirms, then closes the connection
    (the broker requeues anything still unacked) and joins the I/O thread. Signal handling
    belongs to the CLI/runtime, which call `stop()`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pika
import pika.exceptions

from esb.envelope import Envelope
from esb.errors import InputError
from esb.transport import names
from esb.transport.coalesce import coalesce_sends
from esb.transport.consumer import Consumers
from esb.transport.contract import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PREFETCH,
    DEFAULT_PUBLISH_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    Handler,
    Transport,
    TransportEvents,
    route_model,
)
from esb.transport.errors import (
    BrokerUnavailable,
    ConnectionLost,
    NotConnected,
    TopologyError,
    TransportError,
)
from esb.transport.headers import REASON_INPUT, REASON_PERMANENT, dead_letter_headers
from esb.transport.rabbitmq_admin import RabbitMQAdmin
from esb.transport.rabbitmq_connection import (
    LOGIN_REFUSED,
    broker_urls,
    connection_parameters,
    declare_topology,
    describe,
    login_refused,
    redacted,
    unreachable,
)
from esb.transport.rabbitmq_consuming import QueueConsumer, QueueConsuming
from esb.transport.rabbitmq_publisher import DEFAULT_MAX_OUTSTANDING, PERSISTENT, ConfirmedPublisher
from esb.transport.topology import Topology

log = logging.getLogger(__name__)

RECONNECT_MIN_DELAY = 0.5
"""Seconds before the first reconnect attempt; doubles per failure."""

RECONNECT_MAX_DELAY = 30.0
"""Seconds between reconnect attempts at most."""


class RabbitMQTransport(RabbitMQAdmin, Transport):
    """The bus on RabbitMQ.

    Parameters (keyword-only after `routes`):
        url (str or list): `amqp://user:password@host:port/vhost`; heartbeat etc. as URL query
            options. Several nodes of one cluster: a list, or the URLs separated by commas; the bus
            connects to one and moves on to the next when that one is lost or unreachable.
        routes: the `esb.routes.Route`s it serves (or an `esb.routes.Config`).
        queue_type (str): `classic` (default) or `quorum`, for routes without their own option.
        prefetch (int): messages in hand per destination consumer; default DEFAULT_PREFETCH (100).
        concurrency (int): handler threads per destination; default DEFAULT_CONCURRENCY (8).
        max_outstanding (int): publishes awaiting confirms at once; default 1000.
        reconnect_min_delay, reconnect_max_delay (float): seconds, default 0.5 and 30.
        connection_name (str): shown by `rabbitmqctl list_connections client_properties`.
        events (TransportEvents): hooks for metrics; default no-ops.
    """

    def __init__(self, url: str | Sequence[str], routes: Iterable[Any], *, queue_type: str | None = None,
                 prefetch: int = DEFAULT_PREFETCH, concurrency: int = DEFAULT_CONCURRENCY,
                 max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
                 reconnect_min_delay: float = RECONNECT_MIN_DELAY,
                 reconnect_max_delay: float = RECONNECT_MAX_DELAY,
                 connection_name: str = "esb", events: TransportEvents | None = None):
        config_routes = getattr(routes, "routes", None)
        if config_routes is not None:  # an esb.routes.Config: its settings may name the queue type
            queue_type = queue_type or (getattr(routes, "settings", None) or {}).get("queue_type")
        self._routes = {r.name: r for r in (config_routes if config_routes is not None else routes)}
        self.topology = Topology.from_routes(self._routes.values(), queue_type=queue_type)
        self.urls = broker_urls(url)
        self._connection_name = connection_name
        self._node = 0
        self._use_node(0)
        self._reconnect_min = reconnect_min_delay
        self._reconnect_max = reconnect_max_delay
        self._events = events or TransportEvents()

        self._lock = threading.Lock()
        self._wake_pending = False
        self._calls: collections.deque[Any] = collections.deque()
        self._connection: Any = None
        self._connected = threading.Event()
        self._publisher = ConfirmedPublisher(self._connected, self._wake, renew=self._renew_publish_channel,
                                             max_outstanding=max_outstanding)
        self._submit = self._publisher.submit  # any thread: queue one publish, get its future
        self._consuming = QueueConsuming(self._publisher, wake=self._wake, call_soon=self._call_soon,
                                         on_channel_closed=self._on_channel_closed,
                                         on_cancelled=self._on_broker_cancel)
        self._consumers = Consumers(self._routes, self._consuming, self._events, prefetch=prefetch,
                                    concurrency=concurrency, kind=QueueConsumer)

        self._thread: threading.Thread | None = None
        self._io_thread_id: int | None = None
        self._stop_event = threading.Event()
        self._stopping = False
        self._start_error: BaseException | None = None
        self._last_error: BaseException | None = None
        self.connections = 0  # successful connections so far (1 + reconnects)

    # --- life ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="esb-rabbitmq-io", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.05):
            if self._start_error is not None or time.monotonic() > deadline or not self._thread.is_alive():
                error = self._start_error or self._last_error
                self.stop(timeout=0)
                if isinstance(error, TransportError):
                    raise error
                raise BrokerUnavailable(unreachable(self.url, error))

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        if self._thread is None or self._stopping:
            if self._thread is not None:
                self._thread.join(timeout + 5)
            return
        deadline = time.monotonic() + timeout
        self._consumers.stopping()
        self._call_soon(functools.partial(self._consuming.cancel, self._consumers))
        while time.monotonic() < deadline and self._connected.is_set() and self._busy():
            time.sleep(0.02)
        self._stopping = True
        self._stop_event.set()
        self._call_soon(self._close_connection)
        self._thread.join(max(1.0, deadline - time.monotonic()) + 5)
        self._consumers.stop_workers()
        self._publisher.fail_outbox(NotConnected("the transport is stopped"))

    def _busy(self) -> bool:
        return self._publisher.busy() or self._consuming.busy(self._consumers)

    def _use_node(self, index: int) -> None:
        """Talk to node `index` of `urls` from now on (the next connection, declare and admin call)."""
        self._node = index % len(self.urls)
        self.url = self.urls[self._node]
        self._parameters, self._admin_parameters = connection_parameters(self.url, self._connection_name)

    def _run(self) -> None:
        """The I/O thread: declare, connect, run the loop; on loss, back off and do it again."""
        self._io_thread_id = threading.get_ident()
        delay = self._reconnect_min
        while not self._stopping:
            was_connected = False
            try:
                declare_topology(self._admin_parameters, self.topology)
                was_connected = self._run_connection()
            except TopologyError as error:
                self._start_error = self._start_error or (None if self.connections else error)
                self._last_error = error
                log.error("esb: %s", error)
            except Exception as error:  # broker down, refused, network: retry with backoff
                self._last_error = error
                if isinstance(error, LOGIN_REFUSED) and not self.connections:
                    # wrong user or password at start: retrying cannot help, say so at once
                    self._start_error = BrokerUnavailable(login_refused(self.url, error))
                    break
                log.warning("esb: broker not reachable at %s: %s", redacted(self.url), describe(error))
            if self._stopping or self._start_error is not None:
                break
            tried_all = not was_connected and self._node == len(self.urls) - 1
            delay = min(delay * 2, self._reconnect_max) if tried_all else self._reconnect_min
            if len(self.urls) > 1:  # another node of the cluster may be up: try it next
                self._use_node(self._node + 1)
            if was_connected:
                log.warning("esb: connection to the broker lost (%s); reconnecting to %s",
                            describe(self._last_error), redacted(self.url))
            self._stop_event.wait(delay)
        self._connected.clear()

    def _run_connection(self) -> bool:
        """One connection's life; returns whether it was ever fully open."""
        opened = threading.Event()
        connection = pika.SelectConnection(
            self._parameters,
            on_open_callback=lambda conn: self._on_open(conn, opened),
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed)
        with self._lock:
            self._connection = connection
            self._wake_pending = False
        try:
            connection.ioloop.start()
        finally:
            with self._lock:
                self._connection = None
            self._connected.clear()
            if self._stopping:
                lost = ConnectionLost("the transport stopped before the broker confirmed the publish")
            else:
                lost = ConnectionLost(f"connection to the broker lost: {describe(self._last_error)}")
            self._publisher.fail_pending(lost)
            self._consuming.connection_lost(self._consumers)
            with contextlib.suppress(Exception):
                connection.ioloop.close()
        return opened.is_set()

    def _on_open(self, connection: Any, opened: threading.Event) -> None:
        coalesce_sends(connection)
        connection.channel(on_open_callback=lambda channel: self._on_channel(channel, opened))

    def _on_channel(self, channel: Any, opened: threading.Event) -> None:
        def confirming() -> None:
            for consumer in self._consumers:
                self._consuming.open(channel.connection, consumer)
            self.connections += 1
            opened.set()
            self._connected.set()
            self._events.connected()

        self._publish_on(channel, confirming)

    def _publish_on(self, channel: Any, then: Callable[[], None] = lambda: None) -> None:
        """Make `channel` the publish channel once it is in confirm mode; then `then()` and send."""
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._publisher.on_return)

        def confirming(_frame: Any) -> None:
            self._publisher.opened(channel)
            then()
            self._drain()

        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=confirming)

    def _renew_publish_channel(self, old: Any) -> None:
        """I/O thread: the broker nacked a publish on `old` (see esb.transport.rabbitmq_publisher);
        close it and publish on a new channel of the same connection."""
        connection = self._connection
        log.warning("esb: the broker refused a publish on channel %s (basic.nack); publishing on a new "
                    "channel", old.channel_number)
        with contextlib.suppress(Exception):
            old.close()
        if connection is not None and connection.is_open:
            connection.channel(on_open_callback=self._publish_on)

    def _on_open_error(self, connection: Any, error: BaseException) -> None:
        self._last_error = error
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: Any, reason: BaseException) -> None:
        if not self._stopping:
            self._last_error = reason
        self._connected.clear()
        self._events.disconnected(None if self._stopping else reason)
        connection.ioloop.stop()

    def _on_channel_closed(self, channel: Any, reason: BaseException) -> None:
        """A channel the bus did not close itself: start over with a new connection."""
        connection = self._connection
        if self._stopping or connection is None or connection.is_closing or connection.is_closed:
            return
        if isinstance(reason, pika.exceptions.ChannelClosedByClient):  # a publish channel renewed
            return
        log.warning("esb: channel %s closed by the broker (%s); reconnecting", channel.channel_number,
                    describe(reason))
        self._last_error = reason
        connection.close()

    def _on_broker_cancel(self, consumer: QueueConsumer) -> None:
        """The broker cancelled the consumer (its queue was deleted): reconnect re-declares it."""
        if not self._stopping and not consumer.stopping:
            log.warning("esb: the broker cancelled the consumer of %s; reconnecting", consumer.queue_name)
            self._last_error = TransportError(f"consumer of {consumer.queue_name} cancelled by the broker")
            if self._connection is not None and self._connection.is_open:
                self._connection.close()

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            if not (connection.is_closing or connection.is_closed):
                connection.close()
                return
        except pika.exceptions.ConnectionWrongStateError:
            pass
        connection.ioloop.stop()

    # --- cross-thread hand-off ------------------------------------------------------------
    def _wake(self) -> None:
        if self._wake_pending:  # a drain is already scheduled and will see what was just appended
            return
        with self._lock:
            if self._wake_pending:
                return
            self._wake_pending = True
            connection = self._connection
        if connection is not None:
            try:
                connection.ioloop.add_callback_threadsafe(self._drain)
            except Exception:  # the loop is closing: the next connection drains
                with self._lock:
                    self._wake_pending = False

    def _call_soon(self, function: Any) -> None:
        self._calls.append(function)
        self._wake()

    def _drain(self) -> None:
        """On the I/O thread: run queued calls, settle acks, send queued publishes."""
        with self._lock:
            self._wake_pending = False
        calls = self._calls
        while calls:
            call = calls.popleft()
            try:
                call()
            except Exception:  # a bug must not kill the I/O loop (and look like a lost connection)
                log.exception("esb: a transport call failed on the I/O thread")
        self._consuming.flush()
        self._publisher.flush()

    def _on_confirm(self, frame: Any) -> None:
        # Done-callbacks run inside the futures' set_result; the acks they settle are flushed
        # here, at once, instead of waking the loop once more (see QueueConsuming._settle).
        self._publisher.on_confirm(frame)
        self._consuming.flush()
        self._publisher.flush()

    # --- publishing -------------------------------------------------------------------------
    def publish(self, envelope: Envelope, route: str,
                destination: str | None = None) -> concurrent.futures.Future[None]:
        route_model(self._routes, route, destination)  # KeyError for an unknown name
        if destination is None:
            exchange, key = names.EXCHANGE, route
        else:
            exchange, key = "", names.work_queue_name(route, destination)
        # Encoded on the caller's thread: it overlaps with the I/O thread waiting for the broker
        # (measured: encoding on the I/O thread instead was about 10 points slower).
        properties = pika.BasicProperties(delivery_mode=PERSISTENT, **envelope.amqp_properties())
        return self._submit(exchange, key, envelope.amqp_body(), properties)

    def publish_confirmed(self, envelope: Envelope, route: str, destination: str | None = None,
                          timeout: float = DEFAULT_PUBLISH_TIMEOUT) -> None:
        if threading.get_ident() == self._io_thread_id:
            raise RuntimeError("publish_confirmed() on the transport's I/O thread would wait forever")
        super().publish_confirmed(envelope, route, destination, timeout)

    def publish_dead_letter(self, route: str, destination: str | None, body: bytes,
                            error: BaseException, headers: Mapping[str, Any] | None = None, *,
                            message_id: str | None = None, correlation_id: str | None = None,
                            content_type: str | None = None) -> concurrent.futures.Future[None]:
        route_model(self._routes, route, destination)
        reason = REASON_INPUT if isinstance(error, InputError) else REASON_PERMANENT
        properties = pika.BasicProperties(
            delivery_mode=PERSISTENT, message_id=message_id or str(uuid.uuid4()),
            correlation_id=correlation_id, content_type=content_type,
            headers=dead_letter_headers(headers, error, route=route, destination=destination, attempts=1,
                                        reason=reason))
        return self._submit("", names.dead_letter_queue_name(route, destination), body, properties)

    # --- consuming, pause and resume ---------------------------------------------------------
    def consume(self, route: str, destination: str, handler: Handler, *, prefetch: int | None = None,
                concurrency: int | None = None, inline: bool = False) -> None:
        consumer = self._consumers.add(route, destination, handler, prefetch=prefetch,
                                       concurrency=concurrency, inline=inline)
        if self._connected.is_set():
            self._call_soon(functools.partial(self._restart, [consumer]))

    def pause(self, route: str, destination: str | None = None) -> list[str]:
        consumers = self._consumers.pause(route, destination)
        self._call_soon(functools.partial(self._consuming.cancel, consumers))
        return [consumer.destination for consumer in consumers]

    def resume(self, route: str, destination: str | None = None) -> list[str]:
        consumers = self._consumers.resume(route, destination)
        self._call_soon(functools.partial(self._restart, consumers))
        return [consumer.destination for consumer in consumers]

    def paused(self, route: str) -> set[str]:
        return self._consumers.paused(route)

    def _restart(self, consumers: list[QueueConsumer]) -> None:
        """On the I/O thread: consume (again) on the current connection."""
        connection = self._connection
        self._consuming.restart(connection if self._connected.is_set() else None, consumers)
