"""Inbound de-duplication through a real runtime on the embedded transport (no consumers, so
what was published stays countable in the work queue): a repeat is caught by its request key
*or* its business key, a reused request key with another body is a 409, and a claim another
process left unconfirmed is published again under its own id."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from esb.config import load_config
from esb.credentials import Credentials
from esb.idempotency import Key, body_fingerprint
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

ORDER = json.loads((PROJECT / "schemas" / "purchase_order.v1.json").read_text())["examples"][0]
ROUTE = "po-in"
SENDER = {"X-API-Key": "sender-key"}
ROUTES = f"""
version: 1
systems:
  erp: {{rest: {{base_url: "http://127.0.0.1:9/erp"}}}}
  wms: {{rest: {{base_url: "http://127.0.0.1:9/wms"}}}}
routes:
  - name: {ROUTE}
    from: {{rest: {{system: erp, format: json}}}}
    validate: purchase_order
    to:
      - rest: {{system: wms, path: /orders}}
"""


def start_runtime(tmp_path: Path) -> Runtime:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    credentials = Credentials.from_environment({"ESB_API_KEYS": f"erp:sender={ROUTE}:sender-key"})
    options = RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", http=False, consumers=False,
                             credentials=credentials, publish_timeout=2.0)
    runtime = Runtime(load_config(path), options)
    runtime.start(app=create_app(runtime))
    return runtime


@pytest.fixture
def runtime(tmp_path):
    started = start_runtime(tmp_path)
    yield started
    started.stop()


def queued_ids(runtime: Runtime) -> list[str]:
    rows = runtime.transport._store.execute("SELECT message_id FROM messages WHERE queue = ?",
                                            (f"esb.{ROUTE}.wms",))
    return [row[0] for row in rows.fetchall()]


def body(document: dict) -> bytes:
    return json.dumps(document).encode()


def post(runtime: Runtime, document: dict, **headers):
    return runtime.app.test_client().post(f"/in/{ROUTE}", data=body(document),
                                          content_type="application/json", headers={**SENDER, **headers})


def test_the_same_order_posted_with_two_different_headers_is_published_once(runtime):
    first = post(runtime, ORDER, **{"Idempotency-Key": "client-key-1"})
    second = post(runtime, ORDER, **{"Idempotency-Key": "client-key-2"})
    without_header = post(runtime, ORDER)

    assert first.status_code == 202
    assert (second.status_code, second.json["duplicate"], second.json["id"]) == (200, True, first.json["id"])
    assert (without_header.status_code, without_header.json["id"]) == (200, first.json["id"])
    assert queued_ids(runtime) == [first.json["id"]]


def test_another_revision_of_the_order_is_a_new_message(runtime):
    first = post(runtime, ORDER)
    revised = post(runtime, {**ORDER, "revision": 1})

    assert (first.status_code, revised.status_code) == (202, 202)
    assert sorted(queued_ids(runtime)) == sorted([first.json["id"], revised.json["id"]])


def test_the_same_header_with_another_body_is_a_409_naming_the_key(runtime):
    post(runtime, ORDER, **{"Idempotency-Key": "client-key-7"})

    another_order = {**ORDER, "order_number": "4500099999"}
    answer = post(runtime, another_order, **{"Idempotency-Key": "client-key-7"})

    assert answer.status_code == 409
    assert answer.json["error"] == "conflict" and '"client-key-7"' in answer.json["message"]
    assert len(queued_ids(runtime)) == 1


def test_a_repost_of_a_claim_a_dead_process_left_unconfirmed_is_published_under_its_id(runtime):
    # a process claimed the keys, published, and was killed before it saw the confirm
    dead_id = str(uuid.uuid4())
    keys = [Key("client-key-9", body_fingerprint(body(ORDER))),
            Key(f"erp:purchase_order:{ORDER['order_number']}:0")]
    runtime.idempotency.claim(ROUTE, keys, dead_id, owner="a-process-killed-with-kill-9")

    answer = post(runtime, ORDER, **{"Idempotency-Key": "client-key-9"})
    again = post(runtime, ORDER, **{"Idempotency-Key": "client-key-10"})

    assert (answer.status_code, answer.json["id"]) == (202, dead_id)
    assert (again.status_code, again.json["id"]) == (200, dead_id)
    assert queued_ids(runtime) == [dead_id]

