"""Connection exhaustion at the issue's counts: while an attacker holds 1,000 idle connections and
300 slowloris ones (a header line every 5 s, never the end of the head), valid posts must still be
answered 202 with a p99 under 1 s. The attacker re-opens every connection the server closes
(after its header timeout), so the counts are held the whole time.

    python -m bench.hostile_connections [--idle 1000] [--slowloris 300] [--posts 300] [--clients 8]

The bus (`tests/hostile/routes.yaml`, embedded transport, default `ESB_HTTP_*` limits) runs in a
process of its own; the attacker and the valid clients run here. Not a pass/fail test: it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.hostile.bus import BusProcess
from tests.hostile.conftest import KEYS, shipment

SLOWLORIS_HEAD = b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: bus\r\n"


class Attacker:
    """Holds `idle` connections that send nothing and `slow` ones that drip header lines."""

    def __init__(self, host: str, port: int, *, idle: int, slow: int, drip_seconds: float = 5.0):
        self.address = (host, port)
        self.idle = [self._open(b"") for _ in range(idle)]
        self.slow = [self._open(SLOWLORIS_HEAD) for _ in range(slow)]
        self.drip_seconds = drip_seconds
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _open(self, first: bytes) -> socket.socket:
        connection = socket.create_connection(self.address, timeout=30)
        connection.setblocking(False)
        if first:
            connection.send(first)
        return connection

    def _closed(self, connection: socket.socket) -> bool:
        try:
            return connection.recv(65536) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _hold(self) -> None:
        while not self._stop.wait(self.drip_seconds):
            for group, first in ((self.idle, b""), (self.slow, SLOWLORIS_HEAD)):
                for index, connection in enumerate(group):
                    if self._closed(connection):
                        connection.close()
                        group[index] = self._open(first)
                        self.reopened += 1
                    elif first:
                        with contextlib.suppress(OSError):
                            connection.send(b"X-Slow: 1\r\n")

    def start(self) -> Attacker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.idle + self.slow:
            connection.close()


def valid_posts(url: str, count: int, clients: int, pace: float = 0.0) -> tuple[list[int], list[float]]:
    """`count` valid shipment posts from `clients` threads, each waiting `pace` seconds after a post:
    their statuses and latencies (s)."""
    local = threading.local()

    def one(_: int) -> tuple[int, float]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        started = time.perf_counter()
        try:
            status = session.post(f"{url}/in/wms-shipments-to-erp", data=shipment(), timeout=30, headers={
                "Content-Type": "application/json", "X-API-Key": KEYS["wms-shipments-to-erp"]}).status_code
        except requests.RequestException:
            status = 0
        seconds = time.perf_counter() - started
        time.sleep(pace)
        return status, seconds

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(count)))
    return [status for status, _ in results], [seconds for _, seconds in results]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(url: str, host: str, port: int, *, idle: int, slowloris: int, posts: int, clients: int,
        hold: float = 11.0, pace: float = 0.2) -> dict:
    """Hold the attack, send the valid posts, report; the row of `bench.hostile`'s table too."""
    attacker = Attacker(host, port, idle=idle, slow=slowloris).start()
    try:
        time.sleep(hold)  # the posts run while the server closes the attack's connections (header
        # timeout) and the attacker opens them again
        started = time.perf_counter()
        statuses, latencies = valid_posts(url, posts, clients, pace)  # spread over the re-opening
        elapsed = time.perf_counter() - started
    finally:
        attacker.stop()
    healthy = requests.get(f"{url}/healthz", timeout=10).status_code == 200
    return {"tried": posts, "2xx": sum(200 <= s < 300 for s in statuses),
            "4xx": sum(400 <= s < 500 for s in statuses), "5xx": sum(s >= 500 for s in statuses),
            "no answer": statuses.count(0), "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99), "max": max(latencies), "posts/s": posts / elapsed,
            "reopened": attacker.reopened, "healthy": healthy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slowloris", type=int, default=300)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with BusProcess() as bus:
        result = run(bus.url, bus.host, bus.port, idle=args.idle, slowloris=args.slowloris, posts=args.posts,
                     clients=args.clients)
    print(f"{args.idle} idle + {args.slowloris} slowloris connections held "
          f"({result['reopened']} re-opened after the server closed them)")
    print(f"valid posts: {result['tried']} tried, {result['2xx']} 2xx, {result['4xx']} 4xx, "
          f"{result['5xx']} 5xx, "
          f"{result['no answer']} unanswered; latency p50 {result['p50'] * 1000:.0f} ms, "
          f"p99 {result['p99'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms; "
          f"{result['posts/s']:.0f} posts/s; healthy after: {'yes' if result['healthy'] else 'NO'}")


if __name__ == "__main__":
    main()
