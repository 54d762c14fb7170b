"""The alert rules about time (esb.watch), on a running bus (embedded transport, real HTTP on
loopback, real files): an order released and never shipped, a route that stopped delivering, each
alerted once with its evidence and links; and `esb check` on the rules. The dead-letter rule on
the real RabbitMQ is in tests/integration/test_watch_rabbitmq.py."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import requests

from esb.config import load_config
from esb.ledger import DocumentLedger
from esb.runtime import Runtime, RuntimeOptions
from esb.watch import BusView, Watch
from tests.conftest import PROJECT


def example(kind: str) -> dict:
    return copy.deepcopy(json.loads((PROJECT / "schemas" / f"{kind}.v1.json").read_text())["examples"][0])


ROUTES = """
version: 1
settings: {data_dir: data}
routes:
  - name: orders-in
    from: {rest: {format: json, auth: none}}
    validate: shipment_order
    to:
      - file: {dir: wms, format: json, name_template: "order_{id}.json"}
  - name: shipments-in
    from: {rest: {format: json, auth: none}}
    validate: shipment_confirmation
    to:
      - file: {dir: erp, format: json, name_template: "shipment_{id}.json"}
  - name: bus-alerts
    from:
      alerts:
        poll: 100ms
        rules:
          - {name: order-not-shipped, not_shipped_within: 1s, severity: warning}
          - {name: shipments-stalled, no_success_for: 1s, routes: [shipments-in], severity: error}
    validate: alert
    to:
      - file: {dir: alerts, format: json, name_template: "alert_{id}.json"}
"""


def start(directory: Path) -> Runtime:
    (directory / "routes.yaml").write_text(ROUTES)
    config = load_config(directory / "routes.yaml", environ={})
    return Runtime(config, RuntimeOptions(broker_url=None, data_dir=directory / "data", port=0)).start()


def post(runtime: Runtime, route: str, document: dict) -> str:
    response = requests.post(f"{runtime.server.url}/in/{route}", json=document, timeout=30)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def alerts_in(directory: Path, rule: str, count: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [json.loads(p.read_text()) for p in sorted(directory.glob("alert_*.json"))]
        found = [alert for alert in found if alert["rule"] == rule]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {count} alerts of {rule} in {directory}")


def test_an_order_released_without_a_shipment_alerts_once_and_a_shipped_one_not(tmp_path):
    shipped, waiting = example("shipment_order"), example("shipment_order")
    shipped["order_number"], waiting["order_number"] = "SO-1", "SO-2"
    confirmation = {**example("shipment_confirmation"), "order_number": "SO-1"}
    runtime = start(tmp_path)
    try:
        post(runtime, "orders-in", shipped)
        waiting_id = post(runtime, "orders-in", waiting)
        post(runtime, "shipments-in", confirmation)
        (alert,) = alerts_in(tmp_path / "alerts", "order-not-shipped", 1)
        time.sleep(1.5)  # later checks find the same order: the outbox does not send it again
        assert len(alerts_in(tmp_path / "alerts", "order-not-shipped", 1)) == 1
    finally:
        runtime.stop()

    assert alert["subject"].startswith("WH1: order SO-2 not shipped after")
    assert (alert["warehouse"], alert["correlation_id"]) == ("WH1", "SO-2")
    assert alert["message_ids"] == [waiting_id]
    trace = {"title": f"trace of {waiting_id}", "href": f"/api/trace?message_id={waiting_id}"}
    assert trace in alert["links"]
    assert "no shipment confirmation for it has come (the rule allows 1 s)" in alert["text"]


def test_a_route_that_delivered_nothing_for_longer_than_allowed_alerts(tmp_path):
    runtime = start(tmp_path)
    try:
        (alert,) = alerts_in(tmp_path / "alerts", "shipments-stalled", 1)
    finally:
        runtime.stop()

    assert alert["severity"] == "error"
    assert alert["subject"].startswith("bus: shipments-in without success for")
    assert "it has not delivered since the bus began watching" in alert["text"]
    assert alert["links"] == [{"title": "route shipments-in", "href": "/api/routes/shipments-in"}]


def test_a_route_that_delivered_within_the_limit_does_not_alert_and_one_idle_since_does(tmp_path):
    target = tmp_path / "state.sqlite"
    ledger = DocumentLedger(target, writer=False)
    order = example("shipment_order")
    from esb.envelope import Envelope

    envelope = Envelope(type="shipment_order", payload=order, source="erp", correlation_id="SO-700231",
                        received_at="2026-12-01T08:00:00+00:00")
    ledger.delivered(envelope, "orders-in", "rest", now=1000.0)
    view = BusView(routes=lambda: ["orders-in"], dead_letter_depths=dict, dead_lettered_since=lambda r, s: [],
                   ledger=ledger)
    watch = Watch(target, [{"name": "stalled", "no_success_for": 600.0}])

    assert watch.check(view, now=1500.0) == []
    (fired,) = watch.check(view, now=1700.0)
    assert fired.fingerprint == "stalled|None|orders-in"
    assert "its last delivery was at 1970-01-01T00:16:40+00:00" in fired.payload["text"]


def test_a_dead_letter_queue_alerts_when_it_holds_more_than_it_did_the_window_before(tmp_path):
    target = tmp_path / "state.sqlite"
    depths = {("orders-in", "wms"): 2}
    view = BusView(routes=lambda: ["orders-in"], dead_letter_depths=lambda: dict(depths),
                   dead_lettered_since=lambda route, since: ["0b5d3c6e-3f0e-4a53-9d0b-6f7f1c2a9e41"],
                   ledger=DocumentLedger(target, writer=False))
    watch = Watch(target, [{"name": "dlq", "dead_letters_growing": 600.0}])

    (first,) = watch.check(view, now=1000.0)  # never looked before: 2 more than nothing
    assert first.payload["observed_value"] == 2 and first.payload["threshold"] == 0
    assert watch.check(view, now=1700.0) == []  # 2 now, 2 ten minutes ago: not growing
    depths[("orders-in", "wms")] = 5
    (grown,) = watch.check(view, now=2400.0)
    assert (grown.payload["observed_value"], grown.payload["threshold"]) == (5, 2)
    assert grown.payload["links"][0] == {"title": "dead letters of orders-in/wms",
                                         "href": "/api/routes/orders-in/dead-letters?destination=wms"}
    assert grown.payload["message_ids"] == ["0b5d3c6e-3f0e-4a53-9d0b-6f7f1c2a9e41"]


def test_esb_check_names_a_watched_route_that_does_not_exist_and_a_rule_with_two_kinds(tmp_path):
    from esb.config import check_config

    text = ROUTES.replace("routes: [shipments-in]", "routes: [shipment-in]").replace(
        "not_shipped_within: 1s,", "not_shipped_within: 1s, no_success_for: 5m,")
    (tmp_path / "routes.yaml").write_text(text)

    problems = [problem.what for problem in check_config(tmp_path / "routes.yaml", environ={})]

    assert any('no route "shipment-in" in this file' in p and 'did you mean "shipments-in"' in p
               for p in problems), problems
    assert any("exactly one of no_success_for, dead_letters_growing, not_shipped_within" in p
               for p in problems), problems
