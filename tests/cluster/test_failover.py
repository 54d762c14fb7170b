"""The bus on a 3-node RabbitMQ cluster with quorum queues: a node stopped mid-stream loses nothing.

The bus is given all three node URLs, the node it is connected to first is stopped
(`rabbitmqctl stop_app`) while messages flow. Every publish is either confirmed or failed to the
caller (who sends it again, as a REST source's client does after a 503); at the end every
confirmed message has been handled: 0 lost. The node is started again afterwards.
"""

from __future__ import annotations

import threading
import time

import pytest

from esb.envelope import Envelope
from esb.retry import RetryPolicy
from esb.routes import Destination, Endpoint, Route
from esb.transport import create_transport, names
from esb.transport.errors import TransportError
from esb.transport.topology import Topology

pytestmark = [pytest.mark.broker, pytest.mark.cluster]

MESSAGES = 300


def make_route(name: str) -> Route:
    return Route(name=name, source=Endpoint("test", {}),
                 destinations=(Destination("a", Endpoint("test", {})),),
                 retry=RetryPolicy(attempts=3, backoff=(0.2, 0.5)), options={"queue_type": "quorum"})


def message(n: int) -> Envelope:
    return Envelope(type="t", payload={"n": str(n)}, source="test")


GIVE_UP = 60.0
"""Seconds one message may keep failing before the test fails (a channel that nacked every publish
after a partition once kept the caller's loop going until CI's limit)."""


def publish_until_confirmed(bus, n: int, route: str, failures: list[str]) -> float:
    """The caller's loop: message `n` is sent again after each failure (recorded in `failures`)
    until it is confirmed; returns when (monotonic). Fails the test after GIVE_UP seconds."""
    deadline = time.monotonic() + GIVE_UP
    while True:
        try:
            bus.publish_confirmed(message(n), route, timeout=10)
            return time.monotonic()
        except TransportError as error:
            failures.append(type(error).__name__)
            assert time.monotonic() < deadline, (
                f"message {n} not confirmed within {GIVE_UP:g} s; the last failures: {failures[-5:]}")
            time.sleep(0.1)


def wait_until(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s: {condition}")


def test_every_queue_of_a_quorum_route_is_replicated_on_all_three_nodes_and_leaders_spread(rabbit_cluster,
                                                                                          unique_name):
    route = make_route(unique_name)
    bus = create_transport(rabbit_cluster.urls, [route])
    bus.declare()
    queues = [spec.name for spec in Topology.from_routes([route]).queues]
    assert len(queues) >= 3  # work, retry (one per delay), dead-letter
    listing = rabbit_cluster.ctl(rabbit_cluster.nodes[0], "list_queues", "--quiet", "--no-table-headers",
                                 "name", "type", "leader", "members")
    leaders = set()
    for name in queues:
        line = next(row for row in listing.splitlines() if row.split("\t")[0] == name)
        assert "\tquorum\t" in line, line
        assert all(node.name in line for node in rabbit_cluster.nodes), line
        leaders.add(line.split("\t")[2])
    # declared over one connection, yet led from more than one node (queue_leader_locator = balanced)
    assert len(leaders) >= 2, listing


def test_a_node_stopped_mid_stream_loses_no_confirmed_message(rabbit_cluster, unique_name):
    first, *others = rabbit_cluster.nodes
    bus = create_transport(",".join(rabbit_cluster.urls), [make_route(unique_name)],
                           reconnect_min_delay=0.2, reconnect_max_delay=1.0)
    handled: set[str] = set()
    lock = threading.Lock()

    def handler(envelope, _delivery):
        with lock:
            handled.add(envelope.payload["n"])

    bus.start()
    assert bus.url == first.url
    bus.consume(unique_name, "a", handler)
    confirmed: set[str] = set()
    failures: list[str] = []
    stopped = False
    stopped_at = resumed_at = 0.0
    try:
        for n in range(MESSAGES):
            if n == MESSAGES // 3:
                stopped_at = time.monotonic()
                rabbit_cluster.stop_app(first)
                stopped = True
            at = publish_until_confirmed(bus, n, unique_name, failures)
            confirmed.add(str(n))
            if stopped and not resumed_at:
                resumed_at = at
        wait_until(lambda: confirmed <= handled)
    finally:
        bus.stop(timeout=5)
        if stopped:
            rabbit_cluster.start_app(first)
    assert len(confirmed) == MESSAGES
    assert confirmed - handled == set()  # 0 lost
    assert bus.connections >= 2 and bus.url != first.url  # it moved to another node
    print(f"failover: {len(failures)} publishes failed to the caller and were sent again "
          f"({sorted(set(failures))}); {bus.connections} connections; first confirm "
          f"{resumed_at - stopped_at:.1f} s after stop_app began")


def test_a_node_stopped_mid_stream_leaves_no_message_in_the_queue(rabbit_cluster, unique_name):
    """Consumers resume on a live node: what was queued when the node went is drained."""
    first = rabbit_cluster.nodes[0]
    route = make_route(unique_name)
    publisher = create_transport(rabbit_cluster.nodes[2].url, [route])
    publisher.start()
    for n in range(200):
        publisher.publish_confirmed(message(n), unique_name)
    queue = names.work_queue_name(unique_name, "a")
    bus = create_transport(rabbit_cluster.urls, [route], reconnect_min_delay=0.2, reconnect_max_delay=1.0)
    handled: set[str] = set()

    def slow(envelope, _delivery):
        time.sleep(0.01)
        handled.add(envelope.payload["n"])

    bus.start()
    bus.consume(unique_name, "a", slow, concurrency=2)
    try:
        wait_until(lambda: len(handled) >= 20)
        rabbit_cluster.stop_app(first)
        wait_until(lambda: len(handled) == 200)
        wait_until(lambda: publisher.queue_stats()[queue][0] == 0)
    finally:
        bus.stop(timeout=5)
        publisher.stop()
        rabbit_cluster.start_app(first)
    assert handled == {str(n) for n in range(200)}
