"""The live reports on a running bus (embedded transport, real HTTP on loopback): orders,
shipments and goods receipts flow through routes, two reconciliations are made, an alert fires;
then `/api/reports/...` answer JSON and CSV to a viewer (401 without a key, 400 on a bad
argument) and `/metrics` shows the gauges per warehouse."""

from __future__ import annotations

import copy
import csv
import io
import json
import time
from datetime import UTC, datetime

import pytest
import requests

from esb.config import load_config
from esb.credentials import Credentials
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

VIEWER = {"X-API-Key": "viewer-secret"}

ROUTES = """
version: 1
settings: {data_dir: data}
routes:
  - name: orders-in
    from: {rest: {format: json, auth: none}}
    validate: shipment_order
    to: [{file: {dir: wms, format: json, name_template: "order_{id}.json"}}]
  - name: shipments-in
    from: {rest: {format: json, auth: none}}
    validate: shipment_confirmation
    to: [{file: {dir: erp, format: json, name_template: "shipment_{id}.json"}}]
  - name: receipts-in
    from: {rest: {format: json, auth: none}}
    validate: goods_receipt
    to: [{file: {dir: erp, format: json, name_template: "receipt_{id}.json"}}]
  - name: book-in
    from: {rest: {format: json, auth: none}}
    validate: inventory_snapshot
    to: [{aggregate: {into: reconcile-stock, part: book}}]
  - name: shelf-in
    from: {rest: {format: json, auth: none}}
    validate: inventory_snapshot
    to: [{aggregate: {into: reconcile-stock, part: shelf}}]
  - name: reconcile-stock
    from: {aggregate: {parts: [book, shelf], poll: 100ms, reconcile: {}}}
    validate: inventory_discrepancy
    to:
      - file: {dir: out, format: json, name_template: "discrepancy_{id}.json"}
      - alert: {into: alerts, rules: [{name: accuracy-floor, accuracy_below: 0.98, severity: error}]}
  - name: alerts
    from: {alerts: {poll: 100ms}}
    validate: alert
    to: [{file: {dir: alerts, format: json, name_template: "alert_{id}.json"}}]
"""


def example(kind: str) -> dict:
    return copy.deepcopy(json.loads((PROJECT / "schemas" / f"{kind}.v1.json").read_text())["examples"][0])


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def snapshot(source: str, cutoff: str, quantities: dict[str, int]) -> dict:
    return {"snapshot_id": f"{source}-{cutoff}", "warehouse": "WH1", "as_of": f"{cutoff}T23:55:00+08:00",
            "cutoff": cutoff, "source": source,
            "lines": [{"sku": sku, "quantity": amount, "uom": "EA"} for sku, amount in quantities.items()]}


@pytest.fixture(scope="module")
def bus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reports")
    (directory / "routes.yaml").write_text(ROUTES)
    config = load_config(directory / "routes.yaml", environ={})
    credentials = Credentials.from_environment({"ESB_API_KEYS": "report-tool:viewer:viewer-secret"})
    runtime = Runtime(config, RuntimeOptions(broker_url=None, data_dir=directory / "data", port=0,
                                             credentials=credentials))
    runtime.start(app=create_app(runtime, open_endpoints=set()))
    now = time.time()
    try:
        def post(route: str, document: dict) -> None:
            response = requests.post(f"{runtime.server.url}/in/{route}", json=document, timeout=30)
            assert response.status_code == 202, response.text

        order = {**example("shipment_order"), "order_number": "SO-1"}
        post("orders-in", order)
        post("orders-in", {**order, "order_number": "SO-2", "warehouse": "WH2"})
        post("shipments-in", {**example("shipment_confirmation"), "order_number": "SO-1",
                              "shipped_at": rfc3339(now + 7200)})
        post("receipts-in", {**example("goods_receipt"), "received_at": rfc3339(now - 3600)})
        post("book-in", snapshot("erp", "2026-11-29", {"A": 10, "B": 5}))
        post("shelf-in", snapshot("wms", "2026-11-29", {"A": 8, "B": 5}))
        post("book-in", snapshot("erp", "2026-11-30", {"A": 10, "B": 5}))
        post("shelf-in", snapshot("wms", "2026-11-30", {"A": 9, "B": 7}))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(list((directory / "alerts").glob("*.json"))) < 2:
            time.sleep(0.1)
        runtime.ledger.flush()
        yield runtime
    finally:
        runtime.stop()


def get(bus, path: str, **headers):
    return requests.get(f"{bus.server.url}{path}", headers={**VIEWER, **headers}, timeout=30)


def test_documents_per_day_counts_each_document_once_per_route_and_warehouse(bus):
    rows = get(bus, "/api/reports/documents-per-day").json()["items"]

    counted = {(row["route"], row["warehouse"]): row["documents"] for row in rows}
    assert counted[("orders-in", "WH1")] == 1 and counted[("orders-in", "WH2")] == 1
    assert counted[("shipments-in", "WH1")] == 1 and counted[("receipts-in", "WH1")] == 1
    assert counted[("reconcile-stock", "WH1")] == 2  # two discrepancies, each delivered to two destinations
    assert {row["day"] for row in rows} == {datetime.now(UTC).date().isoformat()}


def test_order_to_shipment_pairs_the_shipment_with_its_order_and_summarises_per_warehouse(bus):
    body = get(bus, "/api/reports/order-to-shipment").json()

    (row,) = body["items"]  # SO-2 has not shipped
    assert (row["order_number"], row["warehouse"]) == ("SO-1", "WH1")
    assert 7100 < row["lead_seconds"] < 7300
    assert body["summary"]["WH1"]["count"] == 1


def test_receipt_to_posting_measures_from_the_wms_receipt_to_the_delivery(bus):
    (row,) = get(bus, "/api/reports/receipt-to-posting").json()["items"]

    assert 3590 < row["lead_seconds"] < 3700
    assert row["receipt_number"] == example("goods_receipt")["receipt_number"]


def test_discrepancies_by_item_sum_over_the_reconciliations_largest_first_as_json_and_csv(bus):
    items = get(bus, "/api/reports/discrepancies-by-item?warehouse=WH1").json()["items"]
    as_csv = get(bus, "/api/reports/discrepancies-by-item?format=csv")

    assert [(i["sku"], i["reconciliations"], i["absolute_difference"], i["net_difference"],
             i["last_difference"]) for i in items] == [("A", 2, 3, -3, -1), ("B", 1, 2, 2, 2)]
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(row["sku"], row["absolute_difference"]) for row in rows] == [("A", "3"), ("B", "2")]


def test_open_alerts_list_what_fired_and_a_bad_argument_or_no_key_is_refused(bus):
    alerts = get(bus, "/api/reports/open-alerts?hours=1").json()["items"]

    assert {(a["rule"], a["severity"], a["warehouse"]) for a in alerts} == {("accuracy-floor", "error",
                                                                              "WH1")}
    assert len(alerts) == 2  # one per reconciliation
    assert get(bus, "/api/reports/open-alerts?hours=0").status_code == 400
    assert get(bus, "/api/reports/documents-per-day?days=x").status_code == 400
    assert requests.get(f"{bus.server.url}/api/reports/open-alerts", timeout=30).status_code == 401


def test_metrics_show_the_report_gauges_per_warehouse(bus):
    text = get(bus, "/metrics").text

    assert 'esb_documents_today{route="orders-in",type="shipment_order",warehouse="WH2"} 1.0' in text
    assert 'esb_order_to_shipment_seconds_average{warehouse="WH1"}' in text
    assert 'esb_receipt_to_posting_seconds_max{warehouse="WH1"}' in text
    assert 'esb_alerts_open{severity="error",warehouse="WH1"} 2.0' in text
    assert 'esb_inventory_discrepancy_quantity{warehouse="WH1"} 3.0' in text  # newest: |−1| + |2|
