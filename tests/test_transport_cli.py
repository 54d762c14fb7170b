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


def test_dlq_lists_shows_replays_and_purges_dead_letters_of_the_embedded_transport(tmp_path, monkeypatch,
                                                                                    capsys):
    from esb.config import load_config
    from esb.envelope import Envelope
    from esb.errors import Permanent
    from esb.transport import create_transport

    monkeypatch.setenv("ESB_DATA_DIR", str(tmp_path))
    config = load_config(ROUTES)
    transport = create_transport(None, config, data_dir=tmp_path)
    transport.start()
    letters = [Envelope(type="purchase_order", source="erp", payload={"order_number": str(n)})
               for n in range(2)]
    for letter in letters:
        transport.publish_dead_letter("erp-po-to-wms", "wms", letter.amqp_body(), Permanent("HTTP 400"),
                                      message_id=letter.id).result(5)
    transport.stop()
    route = ["erp-po-to-wms", "wms", "-c", str(ROUTES)]

    assert main(["dlq", "list", *route]) == 0
    listed = capsys.readouterr().out
    assert letters[0].id in listed and letters[1].id in listed and "HTTP 400" in listed

    assert main(["dlq", "show", *route, "--id", letters[0].id]) == 0
    shown = capsys.readouterr().out
    assert f'"id": "{letters[0].id}"' in shown and '\\"order_number\\":\\"0\\"' in shown

    assert main(["dlq", "replay", *route, "--id", letters[0].id]) == 0
    assert "replayed 1 dead letter(s)" in capsys.readouterr().out
    assert main(["dlq", "purge", *route, "--all"]) == 0
    assert "purged 1 dead letter(s)" in capsys.readouterr().out
    assert main(["dlq", "show", *route, "--id", letters[1].id]) == 1
    assert [letter.message_id for letter in transport.dead_letters("erp-po-to-wms")] == []
