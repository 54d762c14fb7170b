"""`esb topology` and `esb dlq` without a broker: what they print and their exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.cli import main

ROUTES = Path(__file__).resolve().parent.parent / "routes.yaml"


@pytest.fixture(autouse=True)
def no_broker_in_the_environment(monkeypatch):
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)


def test_topology_show_prints_every_queue_without_a_broker(capsys):
    assert main(["topology", "show", "-c", str(ROUTES)]) == 0

    out = capsys.readouterr().out
    assert out.startswith("exchange esb")
    assert "esb.erp-po-to-wms.wms.retry.1s" in out and "esb.erp-po-to-wms.dlq" in out


def test_topology_declare_says_in_one_line_when_the_broker_cannot_be_reached(capsys):
    code = main(["topology", "declare", "-c", str(ROUTES), "--broker", "amqp://guest:secret@127.0.0.1:1/"])

    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith("esb: cannot reach the broker at amqp://guest:***@127.0.0.1:1/")
    assert "\n" not in err


def test_dlq_replay_wants_an_id_or_all(capsys):
    assert main(["dlq", "replay", "erp-po-to-wms", "-c", str(ROUTES), "--broker", "amqp://127.0.0.1:1/"]) == 1

    assert "--id ID or --all" in capsys.readouterr().err


def test_dlq_names_an_unknown_route_with_a_suggestion(capsys):
    code = main(["dlq", "list", "erp-po-to-wmz", "-c", str(ROUTES), "--broker", "amqp://guest:guest@127.0.0.1:1/"])

    assert code == 1
    assert 'did you mean "erp-po-to-wms"' in capsys.readouterr().err
