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
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from esb.journal import Journal
from tests.cluster.rabbit_cluster import RabbitCluster
from tests.reliability.harness import Bus, Result, Senders, Target, settle

POSTGRES_ADMIN_DSN = os.environ.get("ESB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
"""A database of the machine's PostgreSQL the tests create their own databases from."""


@contextlib.contextmanager
def postgres_database(admin_dsn: str) -> Iterator[str]:
    """A fresh database `esb_cluster_<random>` on the server of `admin_dsn` (a database there the
    user may create databases from): its DSN; dropped afterwards. Raises psycopg.Error."""
    import psycopg

    name = "esb_cluster_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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


def broker_nodes_of(bus: Bus, cluster: RabbitCluster) -> set[str]:
    """The RabbitMQ nodes `bus`'s process has connections to (from `ss`)."""
    listing = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
    ports = {line.split()[3].rsplit(":", 1)[1] for line in listing.splitlines()
             if f"pid={bus.process.pid}," in line}
    return {node.name for node in cluster.nodes if str(node.amqp_port) in ports}


PAUSE = 0.5  # seconds without a delivery that make a pause (the streams here deliver every 40 ms or less)


def recovery(delivered_at: list[float], fault: float, window: float = 30.0) -> float:
    """Seconds from `fault` to the delivery that ends the longest pause (over `PAUSE`) in the
    `window` after it, or to the next delivery when deliveries did not pause."""
    times = sorted(t for t in delivered_at if fault <= t <= fault + window)
    if not times:
        return float("nan")
    previous, resumed, longest = fault, times[0], PAUSE
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
    # the RabbitMQ nodes each bus node is connected to
    brokers_before: list[set[str]] = field(default_factory=list)  # per bus node, before the stop
    brokers_after: list[set[str]] = field(default_factory=list)  # per bus node, at the end
    untraced: list[float] = field(default_factory=list)  # untraced ids: accepted at (s from the kill)
    seconds: float = 0.0
    events: dict[str, float] = field(default_factory=dict)  # what happened when, seconds from the start
    pauses: list[tuple[float, float]] = field(default_factory=list)  # (from, seconds) of pauses over PAUSE

    def timeline(self) -> str:
        events = ", ".join(f"{what} at {when:.1f} s" for what, when in self.events.items())
        pauses = ", ".join(f"{length:.1f} s from {start:.1f} s" for start, length in self.pauses) or "none"
        return f"{events}; deliveries paused {pauses}"


def pauses(delivered_at: list[float], since: float, longer_than: float = PAUSE) -> list[tuple[float, float]]:
    """The pauses between two deliveries longer than `longer_than`: (start - since, length)."""
    times = sorted(delivered_at)
    return [(a - since, b - a) for a, b in zip(times, times[1:], strict=False) if b - a > longer_than]


def kill_a_node_and_stop_a_broker(directory: Path, cluster: RabbitCluster, journal_dsn: str, count: int, *,
                                  seconds: float = 20.0, clients: int = 6) -> Outcome:
    """`count` documents posted over `seconds` through the balancer to two bus nodes. At a quarter
    of the stream node 1 is killed (SIGKILL) and started again; at half of it the RabbitMQ node
    both buses are connected to is stopped (`stop_app`), and started again 3 s later."""
    first_node = cluster.nodes[0]
    began = time.monotonic()
    with bus_nodes(directory, cluster, journal_dsn) as (target, buses):
        senders = Senders(Balancer(buses), count, clients=clients, rate=count / seconds).start()
        senders.wait_for(count // 4)
        killed = time.monotonic()
        buses[0].kill9()
        buses[0].start()
        restarted = time.monotonic()
        senders.wait_for(count // 2)
        brokers_before = [broker_nodes_of(bus, cluster) for bus in buses]
        stopped = time.monotonic()
        cluster.stop_app(first_node)
        stop_app_seconds = time.monotonic() - stopped
        try:
            time.sleep(max(0.0, stopped + 3.0 - time.monotonic()))
        finally:
            starting = time.monotonic()
            cluster.start_app(first_node)
        events = {"kill": killed - began, "restarted": restarted - began, "stop_app": stopped - began,
                  "start_app": starting - began, "started": time.monotonic() - began}
        result = settle("two bus nodes: one killed, a RabbitMQ node stopped and started", senders, target,
                        buses[1], timeout=90)
        events["last accepted"] = max(senders.accepted_at.values()) - began
        brokers_after = [broker_nodes_of(bus, cluster) for bus in buses]
        delivered_by = [int(bus.admin(f"/api/routes/{bus.route}")["counters"].get("delivered", 0))
                        for bus in buses]
        failed = {status: n for status, n in senders.statuses_between(began, time.monotonic()).items()
                  if status not in (200, 202)}
        accepted = {senders.ids[number]: senders.accepted_at[number] - killed for number in senders.ids}
    journal = Journal(journal_dsn)
    try:
        untraced = sorted(at for message_id, at in accepted.items()
                          if not journal.trace(message_id=message_id))
    finally:
        journal.close()
    return Outcome(result, kill_recovery=recovery(target.delivered_at, killed, stopped - killed),
                   stop_recovery=recovery(target.delivered_at, stopped), stop_app_seconds=stop_app_seconds,
                   delivered_by=delivered_by, failed_answers=failed, brokers_before=brokers_before,
                   brokers_after=brokers_after, untraced=untraced, seconds=time.monotonic() - began,
                   events=events, pauses=pauses(target.delivered_at, began))
