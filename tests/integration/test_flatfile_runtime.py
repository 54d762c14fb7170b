"""End to end on the real broker: GBK receipt files dropped into a directory are picked up by the
file source, mapped with the shipped WMS mapping, validated, published, and written by the file
sink as one JSON file per receipt; a file with a bad line goes to error/ with its report."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pika
import pytest

from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

pytestmark = pytest.mark.broker

CASES = PROJECT / "mappings" / "wms" / "goods_receipt.in.cases"


def write_routes(directory: Path, route: str, broker_url: str) -> Path:
    text = f"""
version: 1
settings: {{broker_url: "{broker_url}", data_dir: data}}
routes:
  - name: {route}
    from: {{file: {{dir: inbox, pattern: "GR_*.csv", encoding: gbk, per: group, group_by: receipt_no,
                   min_age: 0, poll: 200ms}}}}
    map: {PROJECT / "mappings" / "wms" / "goods_receipt.in.yaml"}
    validate: goods_receipt
    to:
      - file: {{dir: out, format: json, name_template: "receipt_{{correlation_id}}.{{ext}}"}}
"""
    path = directory / "routes.yaml"
    path.write_text(text)
    return path


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def runtime(tmp_path, unique_name, broker_url):
    (tmp_path / "inbox").mkdir()
    config = load_config(write_routes(tmp_path, unique_name, broker_url))
    bus = Runtime(config, RuntimeOptions(broker_url=broker_url, data_dir=tmp_path / "data", port=0,
                                         http=False)).start()
    yield bus
    bus.stop()
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in (q.name for q in bus.transport.topology.queues):
        channel.queue_delete(queue)
    connection.close()


def test_a_dropped_gbk_file_becomes_one_written_file_per_receipt(runtime, tmp_path):
    shutil.copy(CASES / "two_receipts_gbk.input.csv", tmp_path / "inbox" / "GR_1.csv")

    out = tmp_path / "out"
    wait_for(lambda: len(list(out.glob("receipt_*.json"))) == 2)

    names = sorted(p.name for p in out.glob("receipt_*.json"))
    assert names == ["receipt_GR-2026-000123.json", "receipt_GR-2026-000124.json"]
    payload = json.loads((out / names[0]).read_text(encoding="utf-8"))
    assert payload["receipt_number"] == "GR-2026-000123" and payload["lines"][0]["sku"] == "12345"
    assert wait_for(lambda: (tmp_path / "inbox" / "processed" / "GR_1.csv").exists())


def test_a_file_with_a_bad_line_goes_to_error_with_a_report_and_its_good_receipts_are_written(
        runtime, tmp_path):
    good = (CASES / "two_receipts_gbk.input.csv").read_bytes()
    bad_unit = good.replace(b",CS,", b",XX,", 1)  # receipt GR-2026-000123's first line: an unknown unit
    (tmp_path / "inbox" / "GR_2.csv").write_bytes(bad_unit)

    report_path = tmp_path / "inbox" / "error" / "GR_2.csv.error.json"
    wait_for(report_path.exists)

    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["published"], report["refused"]) == (1, 1)
    assert report["problems"][0]["lines"] == [2, 3, 4] and report["problems"][0]["dead_lettered"]
    wait_for(lambda: (tmp_path / "out" / "receipt_GR-2026-000124.json").exists())
    assert not (tmp_path / "out" / "receipt_GR-2026-000123.json").exists()


def test_a_file_with_no_record_goes_to_error_and_is_counted_in_the_metrics(runtime, tmp_path, unique_name):
    from prometheus_client import REGISTRY

    header = (CASES / "two_receipts_gbk.input.csv").read_bytes().split(b"\n", 1)[0] + b"\n"
    (tmp_path / "inbox" / "GR_3.csv").write_bytes(header)

    report_path = tmp_path / "inbox" / "error" / "GR_3.csv.error.json"
    wait_for(report_path.exists)

    assert "no record" in json.loads(report_path.read_text(encoding="utf-8"))["error"]
    labels = {"route": unique_name, "reason": "empty"}
    assert wait_for(lambda: REGISTRY.get_sample_value("esb_files_set_aside_total", labels)) == 1
