"""HTTP delivery of the bus (consume, map out, POST, ack after the 2xx), timed as a full queue
drains into nginx answering 201, beside the aio-pika + aiohttp peer on the same sink and broker.

    python -m bench.bench_delivery [-n 10000] [--routes json,idoc] [--peer] [--profile]

The method of `shared/peers/http/run.sh`, without wrk: the routes are those run.sh writes (a JSON
purchase order, and the SAP IDoc route whose destination maps out with
`mappings/wms/inbound_order.out.yaml`), under unique names. The bus runs in this process with its
consumers paused; N messages per route are made by the route's inbound pipeline and published
confirmed; then the consumers resume and the clock runs until the sink has logged every POST.
Prints msg/s and the process CPU time per message (all threads; steadier than msg/s on a shared
machine). `--peer` runs `shared/peers/http/delivery_peer.py` with the same N and sink (PEER_PY
names its interpreter, default /tmp/peer-venv/bin/python). `--profile` runs py-spy on the drain
and prints the busiest functions (own time, idle frames left out).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pika

from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
PROJECT = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("ESB_HTTP_PEERS") or PROJECT.parent / "shared" / "peers" / "http")
SAMPLES = {"json": PEERS / "order.json", "idoc": PEERS / "idoc.xml"}

NGINX_CONF = """worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/body;
  client_max_body_size 10m;
  server {{
    listen 127.0.0.1:{port};
    location / {{ client_body_buffer_size 64k; return 201 '{{"id":"x"}}'; }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    """nginx answering 201 to every POST, in a directory of its own; counts its access log."""

    def __init__(self, directory: Path):
        self.dir = directory
        (directory / "body").mkdir(parents=True)
        self.port = free_port()
        (directory / "nginx.conf").write_text(NGINX_CONF.format(dir=directory, port=self.port))
        subprocess.run(["nginx", "-c", str(directory / "nginx.conf"), "-p", str(directory)], check=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self._read = self._lines = 0

    def count(self) -> int:
        """Requests logged so far (the log is read on from where the last count stopped)."""
        try:
            with open(self.dir / "access.log", "rb") as log:
                log.seek(self._read)
                chunk = log.read()
        except FileNotFoundError:
            return 0
        self._read += len(chunk)
        self._lines += chunk.count(b"\n")
        return self._lines

    def wait_for(self, n: int, timeout: float) -> float:
        """Seconds until the sink has logged `n` requests (raises after `timeout`)."""
        deadline = time.monotonic() + timeout
        while (seen := self.count()) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"the sink logged {seen} of {n} requests in {timeout:g} s")
            time.sleep(0.05)
        return time.perf_counter()

    def stop(self) -> None:
        pid = (self.dir / "nginx.pid").read_text().strip()
        os.kill(int(pid), 15)


def write_routes(directory: Path, prefix: str, sink_url: str, routes: list[str]) -> Path:
    """The routes run.sh writes, under names starting with `prefix`."""
    blocks = {
        "json": f"""  - name: {prefix}-json
    from: {{rest: {{system: shop, format: json}}}}
    validate: purchase_order
    to: [{{rest: {{system: sink, path: /orders}}}}]
""",
        "idoc": f"""  - name: {prefix}-idoc
    from: {{rest: {{system: erp, format: xml}}}}
    map: {PROJECT}/mappings/erp/purchase_order.in.yaml
    validate: purchase_order
    to: [{{rest: {{system: sink, path: /inbound-orders,
                 map: {PROJECT}/mappings/wms/inbound_order.out.yaml}}}}]
""",
    }
    path = directory / "routes.yaml"
    path.write_text(f"""version: 1
settings: {{data_dir: {directory}/data}}
systems:
  shop: {{rest: {{base_url: "http://127.0.0.1:9"}}}}
  erp: {{rest: {{base_url: "http://127.0.0.1:9"}}}}
  sink: {{rest: {{base_url: "{sink_url}"}}}}
routes:
""" + "".join(blocks[name] for name in routes))
    return path


def fill(runtime: Runtime, route: str, sample: bytes, n: int, stamp: str) -> None:
    """N messages made by the route's inbound pipeline (unique document numbers), published confirmed."""
    pipeline = runtime.pipelines[route]
    futures = []
    for i in range(n):
        body = sample.replace(b"__N__", f"{stamp}{i:07d}".encode())
        for message in pipeline.prepare(body):
            futures.append(runtime.transport.publish(message.envelope, route))
    for future in futures:
        future.result(60)


def queue_depths(runtime: Runtime, url: str) -> dict[str, int]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    depths = {q.name: channel.queue_declare(q.name, passive=True).method.message_count
              for q in runtime.transport.topology.queues}
    connection.close()
    return depths


def delete_queues(runtime: Runtime, url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in runtime.transport.topology.queues:
        channel.queue_delete(queue.name)
    connection.close()


def drain(args: argparse.Namespace, work: Path, sink: Sink) -> dict:
    prefix = "bd-" + uuid.uuid4().hex[:6]
    work.mkdir(parents=True)
    config = load_config(write_routes(work, prefix, sink.url, args.routes))
    transport = {name: value for name in ("concurrency", "prefetch") if (value := getattr(args, name))}
    options = RuntimeOptions(broker_url=args.url, data_dir=work / "data", http=False, sources=False,
                             transport_options=transport)
    runtime = Runtime(config, options).start()
    try:
        names = [route.name for route in config.routes]
        for name in names:
            runtime.transport.pause(name)
        stamp = str(int(time.time()))
        for kind, name in zip(args.routes, names, strict=True):
            fill(runtime, name, SAMPLES[kind].read_bytes(), args.messages, stamp)
        total = args.messages * len(names)
        before = sink.count()
        profiler = None
        if args.profile:
            profiler = subprocess.Popen(["py-spy", "record", "-r", "1000", "-f", "raw", "--gil", "-o",
                                         str(work / "profile.txt"), "-p", str(os.getpid())],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        usage, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for name in names:
            runtime.transport.resume(name)
        finished = sink.wait_for(before + total, timeout=max(60.0, total / 50))
        after = resource.getrusage(resource.RUSAGE_SELF)
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(30)
    finally:
        runtime.stop()
    depths = queue_depths(runtime, args.url)
    delete_queues(runtime, args.url)
    left = sum(depths.values())
    if left:
        raise SystemExit(f"messages left in the queues after the drain (not acked?): {depths}")
    seconds = finished - started
    user, system = after.ru_utime - usage.ru_utime, after.ru_stime - usage.ru_stime
    switches = after.ru_nvcsw + after.ru_nivcsw - usage.ru_nvcsw - usage.ru_nivcsw
    return {"n": total, "seconds": seconds, "rate": total / seconds, "cpu_us": (user + system) / total * 1e6,
            "user_us": user / total * 1e6, "switches": switches / total,
            "profile": work / "profile.txt" if args.profile else None}


def peer(args: argparse.Namespace, sink: Sink) -> str:
    python = os.environ.get("PEER_PY", "/tmp/peer-venv/bin/python")
    n = args.messages * len(args.routes)
    result = subprocess.run([python, str(PEERS / "delivery_peer.py"), str(n), f"{sink.url}/orders", args.url],
                            capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if "msg/s" in line]
    return lines[-1] if lines else f"peer failed: {result.stderr[-500:]}"


def print_profile(path: Path, top: int = 25) -> None:
    """Own and inclusive time per function from py-spy's raw (collapsed) stacks of the thread that
    held the GIL (`--gil`: the CPU the interpreter spent, waits left out)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"profile: {total} samples holding the GIL; {title} time, top {top}:")
        for name, count in counter.most_common(top):
            print(f"  {100 * count / total:5.1f} %  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--messages", type=int, default=10_000, help="messages per route")
    parser.add_argument("--routes", default="json,idoc", help="json, idoc or both (comma-separated)")
    parser.add_argument("--url", default=URL)
    parser.add_argument("--concurrency", type=int,
                        help="handler threads per destination (default: the bus's)")
    parser.add_argument("--prefetch", type=int, help="messages in hand per destination (default: the bus's)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--peer", action="store_true", help="also run the aio-pika + aiohttp peer")
    parser.add_argument("--profile", action="store_true", help="py-spy the bus's drain")
    args = parser.parse_args()
    args.routes = args.routes.split(",")
    work = Path(tempfile.mkdtemp(prefix="esb-bench-delivery-"))
    sink = Sink(work / "sink")
    try:
        for round_ in range(args.rounds):
            if args.peer:
                print(peer(args, sink), flush=True)
            result = drain(args, work / f"bus{round_}", sink)
            print(f"bus  delivery ({'+'.join(args.routes)}; consume, map out, POST, ack): {result['n']} in "
                  f"{result['seconds']:.1f} s = {result['rate']:,.0f} msg/s, "
                  f"CPU {result['cpu_us']:.0f} us/msg ({result['user_us']:.0f} user), "
                  f"{result['switches']:.1f} context switches/msg", flush=True)
            if result["profile"]:
                print_profile(result["profile"])
    finally:
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
