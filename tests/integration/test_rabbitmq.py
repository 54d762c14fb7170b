"""The RabbitMQ transport against a real broker: each test uses its own route names and deletes
its queues afterwards. Backoffs are short (0.2 s, 0.5 s) to keep the file quick.

The broker-restart test (`rabbitmqctl stop_app` / `start_app`) disturbs every other user of the
broker, so it runs only when ESB_TEST_BROKER_RESTART=1; the reconnect tests close the bus's
connection from the broker side instead (`rabbitmqctl close_connection`), which is fast and
touches no one else.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pika
import pytest

from esb.envelope import Envelope
from esb.errors import Retryable
from esb.retry import RetryPolicy
from esb.routes import Destination, Endpoint, Route
from esb.transport import names
from esb.transport.errors import BrokerUnavailable, ConnectionLost, PublishNacked, TopologyError, Unroutable
from esb.transport.rabbitmq import RabbitMQTransport

pytestmark = pytest.mark.broker

SHORT = RetryPolicy(attempts=3, backoff=(0.2, 0.5))


def make_route(name: str, destinations=("a", "b"), retry: RetryPolicy = SHORT, **options) -> Route:
    return Route(name=name, source=Endpoint("test", {}),
                 destinations=tuple(Destination(d, Endpoint("test", {})) for d in destinations),
                 retry=retry, options=options)


def envelope(n: int = 1) -> Envelope:
    return Envelope(type="purchase_order", payload={"order_id": f"PO-{n}", "qty": 3}, source="erp",
                    correlation_id=f"PO-{n}")


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout}s: {condition}")


class Broker:
    """Test-side access to the broker: queue depths, raw publishes, cleanup."""

    def __init__(self, url: str):
        self.url = url
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.queues: set[str] = set()

    def channel(self):
        """A channel, on a new connection when the old one went (a broker restart)."""
        try:
            return self.connection.channel()
        except pika.exceptions.AMQPError:
            self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
            return self.connection.channel()

    def depth(self, queue: str) -> int:
        channel = self.channel()
        try:
            return channel.queue_declare(queue, passive=True).method.message_count
        finally:
            channel.close()

    def exists(self, queue: str) -> bool:
        channel = self.channel()
        try:
            channel.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return False
        channel.close()
        return True

    def publish_raw(self, queue: str, body: bytes, **properties) -> None:
        channel = self.channel()
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, **properties))
        channel.close()

    def delete(self, queue: str) -> None:
        channel = self.channel()
        channel.queue_delete(queue)
        channel.close()

    def close(self) -> None:
        for queue in self.queues:
            self.delete(queue)
        self.connection.close()


@pytest.fixture
def broker(broker_url):
    broker = Broker(broker_url)
    yield broker
    broker.close()


@pytest.fixture
def transport(broker, unique_name):
    """`transport(*routes, **options)` builds a started transport; all are stopped and cleaned up."""
    made: list[RabbitMQTransport] = []

    def build(*routes: Route, start: bool = True, **options) -> RabbitMQTransport:
        options.setdefault("connection_name", f"esb-test-{unique_name}-{len(made)}")
        options.setdefault("reconnect_min_delay", 0.2)
        bus = RabbitMQTransport(broker.url, routes, **options)
        broker.queues.update(q.name for q in bus.topology.queues)
        made.append(bus)
        if start:
            bus.start(timeout=10)
        return bus

    yield build
    for bus in made:
        bus.stop(timeout=2)


class Recorder:
    """A handler that records each call and then does what `outcome(envelope, delivery)` says."""

    def __init__(self, outcome=None):
        self.calls: list[tuple[float, Envelope, object]] = []
        self.outcome = outcome
        self.lock = threading.Lock()

    def __call__(self, envelope, delivery):
        with self.lock:
            self.calls.append((time.monotonic(), envelope, delivery))
        if self.outcome is not None:
            return self.outcome(envelope, delivery)
        return None

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return [e.id for _, e, _ in self.calls]


def raising(error: Exception):
    """An outcome for `Recorder`: the handler raises `error`."""

    def outcome(envelope, delivery):
        raise error

    return outcome


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def close_connection_from_broker(connection_name: str) -> None:
    """`rabbitmqctl close_connection` wants the Erlang pid as the plain listing prints it
    (`<rabbit@host.1.2.0>`; the JSON listing's `#PID<...>` is refused)."""
    listing = rabbitmqctl("-q", "list_connections", "--no-table-headers", "pid", "client_properties")
    pids = [line.split("\t", 1)[0] for line in listing.splitlines()
            if f'{{"connection_name","{connection_name}"}}' in line]
    assert pids, f"no connection named {connection_name}"
    for pid in pids:
        rabbitmqctl("close_connection", pid, "test: closed by the broker")


# --- publishing -------------------------------------------------------------------------------


def test_many_publishes_are_confirmed_without_waiting_for_each_other(transport, broker, unique_name):
    bus = transport(make_route(unique_name, destinations=("a",)), max_outstanding=100)

    futures = [bus.publish(envelope(n), unique_name) for n in range(2000)]

    for future in futures:
        assert future.result(30) is None
    assert broker.depth(names.work_queue_name(unique_name, "a")) == 2000


def test_an_unroutable_publish_fails_its_caller(transport, broker, unique_name):
    bus = transport(make_route(unique_name))
    broker.delete(names.work_queue_name(unique_name, "a"))
    broker.delete(names.work_queue_name(unique_name, "b"))

    with pytest.raises(Unroutable, match="no queue took the message"):
        bus.publish_confirmed(envelope(), unique_name)
    with pytest.raises(Unroutable):
        bus.publish_confirmed(envelope(), unique_name, "a")


def test_a_nacked_publish_fails_alone_and_publishing_goes_on_on_a_new_channel(transport, broker, unique_name):
    """A full queue (a max-length policy with reject-publish) makes the broker nack; the bus moves to
    a new publish channel of the same connection and goes on once the queue has room."""
    bus = transport(make_route(unique_name, destinations=("a",)))
    work = names.work_queue_name(unique_name, "a")
    policy = f"esb-test-{unique_name}"
    rabbitmqctl("set_policy", "--apply-to", "queues", "--priority", "100", policy, f"^{work}$",
                '{"max-length": 1, "overflow": "reject-publish"}')
    try:
        bus.publish_confirmed(envelope(1), unique_name)
        first_channel = bus._publisher.channel
        wait_until(lambda: _nacked(bus, unique_name), timeout=10)  # the policy reaches the queue
        channel = broker.channel()
        channel.queue_purge(work)
        channel.close()
        bus.publish_confirmed(envelope(3), unique_name)
    finally:
        rabbitmqctl("clear_policy", policy)

    assert broker.depth(work) == 1
    assert bus._publisher.channel is not first_channel and bus.connections == 1  # no reconnect


def _nacked(bus, route: str) -> bool:
    try:
        bus.publish_confirmed(envelope(2), route)
    except PublishNacked:
        return True
    return False


def test_publishing_to_an_unknown_route_suggests_the_known_one(transport, unique_name):
    bus = transport(make_route(unique_name))

    with pytest.raises(KeyError, match="did you mean"):
        bus.publish(envelope(), unique_name + "x")


def test_start_fails_with_a_clear_error_when_the_broker_is_unreachable(unique_name):
    bus = RabbitMQTransport("amqp://guest:secret@127.0.0.1:1/%2F", [make_route(unique_name)])

    with pytest.raises(BrokerUnavailable, match=r"cannot reach the broker at amqp://guest:\*\*\*@127.0.0.1:1"):
        bus.start(timeout=1.5)


def test_a_queue_declared_with_other_settings_is_reported_by_name(transport, broker, unique_name):
    queue = names.work_queue_name(unique_name, "a")
    broker.queues.add(queue)
    broker.channel().queue_declare(queue, durable=True, arguments={"x-max-length": 5})

    with pytest.raises(TopologyError, match=queue):
        transport(make_route(unique_name))


# --- consuming, retry, dead letters --------------------------------------------------------------
def test_a_delivered_message_is_acked(transport, broker, unique_name):
    bus = transport(make_route(unique_name, destinations=("a",)))
    handler = Recorder()
    bus.consume(unique_name, "a", handler)

    sent = envelope()
    bus.publish_confirmed(sent, unique_name)

    wait_until(lambda: handler.calls)
    _, received, delivery = handler.calls[0]
    assert received == sent
    assert (delivery.route, delivery.destination, delivery.attempt) == (unique_name, "a", 1)
    bus.stop(timeout=2)
    assert broker.depth(names.work_queue_name(unique_name, "a")) == 0


def test_a_message_waiting_for_its_retry_does_not_hold_up_the_next_one(transport, unique_name):
    bus = transport(make_route(unique_name, destinations=("a",),
                               retry=RetryPolicy(attempts=2, backoff=(1.0,))))
    first = envelope(1)

    def busy_the_first_time(e, d):
        if e.id == first.id and d.attempt == 1:
            raise Retryable("busy")

    handler = Recorder(busy_the_first_time)
    bus.consume(unique_name, "a", handler, concurrency=1)

    bus.publish_confirmed(first, unique_name)
    bus.publish_confirmed(second := envelope(2), unique_name)

    wait_until(lambda: len(handler.calls) == 3, timeout=5)
    assert handler.ids == [first.id, second.id, first.id]
    assert handler.calls[1][0] - handler.calls[0][0] < 0.5


@pytest.mark.parametrize("inline", [False, True], ids=["on a worker thread", "inline"])
def test_a_handler_may_return_a_future_and_is_acked_after_it(transport, broker, unique_name, inline):
    target = make_route(unique_name + "out", destinations=("x",))
    bus = transport(make_route(unique_name, destinations=("a",)), target)
    bus.consume(unique_name, "a", lambda e, d: bus.publish(e.derive(), target.name), inline=inline)

    bus.publish_confirmed(sent := envelope(), unique_name)

    wait_until(lambda: broker.depth(names.work_queue_name(target.name, "x")) == 1)
    bus.stop(timeout=2)
    assert broker.depth(names.work_queue_name(unique_name, "a")) == 0
    assert sent  # the source message was acked only after the derived one was confirmed


def test_an_inline_handler_failure_is_retried_like_any_other(transport, unique_name):
    once_more = RetryPolicy(attempts=2, backoff=(0.2,))
    bus = transport(make_route(unique_name, destinations=("a",), retry=once_more))
    handler = Recorder(raising(Retryable("busy")))
    bus.consume(unique_name, "a", handler, inline=True)

    bus.publish_confirmed(envelope(), unique_name)

    (letter,) = wait_until(lambda: bus.dead_letters(unique_name, "a"))
    assert letter.attempts == 2 and [d.attempt for _, _, d in handler.calls] == [1, 2]


# --- shutdown and reconnect --------------------------------------------------------------------
def test_stop_requeues_what_could_not_finish(transport, broker, unique_name):
    bus = transport(make_route(unique_name, destinations=("a",)))
    release = threading.Event()
    handler = Recorder(lambda e, d: release.wait(10))
    bus.consume(unique_name, "a", handler, concurrency=1)
    for n in range(5):
        bus.publish(envelope(n), unique_name).result(5)
    wait_until(lambda: handler.calls)

    started = time.monotonic()
    bus.stop(timeout=0.5)

    assert time.monotonic() - started < 3
    release.set()
    assert broker.depth(names.work_queue_name(unique_name, "a")) == 5


def test_the_bus_reconnects_after_the_broker_closes_its_connection_and_loses_nothing(transport, unique_name):
    connection_name = f"esb-test-{unique_name}-reconnect"
    bus = transport(make_route(unique_name, destinations=("a",)), connection_name=connection_name)
    handler = Recorder()
    bus.consume(unique_name, "a", handler)
    confirmed: list[str] = []
    failed: list[BaseException] = []
    publishing = threading.Event()
    publishing.set()

    def publish_all_the_time():
        n = 0
        while publishing.is_set():
            e = envelope(n)
            n += 1
            try:
                bus.publish_confirmed(e, unique_name, timeout=10)
                confirmed.append(e.id)
            except ConnectionLost as error:
                failed.append(error)
                time.sleep(0.05)

    publisher = threading.Thread(target=publish_all_the_time)
    publisher.start()
    try:
        wait_until(lambda: len(confirmed) >= 20)
        close_connection_from_broker(connection_name)
        wait_until(lambda: failed)
        wait_until(lambda: bus.connected and bus.connections >= 2, timeout=10)
        count = len(confirmed)
        wait_until(lambda: len(confirmed) >= count + 20, timeout=10)
    finally:
        publishing.clear()
        publisher.join()

    wait_until(lambda: set(confirmed) <= set(handler.ids), timeout=10)


@pytest.mark.skipif(os.environ.get("ESB_TEST_BROKER_RESTART") != "1",
                    reason="restarts the shared broker: set ESB_TEST_BROKER_RESTART=1")
def test_the_bus_resumes_after_a_broker_restart(transport, unique_name):
    bus = transport(make_route(unique_name, destinations=("a",)))
    handler = Recorder()
    bus.consume(unique_name, "a", handler)
    before = envelope(1)
    bus.publish_confirmed(before, unique_name)
    wait_until(lambda: handler.calls)

    rabbitmqctl("stop_app")
    try:
        wait_until(lambda: not bus.connected, timeout=10)
    finally:
        rabbitmqctl("start_app")
    wait_until(lambda: bus.connected, timeout=30)
    bus.publish_confirmed(after := envelope(2), unique_name)

    wait_until(lambda: after.id in handler.ids, timeout=10)


def test_quorum_queues_retry_and_dead_letter_like_classic_ones(transport, unique_name):
    bus = transport(make_route(unique_name, destinations=("a",), queue_type="quorum",
                               retry=RetryPolicy(attempts=2, backoff=(0.2,))))
    handler = Recorder(raising(Retryable("busy")))
    bus.consume(unique_name, "a", handler)

    bus.publish_confirmed(envelope(), unique_name)

    (letter,) = wait_until(lambda: bus.dead_letters(unique_name, "a"))
    assert letter.attempts == 2 and len(handler.calls) == 2


def test_a_paused_destination_stays_paused_after_a_reconnect(transport, broker, unique_name):
    name = f"esb-test-{unique_name}-pause"
    bus = transport(make_route(unique_name, destinations=("a",)), connection_name=name)
    handler = Recorder()
    bus.consume(unique_name, "a", handler)
    bus.pause(unique_name)
    connections = bus.connections

    close_connection_from_broker(name)
    wait_until(lambda: bus.connected and bus.connections > connections, timeout=20)
    bus.publish_confirmed(envelope(1), unique_name)
    time.sleep(0.5)

    assert handler.calls == []
    bus.resume(unique_name)
    wait_until(lambda: len(handler.calls) == 1)
