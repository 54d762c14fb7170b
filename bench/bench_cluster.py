"""Sizing: documents a second through `esb run` nodes on a 3-node RabbitMQ cluster (quorum queues,
journal and idempotency keys in PostgreSQL), with one node and with two.

    python -m bench.bench_cluster [-n 2000] [--clients 8] [--nodes 1,2] [--postgres postgresql://...]

Starts the test cluster of `tests/cluster/` (its own nodes and ports, about 20-40 s), a fresh
PostgreSQL database (dropped at the end) and the nodes; `--clients` threads post purchase orders
over HTTP through a balancer (each request to the next node) as fast as they are answered, to a
target on loopback. Accepted/s: posts answered 202 (stored: confirmed by a quorum of RabbitMQ
nodes, keys and journal in PostgreSQL); delivered/s: documents at the target, from the first post
to the last delivery. Everything runs on this one machine: the figures are what one machine's
cores give to all of it, not what separate machines would.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.cluster.bus_nodes import POSTGRES_ADMIN_DSN, Balancer, bus_nodes, postgres_database
from tests.cluster.rabbit_cluster import RabbitCluster, start_cluster
from tests.reliability.harness import Senders


def measure(directory: Path, cluster: RabbitCluster, dsn: str, nodes: int, count: int,
            clients: int) -> tuple[float, float]:
    """(accepted/s, delivered/s) of `count` documents through `nodes` bus nodes."""
    with bus_nodes(directory, cluster, dsn, nodes=nodes) as (target, buses):
        senders = Senders(Balancer(buses), count, clients=clients).start()
        senders.wait()
        accepted = max(senders.accepted_at.values())
        deadline = time.monotonic() + 300
        while len(target.documents()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(target.documents()) == count, f"{len(target.documents())} of {count} delivered"
        delivered = max(target.delivered_at)
        return count / (accepted - senders.started), count / (delivered - senders.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="documents per measurement")
    parser.add_argument("--clients", type=int, default=8, help="posting threads")
    parser.add_argument("--nodes", default="1,2", help="bus node counts to measure, comma-separated")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_DSN,
                        help="a PostgreSQL database to create the bench's own database from")
    args = parser.parse_args()
    cluster = start_cluster(3)
    try:
        with postgres_database(args.postgres) as dsn, tempfile.TemporaryDirectory() as directory:
            print("| bus nodes | documents | clients | accepted/s | delivered/s | delivered/s per node |")
            print("| ---: | ---: | ---: | ---: | ---: | ---: |")
            for nodes in (int(n) for n in args.nodes.split(",")):
                accepted, delivered = measure(Path(directory) / f"nodes{nodes}", cluster, dsn, nodes, args.n,
                                              args.clients)
                print(f"| {nodes} | {args.n} | {args.clients} | {accepted:,.0f} | {delivered:,.0f} | "
                      f"{delivered / nodes:,.0f} |", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
