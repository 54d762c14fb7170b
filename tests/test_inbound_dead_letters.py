"""Raw input a polled source could not map or validate, on a real runtime on the embedded
transport with a real file source: it is dead-lettered under one message id that the journal
traces too (also by its document number), and counted as one failure, not two."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from esb import metrics
from esb.admin import AdminService
from esb.audit import AuditLog
from esb.config import load_config
from esb.credentials import Credentials
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

ORDER = json.loads((PROJECT / "schemas" / "purchase_order.v1.json").read_text())["examples"][0]
ROUTE = "po-files"
ROUTES = f"""
version: 1
routes:
  - name: {ROUTE}
    from: {{file: {{dir: inbox, pattern: "*.json", poll: 100ms}}}}
    validate: purchase_order
    to:
      - file: {{dir: out, format: json}}
"""


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def runtime(tmp_path):
    (tmp_path / "inbox").mkdir()
    (tmp_path / "routes.yaml").write_text(ROUTES)
    credentials = Credentials.from_environment({"ESB_API_KEYS": "ops:admin:admin-key"})
    bus = Runtime(load_config(tmp_path / "routes.yaml"),
                  RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", http=False,
                                 credentials=credentials))
    bus.start(app=create_app(bus))
    yield bus
    bus.stop()


def admin(runtime: Runtime, tmp_path: Path) -> AdminService:
    return AdminService(transport=runtime.transport, journal=runtime.journal, config=runtime.config,
                        audit=AuditLog(tmp_path / "audit.jsonl"))


def failures(route: str) -> int:
    counted = metrics.counters_by_route().get(route, {"total": {}})["total"]
    return counted.get("rejected", 0) + counted.get("dead_lettered", 0)


def test_an_invalid_file_is_dead_lettered_under_the_id_the_journal_traces_and_counted_once(runtime, tmp_path):
    before = failures(ROUTE)
    invalid = {key: value for key, value in ORDER.items() if key != "supplier"}
    (tmp_path / "inbox" / "po-1.json").write_text(json.dumps(invalid))

    service = admin(runtime, tmp_path)
    [letter] = wait_for(lambda: service.dead_letters(ROUTE))
    runtime.journal.flush()

    steps = [(entry.step, entry.message_id) for entry in service.trace(message_id=letter.message_id)]
    assert steps == [("dead_lettered", letter.message_id)]
    by_number = [entry.step for entry in service.trace(document_number=ORDER["order_number"])]
    assert by_number == ["dead_lettered"]
    assert letter.correlation_id == ORDER["order_number"]
    assert failures(ROUTE) - before == 1


def test_the_api_traces_by_document_number(runtime, tmp_path):
    (tmp_path / "inbox" / "po-2.json").write_text(json.dumps({**ORDER, "lines": []}))
    wait_for(lambda: admin(runtime, tmp_path).dead_letters(ROUTE))
    client = runtime.app.test_client()

    key = {"X-API-Key": "admin-key"}
    answer = client.get(f"/api/trace?document_number={ORDER['order_number']}", headers=key)
    both = client.get("/api/trace?document_number=1&message_id=2", headers=key)

    assert answer.status_code == 200 and [hop["step"] for hop in answer.json["hops"]] == ["dead_lettered"]
    assert answer.json["document_number"] == ORDER["order_number"]
    assert both.status_code == 400
