"""End to end on the real broker and a real sshd: a receipt file left on the partner's server is
picked up over SFTP, mapped, validated, published, and written back to the server by the sftp sink
under a name from the message; the original ends in processed/ on the server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pika
import pytest

from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT
from tests.integration.test_flatfile_runtime import wait_for

pytestmark = pytest.mark.broker

CASES = PROJECT / "mappings" / "wms" / "goods_receipt.in.cases"


def write_routes(directory: Path, route: str, broker_url: str, sshd, remote: Path) -> Path:
    settings = sshd.settings()
    text = f"""
version: 1
settings: {{broker_url: "{broker_url}", data_dir: data}}
systems:
  partner:
    sftp: {{host: 127.0.0.1, port: {sshd.port}, user: {settings["user"]}, key_file: {sshd.user_key},
           known_hosts: {sshd.known_hosts}, reconnect_backoff: 0.05}}
routes:
  - name: {route}
    from: {{sftp: {{system: partner, dir: {remote / "outbound"}, pattern: "GR_*.csv", encoding: gbk,
                   per: group, group_by: receipt_no, min_age: 0, poll: 200ms}}}}
    map: {PROJECT / "mappings" / "wms" / "goods_receipt.in.yaml"}
    validate: goods_receipt
    to:
      - sftp: {{system: partner, dir: {remote / "inbound"}, format: json,
                name_template: "{{receipt_number}}_{{received_at:%Y%m%d%H%M%S}}.{{ext}}"}}
"""
    path = directory / "routes.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def runtime(tmp_path, unique_name, broker_url, sshd):
    remote = tmp_path / "partner-home"
    config = load_config(write_routes(tmp_path, unique_name, broker_url, sshd, remote))
    bus = Runtime(config, RuntimeOptions(broker_url=broker_url, data_dir=tmp_path / "data", port=0,
                                         http=False)).start()
    yield bus, remote
    bus.stop()
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in (q.name for q in bus.transport.topology.queues):
        channel.queue_delete(queue)
    connection.close()


def test_a_file_on_the_partners_server_comes_back_as_one_file_per_receipt(runtime):
    bus, remote = runtime
    wait_for((remote / "outbound" / ".claimed").is_dir)  # the source made its folders on the server
    shutil.copy(CASES / "two_receipts_gbk.input.csv", remote / "outbound" / "GR_1.csv")

    inbound = remote / "inbound"
    wait_for(lambda: inbound.is_dir() and len(list(inbound.glob("GR-*.json"))) == 2)

    names = sorted(path.name for path in inbound.glob("GR-*.json"))
    assert [name.split("_")[0] for name in names] == ["GR-2026-000123", "GR-2026-000124"]
    assert all(len(name.split("_")[1]) == len("20261203074501.json") for name in names)
    payload = json.loads((inbound / names[0]).read_text(encoding="utf-8"))
    assert payload["receipt_number"] == "GR-2026-000123"
    assert wait_for((remote / "outbound" / "processed" / "GR_1.csv").exists)
    assert bus._adapters_ready() is None
