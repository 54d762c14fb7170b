"""End to end on the embedded transport with real HTTP on loopback: the ERP's book stock and the
WMS's shelf stock are posted to two routes, each hands its snapshot to the aggregator, and the
reconciling route writes one inventory_discrepancy file, also when the bus was restarted between
the two sides."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import requests

from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions

ROUTES = """
version: 1
settings: {data_dir: data}
routes:
  - name: book-in
    from: {rest: {format: json, auth: none}}
    validate: inventory_snapshot
    to:
      - aggregate: {into: reconcile-stock, part: book}
  - name: shelf-in
    from: {rest: {format: json, auth: none}}
    validate: inventory_snapshot
    to:
      - aggregate: {into: reconcile-stock, part: shelf}
  - name: reconcile-stock
    from:
      aggregate: {parts: [book, shelf], timeout: 1h, poll: 100ms, alert_into: stock-alerts,
                  reconcile: {tolerance: {absolute: 1}}}
    validate: inventory_discrepancy
    to:
      - file: {dir: out, format: json, name_template: "discrepancy_{id}.json"}
      - alert:
          into: stock-alerts
          rules:
            - {name: accuracy-floor, accuracy_below: 0.98}
            - {name: big-difference, difference_over: 10, severity: error}
  - name: stock-alerts
    from: {alerts: {poll: 100ms}}
    validate: alert
    to:
      - file: {dir: alerts, format: json, name_template: "alert_{id}.json"}
"""

BOOK = {"snapshot_id": "ERP-WH1-1", "warehouse": "WH1", "as_of": "2026-12-01T02:00:00+01:00", "source": "erp",
        "lines": [{"sku": "A", "quantity": 500, "uom": "EA"}, {"sku": "B", "quantity": 10, "uom": "EA"},
                  {"sku": "C", "quantity": 7, "uom": "EA"}]}
SHELF = {**copy.deepcopy(BOOK), "snapshot_id": "WMS-WH1-1", "source": "wms",
         "lines": [{"sku": "A", "quantity": 480, "uom": "EA"}, {"sku": "B", "quantity": 10.5, "uom": "EA"},
                   {"sku": "C", "quantity": 7, "uom": "EA"}]}


def start(directory: Path) -> Runtime:
    config = load_config(directory / "routes.yaml", environ={})
    return Runtime(config, RuntimeOptions(broker_url=None, data_dir=directory / "data", port=0)).start()


def post(runtime: Runtime, route: str, document: dict) -> None:
    response = requests.post(f"{runtime.server.url}/in/{route}", json=document, timeout=30)
    assert response.status_code == 202, response.text


def wait_for_files(directory: Path, timeout: float = 20.0, pattern: str = "discrepancy_*.json",
                   count: int = 1) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(directory.glob(pattern))
        if len(files) >= count:
            return files
        time.sleep(0.1)
    raise AssertionError(f"no discrepancy written in {directory}")


def test_book_and_shelf_stock_of_one_cut_off_make_one_discrepancy_even_across_a_restart(tmp_path):
    (tmp_path / "routes.yaml").write_text(ROUTES)
    first = start(tmp_path)
    try:
        post(first, "book-in", BOOK)
        time.sleep(0.5)  # the book side is stored; the group waits for the shelf side
        assert not list((tmp_path / "out").glob("discrepancy_*.json"))
    finally:
        first.stop()

    second = start(tmp_path)
    try:
        post(second, "shelf-in", SHELF)
        (written,) = wait_for_files(tmp_path / "out")
        alert_files = wait_for_files(tmp_path / "alerts", pattern="alert_*.json", count=2)
    finally:
        second.stop()

    discrepancy = json.loads(written.read_text())
    assert discrepancy["book_snapshot_id"] == "ERP-WH1-1" and discrepancy["shelf_snapshot_id"] == "WMS-WH1-1"
    assert discrepancy["compared_lines"] == 3
    assert discrepancy["lines"] == [{"line_number": 1, "sku": "A", "book_quantity": 500,
                                     "shelf_quantity": 480, "difference": -20, "uom": "EA"}]
    assert discrepancy["accuracy"] == 0.666667
    alerts = {alert["rule"]: alert for alert in (json.loads(p.read_text()) for p in alert_files)}
    assert set(alerts) == {"accuracy-floor", "big-difference"}
    assert "A: difference -20" in alerts["big-difference"]["text"]
    from esb.accuracy import AccuracyHistory

    (row,) = AccuracyHistory(tmp_path / "data" / "state.sqlite").rows()
    assert (row["warehouse"], row["accuracy"], row["differing_lines"]) == ("WH1", 0.666667, 1)


def test_a_side_that_never_came_raises_one_timeout_alert_with_the_other_sides_id(tmp_path):
    (tmp_path / "routes.yaml").write_text(ROUTES.replace("timeout: 1h", "timeout: 300ms"))
    runtime = start(tmp_path)
    try:
        post(runtime, "book-in", BOOK)
        (written,) = wait_for_files(tmp_path / "alerts", pattern="alert_*.json")
        time.sleep(0.5)  # later polls must not alert again
        assert len(list((tmp_path / "alerts").glob("alert_*.json"))) == 1
    finally:
        runtime.stop()

    alert = json.loads(written.read_text())
    assert alert["rule"] == "aggregate_timeout" and alert["severity"] == "error"
    assert alert["subject"] == "reconcile-stock: shelf missing for WH1|2026-12-01T02:00:00+01:00"
    assert len(alert["message_ids"]) == 1
    assert not list((tmp_path / "out").glob("discrepancy_*.json"))


def test_esb_check_names_an_aggregate_destination_whose_route_or_part_does_not_exist(tmp_path):
    from esb.config import check_config

    text = ROUTES.replace("{into: reconcile-stock, part: book}", "{into: reconcile-stok, part: book}") \
                 .replace("{into: reconcile-stock, part: shelf}", "{into: reconcile-stock, part: shelves}") \
                 .replace("reconcile: {tolerance", "reconcile: {book: erp, tolerance")
    (tmp_path / "routes.yaml").write_text(text)

    sentences = [problem.what for problem in check_config(tmp_path / "routes.yaml", environ={})]

    assert 'routes[0].to[0].aggregate.into: no route "reconcile-stok" collects parts ' \
           '(from: {aggregate: ...}) (did you mean "reconcile-stock"?)' in sentences
    assert 'routes[1].to[0].aggregate.part: route "reconcile-stock" collects the parts book, shelf, ' \
           'not "shelves"' in sentences
    assert any('reconcile.book names part "erp", which is not in parts (book, shelf)' in s for s in sentences)


def test_esb_check_refuses_a_rule_without_a_kind_and_an_alert_route_that_does_not_exist(tmp_path):
    from esb.config import check_config

    text = ROUTES.replace("- {name: accuracy-floor, accuracy_below: 0.98}", "- {name: accuracy-floor}") \
                 .replace("into: stock-alerts\n", "into: stock-alert\n")
    (tmp_path / "routes.yaml").write_text(text)

    found = check_config(tmp_path / "routes.yaml", environ={})
    problems = [(problem.line, problem.what) for problem in found]

    assert any(what.startswith("routes[2].to[1].alert.rules[0]: expected a rule with a name and exactly one "
                               "of accuracy_below, difference_over") for _, what in problems), problems
    assert any('no route "stock-alert" sends alerts' in what and 'did you mean "stock-alerts"' in what
               for _, what in problems), problems


def test_snapshots_taken_at_different_times_of_one_business_day_pair_on_their_cutoff(tmp_path):
    # the ERP closes its book at 23:59:59, the WMS writes its file at 23:55: the same cut-off
    (tmp_path / "routes.yaml").write_text(ROUTES)
    book = {**BOOK, "as_of": "2026-11-30T23:59:59+08:00", "cutoff": "2026-11-30"}
    shelf = {**SHELF, "as_of": "2026-11-30T23:55:00+08:00", "cutoff": "2026-11-30"}
    other_day = {**SHELF, "snapshot_id": "WMS-WH1-0", "as_of": "2026-11-29T23:55:00+08:00",
                 "cutoff": "2026-11-29"}
    runtime = start(tmp_path)
    try:
        post(runtime, "shelf-in", other_day)  # the day before: waits for its own book
        post(runtime, "book-in", book)
        post(runtime, "shelf-in", shelf)
        (written,) = wait_for_files(tmp_path / "out")
        time.sleep(0.5)
        assert len(list((tmp_path / "out").glob("discrepancy_*.json"))) == 1
    finally:
        runtime.stop()

    discrepancy = json.loads(written.read_text())
    assert (discrepancy["shelf_snapshot_id"], discrepancy["cutoff"]) == ("WMS-WH1-1", "2026-11-30")
    assert discrepancy["as_of"] == "2026-11-30T23:55:00+08:00"
    assert discrepancy["accuracy"] == 0.666667
