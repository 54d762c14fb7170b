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
      aggregate: {parts: [book, shelf], timeout: 1h, poll: 100ms,
                  reconcile: {tolerance: {absolute: 1}}}
    validate: inventory_discrepancy
    to:
      - file: {dir: out, format: json, name_template: "discrepancy_{id}.json"}
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


def wait_for_files(directory: Path, timeout: float = 20.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(directory.glob("discrepancy_*.json"))
        if files:
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
    finally:
        second.stop()

    discrepancy = json.loads(written.read_text())
    assert discrepancy["book_snapshot_id"] == "ERP-WH1-1" and discrepancy["shelf_snapshot_id"] == "WMS-WH1-1"
    assert discrepancy["compared_lines"] == 3
    assert discrepancy["lines"] == [{"line_number": 1, "sku": "A", "book_quantity": 500,
                                     "shelf_quantity": 480, "difference": -20, "uom": "EA"}]
    assert discrepancy["accuracy"] == 0.666667


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
