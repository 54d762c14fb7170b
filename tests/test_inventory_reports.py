"""`/api/reports/inventory-accuracy` (JSON and CSV) and the accuracy gauges of `/metrics`, read
through the monitoring app's test client from the history the reconciliation writes."""

from __future__ import annotations

import csv
import io

from esb.accuracy import AccuracyHistory
from esb.aggregator import state_target
from esb.monitoring import create_app
from tests.test_monitoring_api import bearer, runtime  # noqa: F401 - the fixture

DISCREPANCY = {"warehouse": "WH1", "as_of": "2026-12-01T02:00:00+01:00", "book_snapshot_id": "B1",
               "shelf_snapshot_id": "S1", "accuracy": 0.975, "compared_lines": 40,
               "lines": [{"sku": "A", "book_quantity": 5, "shelf_quantity": 4, "difference": -1,
                          "uom": "EA"}]}


def recorded(runtime) -> None:  # noqa: F811
    history = AccuracyHistory(state_target(runtime.options.data_dir, None))
    history.record(DISCREPANCY, now=1000.0)
    history.record(DISCREPANCY, now=1001.0)  # the same reconciliation again: kept once
    history.record({**DISCREPANCY, "warehouse": "WH2", "accuracy": 1, "lines": []}, now=1002.0)


def test_the_accuracy_report_lists_each_reconciliation_once_as_json_and_csv(runtime):  # noqa: F811
    recorded(runtime)
    client = create_app(runtime).test_client()

    as_json = client.get("/api/reports/inventory-accuracy?warehouse=WH1", headers=bearer("viewer-key"))
    as_csv = client.get("/api/reports/inventory-accuracy?format=csv", headers=bearer("viewer-key"))

    assert as_json.status_code == 200
    assert as_json.get_json()["items"] == [{"warehouse": "WH1", "as_of": "2026-12-01T02:00:00+01:00",
                                            "accuracy": 0.975, "compared_lines": 40, "differing_lines": 1,
                                            "book_snapshot_id": "B1", "shelf_snapshot_id": "S1",
                                            "recorded_at": 1000.0}]
    assert as_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert sorted((row["warehouse"], row["accuracy"]) for row in rows) == [("WH1", "0.975"), ("WH2", "1.0")]


def test_a_bad_format_is_a_400_and_no_key_is_a_401(runtime):  # noqa: F811
    client = create_app(runtime).test_client()

    bad = client.get("/api/reports/inventory-accuracy?format=xml", headers=bearer("viewer-key"))

    assert bad.status_code == 400
    assert client.get("/api/reports/inventory-accuracy").status_code == 401


def test_metrics_show_the_newest_accuracy_and_differing_lines_per_warehouse(runtime):  # noqa: F811
    recorded(runtime)

    client = create_app(runtime).test_client()

    text = client.get("/metrics", headers=bearer("viewer-key")).get_data(as_text=True)

    assert 'esb_inventory_accuracy{warehouse="WH1"} 0.975' in text
    assert 'esb_inventory_accuracy{warehouse="WH2"} 1.0' in text
    assert 'esb_inventory_discrepancy_lines{warehouse="WH1"} 1.0' in text
