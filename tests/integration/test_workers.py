"""`esb run --workers N`: competing consumers in N processes, and /metrics summing them all."""

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


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_two_workers_share_the_deliveries_and_metrics_count_both(tmp_path, unique_name, target, broker_url):
    routes = write_routes(tmp_path, unique_name, target.url, broker_url)
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["ESB_API_KEYS"] = f"erp:sender={unique_name}:{SENDER_KEY};graf:viewer:{VIEWER_KEY}"
    process = subprocess.Popen([sys.executable, "-m", "esb", "run", "-c", str(routes), "--port", "0",
                                "--workers", "2"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = _listening_url(process)
        queue = f"esb.{unique_name}.wms"
        deadline = time.monotonic() + 20
        while _consumers(broker_url, queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _consumers(broker_url, queue) == 2  # one per process

        for number in range(30):
            response = requests.post(f"{url}/in/{unique_name}", json={**ORDER, "order_number": f"W-{number}"},
                                     headers={"X-API-Key": SENDER_KEY}, timeout=30)
            assert response.status_code == 202
        target.wait_for("/wms/orders", 30)
        time.sleep(0.5)

        scrape = requests.get(f"{url}/metrics", headers={"X-API-Key": VIEWER_KEY}, timeout=10).text
        assert _metric(scrape, "esb_messages_delivered_total", route=unique_name, destination="wms") == 30
        assert _metric(scrape, "esb_messages_received_total", route=unique_name) == 30
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        channel = connection.channel()
        for spec in Topology.from_routes(load_config(routes).routes).queues:
            channel.queue_delete(spec.name)
        connection.close()


def _consumers(broker_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if connection.is_open:
            connection.close()
