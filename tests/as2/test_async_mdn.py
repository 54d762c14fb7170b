"""Asynchronous AS2 receipts (MDNs): the bus to the bus over loopback (real HTTP, the embedded
transport), a partner posting a receipt with a wrong MIC or none at all, and the inbound side's
receipt posted to a partner URL that fails first."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing

import pytest
import requests

from adapters.as2 import mdn, receipt_sender, smime
from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions
from tests.as2.test_as2_loopback import ORDER, Recorder, openssl_message, profile, send, trace_steps
from tests.sftp.server import free_port


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.server.shutdown()


@pytest.fixture
def start(tmp_path, monkeypatch):
    """start(name, routes text, port) -> a running bus in tmp_path/name on the embedded transport."""
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    started = []

    def run(name: str, text: str, port: int = 0) -> Runtime:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "routes.yaml").write_text(text)
        options = RuntimeOptions(broker_url=None, data_dir=directory / "data", port=port)
        started.append(Runtime(load_config(directory / "routes.yaml"), options).start())
        return started[-1]

    yield run
    for runtime in started:
        runtime.stop()


def asking_bus(start, pairs, url: str, *, mdn_timeout: str = "10s") -> Runtime:
    """Our side, "bus": orders posted to it go to "acme" over AS2, asking for asynchronous receipts
    at its own POST /as2/acme/mdn."""
    port = free_port()
    return start("bus", f"""
version: 1
systems:
  erp: {{rest: {{base_url: "http://127.0.0.1:9"}}}}
  acme: {profile(pairs, "acme", "bus", url=url, timeout="5s", mdn_timeout=mdn_timeout,
                 mdn_url=f"http://127.0.0.1:{port}/as2/acme/mdn")}
routes:
  - name: to-acme
    from: {{rest: {{system: erp, format: json, auth: none}}}}
    to:
      - as2: {{system: acme}}
    retry: {{attempts: 2, backoff: [100ms]}}
""", port)


def post_order(runtime: Runtime) -> str:
    response = requests.post(f"{runtime.server.url}/in/to-acme", json=ORDER, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_an_order_is_delivered_when_the_partners_asynchronous_receipt_arrives(start, pairs, recorder):
    acme = start("acme", f"""
version: 1
systems:
  bus: {profile(pairs, "bus", "acme")}
  wms: {{rest: {{base_url: "{recorder.url}"}}}}
routes:
  - name: from-bus
    from: {{as2: {{system: bus}}}}
    to:
      - rest: {{system: wms, path: /orders}}
""")
    bus = asking_bus(start, pairs, f"{acme.server.url}/as2/bus")

    message_id = post_order(bus)

    assert json.loads(recorder.wait_for(1)[0]["body"]) == ORDER
    entries = trace_steps(bus, message_id, "delivered")
    assert [entry.step for entry in entries].count("retried") == 0
    delivered = next(entry for entry in entries if entry.step == "delivered")
    assert f"target: asynchronous MDN <{message_id}@esb> processed, MIC " in delivered.detail
    sent = [entry for entry in _all_entries(acme) if entry.step == "receipt_sent"]
    assert len(sent) == 1 and f"taken by {bus.server.url}/as2/acme/mdn" in sent[0].detail


def _all_entries(runtime: Runtime, timeout: float = 10.0) -> list:
    """Every entry of the messages `runtime` accepted on its AS2 route, once a receipt step is in."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime.journal.flush()
        with closing(sqlite3.connect(runtime.journal.target)) as connection:
            ids = [row[0] for row in connection.execute("SELECT DISTINCT message_id FROM esb_trace")]
        entries = [entry for i in ids for entry in runtime.journal.trace(message_id=i)]
        if any(entry.step.startswith("receipt_") for entry in entries):
            return entries
        time.sleep(0.05)
    return []


def receipt_steps(runtime: Runtime) -> list[tuple[str, str]]:
    entries = _all_entries(runtime)
    return [(entry.step, entry.detail) for entry in entries if entry.step.startswith("receipt_")]


class ReceiptPoster:
    """A partner that answers each message 200 with no body, then posts a signed receipt with
    `mic` (None: the right MIC is not known to it, so it sends another) to the bus's MDN URL."""

    def __init__(self, recorder: Recorder, pairs, bus_mdn_url: str, *, wrong_mic: bool):
        self.responses: list[requests.Response] = []
        recorder.answer = (200, "text/plain", b"")
        cert, key, *_ = pairs["acme"]
        original = recorder.server.RequestHandlerClass.do_POST
        poster = self

        def do_post(handler):
            original(handler)
            message_id = recorder.calls[-1]["headers"]["Message-ID"]
            mic = smime.mic(b"something else") if wrong_mic else None
            body, content_type = mdn.build(original_message_id=message_id, reporter="ACME", mic=mic)
            body, content_type = mdn.sign(body, content_type, cert, key)
            poster.responses.append(requests.post(bus_mdn_url, data=body, timeout=10,
                                                  headers={"Content-Type": content_type}))

        recorder.server.RequestHandlerClass.do_POST = do_post


def test_an_asynchronous_receipt_with_a_wrong_mic_is_retried_then_dead_lettered(start, pairs, recorder):
    bus = asking_bus(start, pairs, f"{recorder.url}/as2")
    poster = ReceiptPoster(recorder, pairs, f"{bus.server.url}/as2/acme/mdn", wrong_mic=True)

    message_id = post_order(bus)

    entries = trace_steps(bus, message_id, "dead_lettered")
    assert [entry.step for entry in entries].count("retried") == 1
    assert "is not the MIC we sent" in entries[-1].detail
    assert len(recorder.calls) == 2
    assert recorder.calls[0]["headers"]["Receipt-Delivery-Option"] == f"{bus.server.url}/as2/acme/mdn"
    assert [response.status_code for response in poster.responses] == [200, 200]


def test_no_asynchronous_receipt_within_the_timeout_is_retried_then_dead_lettered(start, pairs, recorder):
    recorder.answer = (200, "text/plain", b"")
    bus = asking_bus(start, pairs, f"{recorder.url}/as2", mdn_timeout="500ms")

    message_id = post_order(bus)

    entries = trace_steps(bus, message_id, "dead_lettered")
    assert [entry.step for entry in entries].count("retried") == 1
    assert f"no asynchronous AS2 receipt from acme for <{message_id}@esb> within 0.5 s" in entries[-1].detail


@pytest.mark.parametrize(("case", "status", "why"), [
    ("signed by another certificate", 400, "the receipt is refused"),
    ("answering no message we sent", 404, "waits for a receipt"),
])
def test_a_receipt_that_does_not_verify_or_answers_nothing_is_refused_and_changes_nothing(
        start, pairs, case, status, why):
    bus = asking_bus(start, pairs, "http://127.0.0.1:9/as2")
    signer = "other" if case == "signed by another certificate" else "acme"
    body, content_type = mdn.build(original_message_id="<nobody@esb>", reporter="ACME", mic=None)
    body, content_type = mdn.sign(body, content_type, *pairs[signer][:2])

    response = requests.post(f"{bus.server.url}/as2/acme/mdn", data=body,
                             headers={"Content-Type": content_type}, timeout=10)

    assert response.status_code == status
    assert why in response.json()["message"]


def test_an_inbound_request_asking_for_an_asynchronous_receipt_gets_it_posted_after_a_failure(
        start, pairs, recorder, openssl, tmp_path, monkeypatch):
    monkeypatch.setattr(receipt_sender, "BACKOFF", (0.3,))
    wms = Recorder()
    bus = start("bus", f"""
version: 1
systems:
  acme: {profile(pairs, "acme", "bus")}
  wms: {{rest: {{base_url: "{wms.url}"}}}}
routes:
  - name: from-acme
    from: {{as2: {{system: acme}}}}
    to:
      - rest: {{system: wms, path: /orders}}
""")
    answers = iter([(503, "text/plain", b"busy"), (200, "text/plain", b"")])

    class FailingFirst:
        def __iter__(self):
            return iter(next(answers))

    recorder.answer = FailingFirst()
    body = openssl_message(openssl, pairs, tmp_path, json.dumps(ORDER).encode())

    response = send(bus, body, message_id="<async1@acme>",
                    headers={"Receipt-Delivery-Option": f"{recorder.url}/mdn"})

    assert response.status_code == 200 and response.content == b""
    posted = recorder.wait_for(2)[1]
    receipt = mdn.parse(posted["body"], posted["headers"]["Content-Type"], pairs["bus"][0])
    assert receipt.signed and receipt.processed and receipt.original_message_id == "<async1@acme>"
    assert receipt.mic == smime.mic(smime.mime_part(json.dumps(ORDER).encode(), "application/json"))
    assert json.loads(wms.wait_for(1)[0]["body"]) == ORDER
    deadline = time.monotonic() + 5
    while len(steps := receipt_steps(bus)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [step for step, _ in steps] == ["receipt_failed", "receipt_sent"]
    assert "answered 503" in steps[0][1]
    wms.server.shutdown()


def test_an_owed_receipt_survives_a_restart_of_the_bus(pairs, recorder, openssl, tmp_path, monkeypatch):
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    monkeypatch.setattr(receipt_sender, "BACKOFF", (0.2,))
    wms = Recorder()
    (tmp_path / "routes.yaml").write_text(f"""
version: 1
systems:
  acme: {profile(pairs, "acme", "bus", partner_mdn_url=f"{recorder.url}/mdn")}
  wms: {{rest: {{base_url: "{wms.url}"}}}}
routes:
  - name: from-acme
    from: {{as2: {{system: acme}}}}
    to:
      - rest: {{system: wms, path: /orders}}
""")

    def bus() -> Runtime:
        options = RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", port=0)
        return Runtime(load_config(tmp_path / "routes.yaml"), options).start()

    recorder.answer = (503, "text/plain", b"down")
    first = bus()
    response = send(first, openssl_message(openssl, pairs, tmp_path, json.dumps(ORDER).encode()),
                    message_id="<restart@acme>")
    recorder.wait_for(1)
    first.stop()
    recorder.answer = (200, "text/plain", b"")
    tried = len(recorder.calls)

    second = bus()
    try:
        posted = recorder.wait_for(tried + 1)[-1]
    finally:
        second.stop()
        wms.server.shutdown()

    assert response.status_code == 200 and response.content == b""  # the profile asks for async receipts
    receipt = mdn.parse(posted["body"], posted["headers"]["Content-Type"], pairs["bus"][0])
    assert receipt.processed and receipt.original_message_id == "<restart@acme>"
