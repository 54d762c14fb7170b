"""`esb.admin`: the CLI (`esb dlq`) and the admin API act through one service, so a replay or a
purge is journaled and audited the same way from both. A real embedded transport, journal and
audit file on tmp_path; the API through Flask's test client on a runtime over the same files."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path

import pytest

from esb.admin import Actor, AdminService
from esb.audit import AUDIT_FILE_NAME, AuditLog
from esb.cli import main
from esb.config import load_config
from esb.credentials import Credentials
from esb.envelope import Envelope
from esb.errors import NotFound, Permanent
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions

ROUTES = Path(__file__).resolve().parent.parent / "routes.yaml"
ROUTE, DESTINATION = "erp-po-to-wms", "wms"
ADMIN = {"Authorization": "Bearer admin-key"}


@pytest.fixture
def start_bus(tmp_path, monkeypatch):
    """Starts a runtime on the embedded transport in tmp_path (no sources, no port), the data
    directory `esb dlq` uses too (ESB_DATA_DIR); without consumers, a replay stays queued."""
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    monkeypatch.setenv("ESB_DATA_DIR", str(tmp_path))
    started = []

    def start(*, consumers: bool = False) -> Runtime:
        credentials = Credentials.from_environment({"ESB_API_KEYS": "ops:admin:admin-key"})
        options = RuntimeOptions(broker_url=None, data_dir=tmp_path, http=False, sources=False,
                                 consumers=consumers, credentials=credentials)
        started.append(Runtime(load_config(ROUTES), options).start())
        return started[-1]

    yield start
    for runtime in started:
        runtime.stop()


@pytest.fixture
def bus(start_bus):
    return start_bus()


def dead_letter(runtime: Runtime, number: int) -> str:
    letter = Envelope(type="purchase_order", source="erp", payload={"order_number": f"PO-{number}"})
    runtime.transport.publish_dead_letter(ROUTE, DESTINATION, letter.amqp_body(), Permanent("HTTP 400"),
                                          message_id=letter.id).result(5)
    return letter.id


def audit_lines(data_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (data_dir / AUDIT_FILE_NAME).read_text().splitlines()]


def steps(runtime: Runtime, message_id: str) -> list[tuple[str, str | None, str | None]]:
    runtime.journal.flush()
    return [(e.step, e.destination, e.detail) for e in runtime.journal.trace(message_id=message_id)]


def without_who_and_when(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key not in ("who", "at", "address")}


def test_a_replay_from_the_cli_and_from_the_api_are_journaled_and_audited_alike(bus, tmp_path):
    by_cli, by_api = dead_letter(bus, 1), dead_letter(bus, 2)

    assert main(["dlq", "replay", ROUTE, DESTINATION, "-c", str(ROUTES), "--id", by_cli]) == 0
    answer = create_app(bus).test_client().post(
        f"/api/routes/{ROUTE}/dead-letters/replay", json={"ids": [by_api], "destination": DESTINATION},
        headers=ADMIN)

    assert answer.status_code == 200 and answer.json["ids"] == [by_api]
    cli_entry, api_entry = audit_lines(tmp_path)
    assert cli_entry["who"] == f"cli:{getpass.getuser()}" and api_entry["who"] == "ops"
    assert cli_entry["action"] == api_entry["action"] == "dead-letters.replay"
    assert cli_entry["target"] == {"route": ROUTE, "destination": DESTINATION, "ids": [by_cli]}
    assert without_who_and_when(cli_entry) == without_who_and_when(api_entry) | {
        "target": cli_entry["target"], "outcome": {"count": 1, "ids": [by_cli], "missing": []}}
    assert api_entry["outcome"] == {"count": 1, "ids": [by_api], "missing": []}
    assert steps(bus, by_cli) == [("replayed", DESTINATION, f"by cli:{getpass.getuser()}")]
    assert steps(bus, by_api) == [("replayed", DESTINATION, "by ops")]
    assert bus.transport.dead_letters(ROUTE) == []


def test_a_purge_of_all_from_the_cli_and_from_the_api_are_journaled_and_audited_alike(bus, tmp_path):
    first = [dead_letter(bus, n) for n in range(2)]
    assert main(["dlq", "purge", ROUTE, DESTINATION, "-c", str(ROUTES), "--all"]) == 0
    second = [dead_letter(bus, n) for n in range(2, 4)]
    answer = create_app(bus).test_client().post(
        f"/api/routes/{ROUTE}/dead-letters/purge", json={"all": True, "destination": DESTINATION},
        headers=ADMIN)

    assert answer.status_code == 200
    cli_entry, api_entry = audit_lines(tmp_path)
    assert (cli_entry["action"], api_entry["action"]) == ("dead-letters.purge", "dead-letters.purge")
    assert cli_entry["target"] == api_entry["target"] == {"route": ROUTE, "destination": DESTINATION,
                                                          "ids": "all"}
    assert cli_entry["outcome"] == {"count": 2, "ids": sorted(first), "missing": []}
    assert api_entry["outcome"] == {"count": 2, "ids": sorted(second), "missing": []}
    for message_id in first:
        assert steps(bus, message_id) == [("purged", DESTINATION, f"by cli:{getpass.getuser()}")]
    for message_id in second:
        assert steps(bus, message_id) == [("purged", DESTINATION, "by ops")]


def test_a_cli_replay_of_an_unknown_id_fails_and_is_audited_as_missing(bus, tmp_path, capsys):
    dead_letter(bus, 1)

    assert main(["dlq", "replay", ROUTE, DESTINATION, "-c", str(ROUTES), "--id", "no-such-id"]) == 1

    assert "no dead letter with id no-such-id" in capsys.readouterr().err
    [entry] = audit_lines(tmp_path)
    assert entry["outcome"] == {"count": 0, "ids": [], "missing": ["no-such-id"]}
    assert len(bus.transport.dead_letters(ROUTE)) == 1


def test_pause_and_resume_are_audited_with_what_is_paused_now(start_bus, tmp_path):
    bus = start_bus(consumers=True)  # a pause stops this process's consumers
    service = AdminService(transport=bus.transport, journal=bus.journal, config=bus.config,
                           audit=AuditLog(tmp_path / AUDIT_FILE_NAME))

    paused = service.pause(ROUTE, DESTINATION, actor=Actor("ops", "10.0.0.1"))
    resumed = service.resume(ROUTE, actor=Actor("ops", "10.0.0.1"))

    assert paused.as_dict() | {"audit": None} == {"action": "pause", "route": ROUTE,
                                                  "destinations": [DESTINATION], "paused": [DESTINATION],
                                                  "audit": None}
    assert resumed.paused == []
    assert [(e["action"], e["address"]) for e in audit_lines(tmp_path)] == [("route.pause", "10.0.0.1"),
                                                                          ("route.resume", "10.0.0.1")]


def test_an_unknown_route_or_destination_is_not_found_with_a_suggestion_and_nothing_is_audited(bus, tmp_path):
    service = AdminService(transport=bus.transport, journal=bus.journal, config=bus.config,
                           audit=AuditLog(tmp_path / AUDIT_FILE_NAME))

    with pytest.raises(NotFound, match='did you mean "erp-po-to-wms"'):
        service.replay("erp-po-to-wmz", None, None, actor=Actor("ops"))
    with pytest.raises(NotFound, match='has no destination "wmz"'):
        service.purge(ROUTE, "wmz", None, actor=Actor("ops"))

    assert not (tmp_path / AUDIT_FILE_NAME).exists()


def test_the_runtime_does_not_import_the_monitoring_app():
    code = "import sys, esb.runtime; print(sorted(m for m in sys.modules if m.startswith('esb.monitoring')))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert imported.stdout.strip() == "[]"
