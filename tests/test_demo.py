"""`esb demo`: the simulated ERP and WMS through the shipped routes, on the embedded transport and
on RabbitMQ; and a demo whose target refuses everything reports the flow as not delivered."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pika
import pytest

from esb.demo import FLOWS, SHIPPED_ROUTES, Demo, demo_config
from esb.transport.topology import Topology
from tests.conftest import PROJECT


def run_demo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ESB_BROKER_URL", "ESB_HTTP_PORT")}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, "-m", "esb", "demo", "--once", *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def assert_every_flow_delivered(out: str) -> None:
    for flow in FLOWS:
        assert f"{flow}: DELIVERED" in out
    # the IDoc became a WMS inbound order, after one 503 from the WMS and a retry
    assert "sent 1, delivered 1, retried 1" in out
    assert re.search(r"answered 503, then 201 \(id WMS-\d+\)", out)
    assert '"externalId":"4500012345"' in out
    # the GBK file: two receipts, its Chinese text intact
    assert "sent 2, delivered 2, retried 0" in out
    assert '"receipt_number":"GR-2026-000123"' in out and "外箱破损" in out
    # the shipment confirmation became a goods issue for the ERP's delivery
    assert '"DeliveryDocument":"0080001234"' in out
    for flow in ("erp-po-to-wms", "wms-shipments-to-erp"):  # the bus answered its senders 202
        assert re.search(rf"POST /in/(demo-[0-9a-f]{{6}}-)?{flow} -> 202 ", out)
    assert "3 of 3 flows delivered in" in out


def test_demo_once_on_the_embedded_transport():
    result = run_demo(timeout=45)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the shipped routes on embedded transport" in result.stdout
    assert_every_flow_delivered(result.stdout)


@pytest.mark.broker
def test_demo_once_on_rabbitmq(broker_url):
    result = run_demo("--broker", broker_url, timeout=60)
    match = re.search(r"routes prefixed (demo-[0-9a-f]{6}-)", result.stdout)
    prefix = match.group(1) if match else None
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert prefix, result.stdout
        assert "guest:guest" not in result.stdout  # the broker's password is not printed
        assert_every_flow_delivered(result.stdout)
        assert f"/in/{prefix}erp-po-to-wms -> 202" in result.stdout
        # the demo deleted its queues when it ended
        queues = _queues(prefix)
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        try:
            for name in queues:
                channel = connection.channel()
                with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                    channel.queue_declare(name, passive=True)
        finally:
            connection.close()
    finally:
        if prefix:  # whatever happened, leave no queue behind
            connection = pika.BlockingConnection(pika.URLParameters(broker_url))
            channel = connection.channel()
            for name in _queues(prefix):
                channel.queue_delete(name)
            connection.close()


def _queues(prefix: str) -> list[str]:
    environ = {"WMS_EXPORT_DIR": "/nonexistent"}
    return [q.name for q in Topology.from_config(demo_config(SHIPPED_ROUTES, environ, prefix)).queues]


def test_a_flow_that_does_not_deliver_is_reported(monkeypatch):
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    demo = Demo(timeout=20).start()
    try:
        demo._wms_api_key = "not-the-key-the-bus-sends"  # the WMS now answers 401: permanent, dead-lettered
        demo.play()
        results = {r.name: r for r in demo.wait()}
        summary = demo.summary(list(results.values()))
    finally:
        demo.stop()
    assert not results["erp-po-to-wms"].ok
    assert results["wms-receipts-to-erp"].ok and results["wms-shipments-to-erp"].ok
    assert "erp-po-to-wms: NOT DELIVERED" in summary
    assert "not delivered" in summary and "2 of 3 flows delivered" in summary
    # a 401 is permanent: dead-lettered at once, not retried, and the demo does not wait for it
    assert "sent 1, delivered 0, retried 0 (1 dead-lettered: esb dlq list erp-po-to-wms)" in summary
