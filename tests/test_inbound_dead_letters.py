"""Raw input a polled source could not map or validate, on a real runtime on the embedded
transport with a real file source: it is dead-lettered under one message id that the journal
traces too (also by its document number), counted as one failure, not two, and replayed through
the route's inbound stage once its mapping is fixed (API and CLI), each answer saying why when
nothing was replayed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from esb import metrics
from esb.admin import AdminService
from esb.audit import AuditLog
from esb.cli import main
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


# --- replaying raw inbound dead letters: "fix the mapping, replay" -------------------------------

MAPPING = """
direction: in
canonical_type: purchase_order
input: {{format: json}}
fields:
  order_number: {{from: {number_field}, type: string}}
  warehouse: {{from: site, type: string}}
"""
MAPPED_ROUTES = """
version: 1
routes:
  - name: mapped
    from: {file: {dir: inbox, pattern: "*.json", poll: 100ms}}
    map: po.in.yaml
    to:
      - file: {dir: out, format: json}
"""


@pytest.fixture
def mapped(tmp_path, monkeypatch):
    """A bus whose mapping reads the wrong field: every file is dead-lettered until it is fixed."""
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    monkeypatch.setenv("ESB_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "inbox").mkdir()
    (tmp_path / "po.in.yaml").write_text(MAPPING.format(number_field="po_no"))
    (tmp_path / "routes.yaml").write_text(MAPPED_ROUTES)
    credentials = Credentials.from_environment({"ESB_API_KEYS": "ops:admin:admin-key"})
    bus = Runtime(load_config(tmp_path / "routes.yaml"),
                  RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", http=False,
                                 credentials=credentials))
    bus.start(app=create_app(bus))
    (tmp_path / "inbox" / "po-1.json").write_text(json.dumps({"po_number": "PO-1", "site": "WH1"}))
    wait_for(lambda: admin(bus, tmp_path).dead_letters("mapped"))
    yield bus
    bus.stop()


def fix_the_mapping(tmp_path: Path) -> None:
    path = tmp_path / "po.in.yaml"
    path.write_text(MAPPING.format(number_field="po_number"))
    stat = path.stat()  # a new modification time, even within the file system's granularity
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def replay_all(bus: Runtime):
    return bus.app.test_client().post("/api/routes/mapped/dead-letters/replay", json={"all": True},
                                      headers={"X-API-Key": "admin-key"})


def test_a_raw_dead_letter_still_refused_is_not_replayed_and_the_answer_says_why(mapped, tmp_path):
    answer = replay_all(mapped)

    assert answer.status_code == 200
    assert answer.json["count"] == 0
    [(letter_id, why)] = answer.json["not_replayed"].items()
    assert "still refused with the current mapping" in why and "order_number" in why
    assert "1 not replayed" in answer.json["reason"]
    assert [d.message_id for d in admin(mapped, tmp_path).dead_letters("mapped")] == [letter_id]


def test_after_the_mapping_is_fixed_the_api_replays_it_through_the_inbound_stage(mapped, tmp_path):
    [letter] = admin(mapped, tmp_path).dead_letters("mapped")
    fix_the_mapping(tmp_path)

    answer = replay_all(mapped)

    assert (answer.json["count"], answer.json["ids"], answer.json["reason"]) == (1, [letter.message_id], None)
    written = wait_for(lambda: list((tmp_path / "out").glob("*.json")))
    assert json.loads(written[0].read_text())["order_number"] == "PO-1"
    assert admin(mapped, tmp_path).dead_letters("mapped") == []
    mapped.journal.flush()
    [replayed] = [e for e in mapped.journal.trace(message_id=letter.message_id) if e.step == "replayed"]
    assert "through the inbound stage, published as" in replayed.detail
    again = replay_all(mapped)
    assert (again.json["count"], again.json["reason"]) == (0, 'route "mapped" has no dead letters')


def test_the_cli_replays_a_raw_dead_letter_with_the_mapping_on_disk(mapped, tmp_path, capsys):
    [letter] = admin(mapped, tmp_path).dead_letters("mapped")
    routes = str(tmp_path / "routes.yaml")

    assert main(["dlq", "replay", "mapped", "-c", routes, "--all"]) == 1  # still refused: exit 1
    assert "still refused with the current mapping" in capsys.readouterr().err
    fix_the_mapping(tmp_path)
    assert main(["dlq", "replay", "mapped", "-c", routes, "--id", letter.message_id]) == 0

    assert "replayed 1 dead letter(s) of mapped" in capsys.readouterr().out
    assert wait_for(lambda: list((tmp_path / "out").glob("*.json")))  # the running bus delivers it
