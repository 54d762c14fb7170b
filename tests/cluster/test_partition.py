"""A network partition cuts the node the bus is connected to off from the other two. With
`cluster_partition_handling = pause_minority` (the test cluster's) that node pauses and closes its
clients' connections; the bus moves to a node of the majority and keeps publishing (confirmed)
and consuming there. When the partition heals the paused node rejoins by itself: 0 lost. Once
with the queues' leaders spread over the nodes, once with every leader on the node cut off, so
the majority must elect new ones: a channel opened before that was nacked every publish until
the bus moved to a new one (RabbitMQ 3.10).

The partition is made in Erlang's distribution, not in the network (all nodes share loopback
here): each side gets a different cookie for the other and the links are dropped, so neither can
connect again until `heal`.
"""

from __future__ import annotations

import threading
import time

import pytest

from esb.transport import create_transport
from tests.cluster.bus_nodes import recovery
from tests.cluster.test_failover import make_route, publish_until_confirmed, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.cluster]

MESSAGES = 300
PACE = 0.02  # seconds between two publishes: the partition (rabbitmqctl calls) takes one or two


@pytest.mark.parametrize("leaders", ["balanced", "on the cut-off node"])
def test_the_bus_keeps_delivering_through_the_majority_while_its_node_is_partitioned_away(
        rabbit_cluster, unique_name, leaders):
    *majority, minority = rabbit_cluster.nodes
    urls = [minority.url] + [node.url for node in majority]
    policy = f"esb-test-{unique_name}"
    if leaders != "balanced":  # the queues' leaders are cut off too: the majority elects new ones
        rabbit_cluster.ctl(minority, "set_policy", "--apply-to", "queues", policy, rf"^esb\.{unique_name}\.",
                           '{"queue-leader-locator": "client-local"}')
    bus = create_transport(urls, [make_route(unique_name)], reconnect_min_delay=0.2, reconnect_max_delay=1.0)
    handled: set[str] = set()
    lock = threading.Lock()

    def handler(envelope, _delivery):
        with lock:
            handled.add(envelope.payload["n"])

    bus.start()
    assert bus.url == minority.url
    if leaders != "balanced":
        rabbit_cluster.ctl(minority, "clear_policy", policy)
        assert leader_node(rabbit_cluster, minority, f"esb.{unique_name}.a") == minority.name
    bus.consume(unique_name, "a", handler)
    confirmed: dict[str, float] = {}
    failures: list[str] = []
    paused: list[bool] = []
    cutting = threading.Thread(target=lambda: (rabbit_cluster.partition(minority),
                                               paused.append(not rabbit_cluster.is_running(minority))))
    partitioned = healed = 0.0
    try:
        for n in range(MESSAGES):
            if n == MESSAGES // 3:  # the partition comes while the bus publishes
                partitioned = time.monotonic()
                cutting.start()
            if n == 2 * MESSAGES // 3:
                cutting.join()
                rabbit_cluster.heal(minority)
                healed = time.monotonic()
            confirmed[str(n)] = publish_until_confirmed(bus, n, unique_name, failures)
            time.sleep(PACE)
        wait_until(lambda: set(confirmed) <= handled)
    finally:
        bus.stop(timeout=5)
        if cutting.is_alive() or (partitioned and not healed):
            cutting.join()
            rabbit_cluster.heal(minority)
        wait_until(lambda: len(rabbit_cluster.running_nodes()) == 3, timeout=90)
    during = [at for at in confirmed.values() if partitioned < at < healed]
    assert paused == [True]  # pause_minority: the cut-off node stopped RabbitMQ
    assert bus.url != minority.url  # the bus moved to the majority
    assert len(during) >= MESSAGES // 3 - 1  # and published there (confirmed) while the partition lasted
    assert set(confirmed) - handled == set()  # 0 lost
    print(f"partition: confirms went on {recovery(list(confirmed.values()), partitioned):.1f} s after it "
          f"began (the end of the longest pause); {len(failures)} publishes failed to the caller and were "
          f"sent again ({sorted(set(failures))}); {bus.connections} connections")


def leader_node(cluster, node, queue: str) -> str:
    listing = cluster.ctl(node, "list_queues", "-q", "--no-table-headers", "name", "leader")
    return next(line.split()[1] for line in listing.splitlines() if line.split()[0] == queue)
