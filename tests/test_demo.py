"""`esb demo --once`: every flow of the shipped routes through the simulated ERP and WMS, as a real
process, on the embedded transport and on RabbitMQ; and a demo whose target refuses everything
reports those flows as not delivered and exits 1. What each flow delivers is checked in
tests/integration/test_reference_flows.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pika
import pytest

from esb.demo import FLOWS, SHIPPED_ROUTES, Demo, demo_config, summary
from esb.transport.topology import Topology
from tests.conftest import PROJECT

FLOWS_BY_NAME = {flow.route: flow for flow in FLOWS}


def run_demo(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ESB_BROKER_URL", "ESB_HTTP_PORT")}
    env["PYTHONIOENCODING"] = "utf-8"
    env["ESB_LOG_LEVEL"] = "WARNING"  # a flow that does not deliver: its warnings say why (in stderr)
    return subprocess.run([sys.executable, "-m", "esb", "demo", "--once", *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def assert_every_flow_delivered(out: str) -> None:
    for flow in FLOWS:
        assert f"{flow.route}: DELIVERED" in out
        assert (f"delivered {flow.delivered}, dead-lettered {flow.dead}, rejected {flow.rejected}, retried"
                in out), flow.route
    # the WMS answered the ASN 503 first, then took it: a retry
    assert re.search(r"/asns answered 503, then 201 \(id WMS-\d+\)", out)
    # the GBK receipt file became two SOAP PostGoodsReceipt calls, each answered a material document
    assert len(re.findall(r"/soap/PostGoodsReceipt answered 200 \(id 50000000\d\d\)", out)) == 2
    # the watermark: the second poll of the ERP asked only for what changed since the first
    assert "the ERP was asked for changes since: (the start), 2026-11-24T11:00:00+08:00" in out
    assert "dead letters: esb dlq list " in out
    assert re.search(r"POST /in/(demo-[0-9a-f]{6}-)?wms-adjustments-to-erp -> 422 ", out)
    # the trading partner: a 940 picked up from the 3PL's SFTP server reached the WMS, and the
    # shipment confirmation went to the 3PL over AS2 and came back with a signed receipt (MDN)
    assert "3pl-orders-to-wms: DELIVERED" in out and "wms-shipments-to-3pl: DELIVERED" in out
    assert "the 3PL left SO-88231_940.edi in outbound/ on its SFTP server" in out
    assert re.search(r'/outbound-orders answered 201 \(id WMS-\d+\)\n +received: \{"externalId":"SO-88231"',
                     out)
    assert re.search(r"/as2 answered 200 \(id MDN <mdn-[0-9a-f]+@acme3pl>\)", out)
    # book (23:59:59) and shelf (23:55) of one cut-off were reconciled: the discrepancy, its alerts
    # (in base units: the WMS's 132 cartons of 12345 are the ERP's 1584 pieces, the item master says)
    assert ("discrepancy found: WH1 cut-off 2026-11-30, book BOOK-1000-20261130 against shelf "
            "STK-20261130-KS1: inventory accuracy 66.7 % (1 of 3 lines differ)") in out
    assert "  - 67890: book 252.5 EA, shelf 250.5 EA (difference -2.0)" in out
    assert "alert accuracy-floor (warning): WH1: inventory accuracy 66.7 % is below 98.0 %" in out
    assert "alert big-difference" not in out  # 2 pieces: within the rule's 10
    # the day's cycle count against the same book, for the counted items only
    assert ("discrepancy found: WH1 cut-off 2026-11-30, book BOOK-1000-20261130 against stock count "
            "CC-2026-11-0007: inventory accuracy 33.3 % (2 of 3 lines differ)") in out
    assert "  - 12345/L2611-07: book 1584 EA, shelf 1560 EA (difference -24)" in out  # 130 cartons counted
    assert "alert count-accuracy-floor (warning)" in out
    assert "alert count-big-difference (error): WH1: 1 lines differ by more than 10" in out
    # the time rules: the two flows that dead-lettered bad input grew a dead-letter queue
    assert "alert dead-letters-growing (error): bus: dead letters growing in " in out
    assert "wms-receipts-to-erp (inbound): 1" in out
    assert f"{len(FLOWS)} of {len(FLOWS)} flows delivered what they should in" in out


def test_demo_once_on_the_embedded_transport():
    result = run_demo()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the shipped routes on embedded transport" in result.stdout
    assert_every_flow_delivered(result.stdout)


@pytest.mark.broker
def test_demo_once_on_rabbitmq(broker_url):
    result = run_demo("--broker", broker_url)
    match = re.search(r"routes prefixed (demo-[0-9a-f]{6}-)", result.stdout)
    prefix = match.group(1) if match else None
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert prefix, result.stdout
        assert "guest:guest" not in result.stdout  # the broker's password is not printed
        assert_every_flow_delivered(result.stdout)
        assert f"/in/{prefix}erp-po-to-wms -> 202" in result.stdout
        # the demo deleted its queues when it ended
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        try:
            for name in _queues(prefix):
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


def test_flows_whose_target_refuses_everything_are_reported_not_delivered(monkeypatch):
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    demo = Demo(timeout=20).start()
    try:
        demo._wms_api_key = "not-the-key-the-bus-sends"  # the WMS now answers 401: permanent, dead-lettered
        demo.play()
        demo.wait()
        deadline = time.monotonic() + 20  # the alerts of the last dead letters follow within a poll or two
        while time.monotonic() < deadline and not any("erp-po-to-wms/wms" in alert["subject"]
                                                      for alert in demo.alerts()):
            time.sleep(0.2)
        results = {r.name: r for r in demo.results()}
        printed = summary(demo, list(results.values()))
    finally:
        demo.stop()
    to_wms = [flow.route for flow in FLOWS if flow.targets[0][0] == "wms"]
    assert to_wms and all(not results[name].ok for name in to_wms)
    # the alerts flow sends more than on a good day: a dead-letter queue grew for each flow to the WMS
    assert results["stock-alerts"].delivered > FLOWS_BY_NAME["stock-alerts"].delivered
    assert "alert dead-letters-growing (error): bus: dead letters growing in erp-po-to-wms/wms: 1" in printed
    assert all(results[flow.route].ok for flow in FLOWS if flow.route not in (*to_wms, "stock-alerts"))
    assert "erp-po-to-wms: NOT DELIVERED" in printed
    # a 401 is permanent: dead-lettered at once, not retried, and the demo does not wait for it
    assert "sent 1, delivered 0, dead-lettered 1, rejected 0, retried 0" in printed
    assert f"{len(FLOWS) - len(to_wms) - 1} of {len(FLOWS)} flows delivered what they should" in printed
