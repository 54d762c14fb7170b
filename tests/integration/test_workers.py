"""`esb run --workers N`: N processes serving one port and consuming the same queues, /metrics
summing them all, and a pause made through one of them holding in every one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from esb.config import load_config
from esb.transport.topology import Topology
from tests.integration.test_rest_runtime import ORDER, SENDER_KEY, _listening_url, target, write_routes

__all__ = ["target"]  # a fixture, imported to be used here

pytestmark = pytest.mark.broker

VIEWER_KEY = "viewer-key"
ADMIN_KEY = "admin-key"


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture
def workers(tmp_path, unique_name, target, broker_url):
    """`esb run --workers 2` on a free port: (its URL, the work queue); stopped, its queues deleted."""
    routes = write_routes(tmp_path, unique_name, target.url, broker_url)
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "ESB_WORKERS")}
    env["ESB_API_KEYS"] = (f"erp:sender={unique_name}:{SENDER_KEY};graf:viewer:{VIEWER_KEY};"
                           f"ops:admin:{ADMIN_KEY}")
    process = subprocess.Popen([sys.executable, "-m", "esb", "run", "-c", str(routes), "--port", "0",
                                "--workers", "2"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = _listening_url(process)
        queue = f"esb.{unique_name}.wms"
        deadline = time.monotonic() + 20
        while (_consumers(broker_url, queue) < 2 or _listeners(int(url.rsplit(":", 1)[1])) < 2) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        yield url, queue
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        channel = connection.channel()
        for spec in Topology.from_routes(load_config(routes).routes).queues:
            channel.queue_delete(spec.name)
        connection.close()


def _post_orders(url: str, route: str, count: int, prefix: str) -> None:
    for number in range(count):  # a new connection each: the kernel shares them out among the workers
        response = requests.post(f"{url}/in/{route}", json={**ORDER, "order_number": f"{prefix}-{number}"},
                                 headers={"X-API-Key": SENDER_KEY}, timeout=30)
        assert response.status_code == 202, response.text


def test_two_workers_share_the_port_and_the_deliveries_and_metrics_count_both(workers, unique_name, target,
                                                                              broker_url):
    url, queue = workers
    assert _consumers(broker_url, queue) == 2  # one per process
    assert _listeners(int(url.rsplit(":", 1)[1])) == 2  # both listen on the port

    _post_orders(url, unique_name, 30, "W")
    target.wait_for("/wms/orders", 30)
    time.sleep(0.5)

    scrape = requests.get(f"{url}/metrics", headers={"X-API-Key": VIEWER_KEY}, timeout=10).text
    assert _metric(scrape, "esb_messages_delivered_total", route=unique_name, destination="wms") == 30
    assert _metric(scrape, "esb_messages_received_total", route=unique_name) == 30
    assert len(target.calls["/wms/orders"]) == 30


def test_a_pause_asked_of_one_worker_holds_in_every_worker_until_resumed(workers, unique_name, target,
                                                                         broker_url):
    url, queue = workers
    admin = {"X-API-Key": ADMIN_KEY}
    answer = requests.post(f"{url}/api/routes/{unique_name}/pause", headers=admin, timeout=10)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 10
    while _consumers(broker_url, queue) > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _consumers(broker_url, queue) == 0  # neither process consumes

    _post_orders(url, unique_name, 20, "P")  # taken by both processes, delivered by none
    time.sleep(1.5)
    assert target.calls["/wms/orders"] == []

    answer = requests.post(f"{url}/api/routes/{unique_name}/resume", headers=admin, timeout=10)
    assert answer.status_code == 200, answer.text
    target.wait_for("/wms/orders", 20)
    deadline = time.monotonic() + 10
    while _consumers(broker_url, queue) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _consumers(broker_url, queue) == 2


def _listeners(port: int) -> int:
    """Sockets listening on `port` on this machine (IPv4), from /proc/net/tcp."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if row[3] == "0A" and int(row[1].rsplit(":", 1)[1], 16) == port)


def _consumers(broker_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if connection.is_open:
            connection.close()
