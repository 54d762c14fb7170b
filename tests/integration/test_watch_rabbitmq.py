"""The rule "a dead-letter queue growing" on the real RabbitMQ: a target refuses every order for
good, the orders pile up in the destination's dead-letter queue (depth read from the broker), and
the alerts route sends one alert naming the queue, its depth, the dead-lettered messages and the
link to browse them; more dead letters within the de-duplication time do not alert again."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pika
import pytest
import requests

from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

pytestmark = pytest.mark.broker

ORDER = json.loads((PROJECT / "schemas" / "shipment_order.v1.json").read_text())["examples"][0]


class Refusing(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the name http.server wants
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"error": "unknown customer"}'
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_target():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def routes(broker_url: str, name: str, target: str) -> str:
    return f"""
version: 1
settings: {{broker_url: "{broker_url}", data_dir: data}}
systems:
  wms: {{rest: {{base_url: "{target}", timeout: 2s}}}}
routes:
  - name: {name}-orders
    from: {{rest: {{format: json, auth: none}}}}
    validate: shipment_order
    to:
      - rest: {{system: wms, path: /outbound-orders}}
    retry: {{attempts: 1, backoff: [1s]}}
  - name: {name}-alerts
    from:
      alerts:
        poll: 200ms
        rules:
          - {{name: dead-letters-growing, dead_letters_growing: 1h, routes: [{name}-orders], severity: error}}
    validate: alert
    to:
      - file: {{dir: alerts, format: json, name_template: "alert_{{id}}.json"}}
"""


def test_a_growing_dead_letter_queue_on_rabbitmq_alerts_once_with_its_messages(tmp_path: Path, broker_url,
                                                                               unique_name, refusing_target):
    (tmp_path / "routes.yaml").write_text(routes(broker_url, unique_name, refusing_target))
    config = load_config(tmp_path / "routes.yaml", environ={})
    runtime = Runtime(config, RuntimeOptions(broker_url=broker_url, data_dir=tmp_path / "data", port=0))
    runtime.start()
    try:
        ids = []
        for number in ("SO-1", "SO-2"):
            response = requests.post(f"{runtime.server.url}/in/{unique_name}-orders",
                                     json={**ORDER, "order_number": number}, timeout=30)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        alert = _one_alert(tmp_path / "alerts")
        depth = _depth_now(runtime, unique_name)
        time.sleep(1.0)  # more checks of a queue still as deep: the outbox sends nothing new
        assert len(list((tmp_path / "alerts").glob("alert_*.json"))) == 1
    finally:
        runtime.stop()
        _delete_queues(broker_url, runtime)

    queue = f"{unique_name}-orders/wms"
    assert alert["rule"] == "dead-letters-growing" and alert["severity"] == "error"
    assert alert["subject"].startswith(f"bus: dead letters growing in {queue}: ")
    assert alert["observed_value"] >= 1 and alert["threshold"] == 0
    assert set(alert["message_ids"]) <= set(ids) and alert["message_ids"]
    assert alert["links"][0] == {"title": f"dead letters of {queue}",
                                 "href": f"/api/routes/{unique_name}-orders/dead-letters?destination=wms"}
    assert depth == 2  # the broker's own count of the dead-letter queue


def _one_alert(directory: Path, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(directory.glob("alert_*.json"))
        if files:
            return json.loads(files[0].read_text())
        time.sleep(0.1)
    raise AssertionError(f"no alert in {directory}")


def _depth_now(runtime: Runtime, name: str, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depth = runtime._dead_letter_depths().get((f"{name}-orders", "wms"), 0)
        if depth >= 2:
            return depth
        time.sleep(0.2)
    return depth


def _delete_queues(broker_url: str, runtime: Runtime) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in (q.name for q in runtime.transport.topology.queues):
        channel.queue_delete(queue)
    connection.close()
