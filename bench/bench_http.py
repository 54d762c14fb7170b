"""HTTP ingest and HTTP delivery of the bus, against raw pika doing the same broker work, in one
run on the same broker. Prints msg/s and the ratio bus/raw.

    python -m bench.bench_http [--messages 3000] [--clients 16]

The load clients and the delivery target run in processes of their own.

- ingest: concurrent clients POST a 10-line purchase order to /in/<route>; each answer (202)
  comes after the broker confirmed. Raw: pika publishing the same body persistent with
  pipelined confirms (the ceiling: no HTTP, no JSON Schema, no journal).
- delivery: the bus consumes the route's queue and POSTs each order to a loopback HTTP server.
  Raw: pika consume + ack of the same number of messages (the ceiling: no HTTP call).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pika
import requests

from esb.config import load_config
from esb.credentials import Credentials
from esb.runtime import Runtime, RuntimeOptions

URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
PROJECT = Path(__file__).resolve().parent.parent
ORDER = json.loads((PROJECT / "schemas" / "purchase_order.v1.json").read_text())["examples"][0]


def _serve_target(port_queue, count) -> None:
    """The delivery target, in its own process so it does not share the bus's interpreter."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with count.get_lock():
                count.value += 1

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_port)
    server.serve_forever()


class CountingTarget:
    """A loopback HTTP server in a child process that counts the POSTs it answers (201)."""

    def __init__(self):
        self.counter = multiprocessing.Value("i", 0)
        ports = multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_serve_target, args=(ports, self.counter), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ports.get(timeout=10)}"

    @property
    def count(self) -> int:
        return self.counter.value

    def close(self) -> None:
        self.process.terminate()


def _post_orders(url: str, numbers: list[int], clients: int, results) -> None:
    """The load: `clients` threads posting orders (or GETting /healthz, for the HTTP stack's own
    ceiling), in a process of its own; puts the elapsed time."""
    local = threading.local()

    def post(number: int) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        if url.endswith("/healthz"):
            assert session.get(url, timeout=30).status_code == 200
            return
        order = {**ORDER, "order_number": f"B{number}"}
        response = session.post(url, json=order, headers={"X-API-Key": "k"}, timeout=30)
        assert response.status_code == 202, response.text

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, numbers))
    results.put(time.perf_counter() - started)


def _load(url: str, n: int, clients: int) -> float:
    """Seconds two load processes (clients/2 threads each) take for n requests to `url`."""
    results = multiprocessing.Queue()
    loaders = [multiprocessing.Process(target=_post_orders, args=(url, list(range(k, n, 2)), clients // 2,
                                                                  results)) for k in range(2)]
    for loader in loaders:
        loader.start()
    elapsed = max(results.get(timeout=600) for _ in loaders)
    for loader in loaders:
        loader.join()
    return elapsed


def raw_publish(n: int, body: bytes) -> float:
    """Raw pika, BlockingConnection with confirms, published in pipelined batches via SelectConnection."""
    queue = f"bench.raw.{uuid.uuid4().hex[:6]}"
    setup = pika.BlockingConnection(pika.URLParameters(URL))
    setup.channel().queue_declare(queue, durable=True)
    setup.close()
    state = {"acked": 0, "sent": 0}
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")

    def on_open(connection):
        connection.channel(on_open_callback=on_channel)

    def on_channel(channel):
        state["channel"] = channel
        channel.confirm_delivery(on_confirm, callback=lambda _: pump())

    def pump():
        channel = state["channel"]
        while state["sent"] < n and state["sent"] - state["acked"] < 1000:
            channel.basic_publish("", queue, body, properties)
            state["sent"] += 1

    def on_confirm(frame):
        if frame.method.multiple:
            state["acked"] = frame.method.delivery_tag
        else:
            state["acked"] += 1
        if state["acked"] >= n:
            connection.ioloop.stop()
        else:
            pump()

    started = time.perf_counter()
    connection = pika.SelectConnection(pika.URLParameters(URL), on_open_callback=on_open,
                                       on_close_callback=lambda *_: connection.ioloop.stop())
    connection.ioloop.start()
    elapsed = time.perf_counter() - started
    connection.close()
    connection.ioloop.start()
    _cleanup([queue])
    return n / elapsed


def raw_consume(n: int, body: bytes) -> float:
    queue = f"bench.rawc.{uuid.uuid4().hex[:6]}"
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    for _ in range(n):
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    channel.basic_qos(prefetch_count=100)
    started = time.perf_counter()
    for count, (method, _properties, _body) in enumerate(channel.consume(queue), 1):
        channel.basic_ack(method.delivery_tag)
        if count >= n:
            break
    elapsed = time.perf_counter() - started
    channel.cancel()
    connection.close()
    _cleanup([queue])
    return n / elapsed


def _cleanup(queues):
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    for queue in queues:
        channel.queue_delete(queue)
    connection.close()


def bus_ingest_and_delivery(n: int, clients: int) -> tuple[float, float, float]:
    target = CountingTarget()
    route = f"bench-{uuid.uuid4().hex[:6]}"
    directory = Path(tempfile.mkdtemp(prefix="esb-bench-"))
    (directory / "routes.yaml").write_text(f"""
version: 1
systems:
  erp: {{rest: {{base_url: "http://127.0.0.1:9"}}}}
  wms: {{rest: {{base_url: "{target.url}"}}}}
routes:
  - name: {route}
    from: {{rest: {{system: erp}}}}
    validate: purchase_order
    to: [{{rest: {{system: wms, path: /orders}}}}]
""")
    config = load_config(directory / "routes.yaml")
    credentials = Credentials.from_environment({"ESB_API_KEYS": f"b:sender={route}:k"})
    options = RuntimeOptions(broker_url=URL, data_dir=directory / "data", port=0, consumers=False,
                             credentials=credentials)
    ingest = Runtime(config, options).start()
    health_rate = n / _load(f"{ingest.server.url}/healthz", n, clients)
    ingest_rate = n / _load(f"{ingest.server.url}/in/{route}", n, clients)
    ingest.stop()

    delivery_options = RuntimeOptions(broker_url=URL, data_dir=directory / "data2", http=False, sources=False)
    started = time.perf_counter()
    delivery = Runtime(config, delivery_options).start()
    while target.count < n:
        time.sleep(0.01)
    delivery_rate = n / (time.perf_counter() - started)
    delivery.stop()
    _cleanup([q.name for q in delivery.transport.topology.queues])
    target.close()
    return ingest_rate, delivery_rate, health_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    body = json.dumps(ORDER).encode()
    raw_pub = raw_publish(args.messages, body)
    raw_con = raw_consume(args.messages, body)
    ingest, delivery, health = bus_ingest_and_delivery(args.messages, args.clients)
    print(f"{'stage':<44}{'msg/s':>10}{'raw pika':>12}{'ratio':>8}")
    print(f"{'HTTP ingest (' + str(args.clients) + ' clients, 202 after confirm)':<44}"
          f"{ingest:>10,.0f}{raw_pub:>12,.0f}{ingest / raw_pub:>8.1%}")
    print(f"{'  same server, GET /healthz (HTTP ceiling)':<44}{health:>10,.0f}"
          f"{'':>12}{ingest / health:>8.1%}  (ingest / healthz)")
    print(f"{'HTTP delivery (consume, POST, ack)':<44}"
          f"{delivery:>10,.0f}{raw_con:>12,.0f}{delivery / raw_con:>8.1%}")


if __name__ == "__main__":
    main()
