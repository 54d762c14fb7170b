"""The parts of the reliability scenarios (`tests/reliability/`, short) and of `bench/chaos` (long):
a real `esb run` process, clients that post purchase orders and re-post until answered, and a
target that honours `Idempotency-Key` and can be down, slow or refuse some documents. Counts are
taken at the end: sent = delivered + dead-lettered, each document exactly once at the target.

Nothing here is mocked: real processes, real HTTP on loopback, the real broker or the embedded file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parents[2]
ORDER = json.loads((PROJECT / "schemas" / "purchase_order.v1.json").read_text())["examples"][0]
SENDER_KEY, ADMIN_KEY = "chaos-sender-key", "chaos-admin-key"


# --- the target ---------------------------------------------------------------------------------
class Target:
    """An HTTP target on loopback that honours `Idempotency-Key`: a key it accepted before is
    answered 200 again and not counted twice. `mode` is `ok`, `down` (503) or `slow` (answers after
    `slow_seconds`); documents in `refuse` (order numbers) are answered 400 until removed."""

    def __init__(self, slow_seconds: float = 0.5):
        self.mode = "ok"
        self.slow_seconds = slow_seconds
        self.refuse: set[str] = set()
        self.lock = threading.Lock()
        self.accepted: dict[str, str] = {}  # idempotency key (message id) -> order number
        self.delivered_at: list[float] = []  # monotonic time of every call answered 2xx
        self.repeats = 0  # calls with a key accepted before (a same-id duplicate, absorbed here)
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server wants
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status = target._answer(self.headers.get("Idempotency-Key"), str(body.get("order_number")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _answer(self, key: str | None, number: str) -> int:
        if self.mode == "down":
            return 503
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        with self.lock:
            if number in self.refuse:
                return 400
            self.delivered_at.append(time.monotonic())
            if key in self.accepted:
                self.repeats += 1
                return 200
            self.accepted[key] = number
            return 201

    def documents(self) -> dict[str, set[str]]:
        """{order number: the message ids it arrived under}."""
        with self.lock:
            ids: dict[str, set[str]] = defaultdict(set)
            for key, number in self.accepted.items():
                ids[number].add(key)
            return ids

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the bus ------------------------------------------------------------------------------------
ROUTES = """
version: 1
settings: {{broker_url: "{broker_url}", data_dir: "{data_dir}"{settings}}}
systems:
  erp: {{rest: {{base_url: "http://127.0.0.1:9/erp"}}}}
  target: {{rest: {{base_url: "{target_url}", timeout: 2s}}}}
routes:
  - name: {route}
    from: {{rest: {{system: erp, format: json}}}}
    validate: purchase_order
    to:
      - rest: {{system: target, path: /orders}}
    retry: {{attempts: {attempts}, backoff: [200ms, 500ms, 1s]}}
"""


class Bus:
    """A real `esb run` process on `broker_url` (None: the embedded transport in `data_dir`).
    Several nodes of one bus share `route` (a name) and `settings` (more of them, e.g. a journal
    DSN); by default each bus has a route of its own."""

    def __init__(self, directory: Path, target_url: str, broker_url: str | None, *, attempts: int = 40,
                 data_dir: Path | None = None, route: str | None = None, settings: dict | None = None):
        self.route = route or "chaos" + uuid.uuid4().hex[:8]
        self.directory = directory
        self.data_dir = data_dir or directory / "data"
        self.broker_url = broker_url
        self.routes = directory / "routes.yaml"
        self.routes.write_text(ROUTES.format(broker_url=broker_url or "", data_dir=self.data_dir,
                                             target_url=target_url, route=self.route, attempts=attempts,
                                             settings="".join(f", {k}: {json.dumps(v)}"
                                                              for k, v in (settings or {}).items())))
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESB_")},
                    "ESB_API_KEYS": f"erp:sender={self.route}:{SENDER_KEY};ops:admin:{ADMIN_KEY}",
                    "ESB_LOG_LEVEL": "WARNING"}
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self.log = (directory / "bus.log").open("a")

    def start(self, timeout: float = 60.0) -> Bus:
        command = [sys.executable, "-m", "esb", "run", "-c", str(self.routes), "--port", "0"]
        self.process = subprocess.Popen(command, env=self.env, stderr=subprocess.PIPE, text=True,
                                        cwd=self.directory)
        deadline = time.monotonic() + timeout
        for line in self.process.stderr:
            self.log.write(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url = found.group(1)
                threading.Thread(target=self._copy_log, args=(self.process,), daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"esb run did not start; see {self.directory / 'bus.log'}")

    def _copy_log(self, process: subprocess.Popen) -> None:
        try:
            for line in process.stderr:
                self.log.write(line)
            self.log.flush()
        except ValueError:  # the log was closed with the bus (its last lines are not needed)
            pass

    def kill9(self) -> None:
        self.url = None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    def admin(self, path: str, method: str = "GET", **kwargs) -> dict:
        answer = requests.request(method, f"{self.url}{path}", headers={"X-API-Key": ADMIN_KEY}, timeout=30,
                                  **kwargs)
        answer.raise_for_status()
        return answer.json()

    def dead_letters(self) -> int:
        return self.admin(f"/api/routes/{self.route}/dead-letters?limit=1")["total"] or 0

    def replay_with_the_cli(self) -> str:
        """`esb dlq replay <route> --all`, a real process of its own."""
        env = {**self.env, **({"ESB_BROKER_URL": self.broker_url} if self.broker_url else {})}
        run = subprocess.run([sys.executable, "-m", "esb", "dlq", "replay", self.route, "--all", "-c",
                              str(self.routes)], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def connection_ports(self) -> set[int]:
        """The local ports of this process's connections to the broker (from `ss`)."""
        listing = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True,
                                 text=True).stdout
        ports = set()
        for line in listing.splitlines():
            if f"pid={self.process.pid}," in line and ":5672" in line.split()[3]:
                ports.add(int(line.split()[2].rsplit(":", 1)[1]))
        return ports

    def close_broker_connections(self) -> int:
        """Close this bus's connections from the broker's side (`rabbitmqctl close_connection`), the
        way a broker restart or a network cut drops them; other users of the broker keep theirs."""
        ports = self.connection_ports()
        listing = subprocess.run(["rabbitmqctl", "-q", "list_connections", "name"], capture_output=True,
                                 text=True, timeout=60).stdout
        closed = 0
        for name in listing.splitlines():
            found = re.match(r"127\.0\.0\.1:(\d+) -> ", name.strip())
            if found and int(found.group(1)) in ports:
                subprocess.run(["rabbitmqctl", "-q", "close_connection", name.strip(), "chaos test"],
                               capture_output=True, timeout=60)
                closed += 1
        return closed

    def delete_queues(self) -> None:
        if not self.broker_url:
            return
        import pika

        from esb.config import load_config
        from esb.transport.topology import Topology

        connection = pika.BlockingConnection(pika.URLParameters(self.broker_url.split(",")[0]))
        channel = connection.channel()
        for queue in Topology.from_routes(load_config(self.routes).routes).queues:
            channel.queue_delete(queue.name)
        connection.close()


# --- the senders --------------------------------------------------------------------------------
def order(number: int) -> dict:
    return {**ORDER, "order_number": f"CH-{number:06d}"}


class Senders:
    """`clients` threads post documents 0..count-1, each with its own `Idempotency-Key`, and re-post
    one until it is answered 200 or 202 (connection refused while the bus restarts, 503 while it
    cannot store). Records every answer with the time its request started."""

    def __init__(self, bus: Bus, count: int, *, clients: int = 8, rate: float | None = None):
        self.bus = bus
        self.count = count
        self.rate = rate  # documents a second at most, all clients together (None: as fast as they go)
        self.clients = clients
        self.next = 0
        self.lock = threading.Lock()
        self.ids: dict[int, str] = {}  # document -> the id its accepted answer gave
        self.accepted_at: dict[int, float] = {}  # document -> when it was accepted (monotonic)
        self.answers: list[tuple[float, float, int]] = []  # (request started, answered, status)
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self) -> Senders:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.count:
                return None
            self.next += 1
            number = self.next - 1
        if self.rate:
            time.sleep(max(0.0, self.started + number / self.rate - time.monotonic()))
        return number

    def _run(self) -> None:
        session = requests.Session()
        while (number := self._take()) is not None:
            headers = {"X-API-Key": SENDER_KEY, "Idempotency-Key": f"chaos-doc-{number}"}
            while True:
                url, started = self.bus.url, time.monotonic()
                status = 0
                if url:
                    try:
                        answer = session.post(f"{url}/in/{self.bus.route}", json=order(number),
                                              headers=headers, timeout=30)
                        status = answer.status_code
                    except requests.RequestException:
                        session = requests.Session()
                with self.lock:
                    self.answers.append((started, time.monotonic(), status))
                if status in (200, 202):
                    self.ids[number] = answer.json()["id"]
                    self.accepted_at[number] = time.monotonic()
                    break
                assert status in (0, 503), f"document {number}: answered {status}: {answer.text[:300]}"
                time.sleep(0.05)

    def done(self) -> int:
        return len(self.ids)

    def wait(self, timeout: float = 600.0) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.done() < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def recovery_after(self, fault: float) -> float:
        """Seconds from `fault` to the first accepted answer of a request started after it."""
        answered = [end for started, end, status in self.answers if started >= fault and status in (200, 202)]
        return (min(answered) - fault) if answered else float("nan")

    def statuses_between(self, start: float, end: float) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for started, _end, status in self.answers:
            if start <= started <= end:
                counts[status] += 1
        return dict(counts)


# --- the tally ------------------------------------------------------------------------------------
@dataclass
class Result:
    scenario: str
    sent: int
    delivered: int
    dead_lettered: int
    lost: int
    duplicated_same_id: int
    duplicated_new_id: int
    recovery_seconds: list[float] = field(default_factory=list)

    def row(self) -> str:
        recovery = ", ".join(f"{s:.1f} s" for s in self.recovery_seconds) or "-"
        return (f"| {self.scenario} | {self.sent} | {self.delivered} | {self.dead_lettered} | {self.lost} | "
                f"{self.duplicated_same_id} / {self.duplicated_new_id} | {recovery} |")


TABLE_HEADER = ("| scenario | sent | delivered | dead-lettered | lost | duplicated (same id / new id) | "
                "recovery |\n| --- | ---: | ---: | ---: | ---: | ---: | --- |")


def settle(scenario: str, senders: Senders, target: Target, bus: Bus, *, timeout: float = 120.0,
           recovery: list[float] | None = None) -> Result:
    """Wait until every sent document is delivered or dead-lettered (or `timeout`), then count."""
    senders.wait()
    sent = senders.done()
    deadline = time.monotonic() + timeout
    while True:
        delivered, dead = len(target.documents()), bus.dead_letters()
        if delivered + dead >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # late repeats, if any, arrive now
    documents = target.documents()
    dead = bus.dead_letters()
    return Result(scenario, sent, len(documents), dead, max(0, sent - len(documents) - dead), target.repeats,
                  sum(len(ids) - 1 for ids in documents.values()), recovery or [])
