"""Several `esb run` nodes on the 3-node RabbitMQ cluster, sharing one PostgreSQL database for the
journal and the idempotency keys: the parts of `test_bus_nodes.py` and of `bench/bench_cluster.py`.

Clients post through a `Balancer` (what a load balancer in front of the nodes does: the next live
node in turn, another one when a node does not answer); the target on loopback honours
`Idempotency-Key` and notes the time of every delivery, from which the recovery after a fault is
measured. Nothing is mocked: real processes, the real cluster, the real PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster.rabbit_cluster import RabbitCluster
from tests.reliability.harness import Bus, Result, Senders, Target, settle


class Balancer:
    """The bus's nodes as one address: each `url` is the next live node's (None: none is up)."""

    def __init__(self, buses: list[Bus]):
        self.buses = buses
        self.route = buses[0].route
        self._turn = itertools.count()

    @property
    def url(self) -> str | None:
        for _ in self.buses:
            url = self.buses[next(self._turn) % len(self.buses)].url
            if url:
                return url
        return None


@contextlib.contextmanager
def bus_nodes(directory: Path, cluster: RabbitCluster, journal_dsn: str, *,
              nodes: int = 2) -> Iterator[tuple[Target, list[Bus]]]:
    """A target, and `nodes` `esb run` processes of one route (quorum queues) delivering to it,
    started at the same time; stopped and their queues deleted afterwards."""
    target = Target()
    route = "cluster" + uuid.uuid4().hex[:8]
    settings = {"journal": journal_dsn, "queue_type": "quorum"}
    buses = []
    for number in range(1, nodes + 1):
        (directory / f"node{number}").mkdir(parents=True)
        buses.append(Bus(directory / f"node{number}", target.url, ",".join(cluster.urls), route=route,
                         settings=settings))
    try:
        starting = [threading.Thread(target=bus.start) for bus in buses]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        assert all(bus.url for bus in buses), f"a node did not start; see {directory}/node*/bus.log"
        yield target, buses
    finally:
        for bus in buses:
            bus.stop()
        buses[0].delete_queues()
        target.close()


def recovery(delivered_at: list[float], fault: float, window: float = 30.0) -> float:
    """Seconds from `fault` to the first delivery after the longest pause in deliveries that
    follows it (within `window`): the next delivery when there was no pause."""
    times = sorted(t for t in delivered_at if fault <= t <= fault + window)
    if not times:
        return float("nan")
    previous, resumed, longest = fault, times[0], times[0] - fault
    for moment in times:
        if moment - previous > longest:
            longest, resumed = moment - previous, moment
        previous = moment
    return resumed - fault


@dataclass
class Outcome:
    result: Result
    kill_recovery: float  # seconds, SIGKILL of a bus node to deliveries going on
    stop_recovery: float  # seconds, `stop_app` of the RabbitMQ node the buses use to deliveries going on
    stop_app_seconds: float  # how long `rabbitmqctl stop_app` itself took
    delivered_by: list[int] = field(default_factory=list)  # per bus node, since its (last) start
    failed_answers: dict[int, int] = field(default_factory=dict)  # status (0: no answer) -> count
    untraced: int = 0  # accepted ids the shared journal does not know
    seconds: float = 0.0


def kill_a_node_and_stop_a_broker(directory: Path, cluster: RabbitCluster, journal_dsn: str, count: int, *,
                                  seconds: float = 20.0, clients: int = 6) -> Outcome:
    """`count` documents posted over `seconds` through the balancer to two bus nodes. At a quarter
    of the stream node 1 is killed (SIGKILL) and started again; at half of it the RabbitMQ node
    both buses are connected to is stopped (`stop_app`), and started again 3 s later."""
    from esb.journal import Journal

    first_node = cluster.nodes[0]
    began = time.monotonic()
    with bus_nodes(directory, cluster, journal_dsn) as (target, buses):
        senders = Senders(Balancer(buses), count, clients=clients, rate=count / seconds).start()
        senders.wait_for(count // 4)
        killed = time.monotonic()
        buses[0].kill9()
        buses[0].start()
        senders.wait_for(count // 2)
        stopped = time.monotonic()
        cluster.stop_app(first_node)
        stop_app_seconds = time.monotonic() - stopped
        try:
            time.sleep(max(0.0, stopped + 3.0 - time.monotonic()))
        finally:
            cluster.start_app(first_node)
        result = settle("two bus nodes: one killed, a RabbitMQ node stopped and started", senders, target,
                        buses[1], timeout=90)
        delivered_by = [int(bus.admin(f"/api/routes/{bus.route}")["counters"].get("delivered", 0))
                        for bus in buses]
        failed = {status: n for status, n in senders.statuses_between(began, time.monotonic()).items()
                  if status not in (200, 202)}
        accepted = set(senders.ids.values())
    journal = Journal(journal_dsn)
    try:
        untraced = sum(1 for message_id in accepted if not journal.trace(message_id=message_id))
    finally:
        journal.close()
    return Outcome(result, recovery(target.delivered_at, killed, stopped - killed),
                   recovery(target.delivered_at, stopped),
                   stop_app_seconds, delivered_by, failed, untraced, time.monotonic() - began)
