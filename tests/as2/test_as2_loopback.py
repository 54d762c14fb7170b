"""The bus to the bus over AS2 on loopback (real HTTP, the embedded transport), and an inbound
endpoint against messages built by the `openssl cms` command line."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from adapters.as2 import mdn, smime
from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions

ORDER = {"order_number": "SO-4711", "lines": [{"sku": "A-1", "quantity": 3}]}


class Recorder:
    """A real HTTP server on loopback recording each POST (path, headers, body); `answer` is what
    it replies: (status, content type, body)."""

    def __init__(self):
        self.calls: list[dict] = []
        self.answer = (201, "application/json", b"{}")
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server wants
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, content_type, answer = recorder.answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.calls) < count:
            time.sleep(0.05)
        assert len(self.calls) >= count, f"{len(self.calls)} calls, expected {count}"
        return self.calls


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.server.shutdown()


def profile(pairs, partner: str, us: str, **extra) -> str:
    options = {"as2_id": partner.upper(), "our_as2_id": us.upper(), "partner_cert": str(pairs[partner][2]),
               "our_cert": str(pairs[us][2]), "our_key": str(pairs[us][3]), **extra}
    return json.dumps({"as2": options})


@pytest.fixture
def start(tmp_path, monkeypatch):
    """start(name, routes text) -> a running bus in tmp_path/name on the embedded transport."""
    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    started = []

    def run(name: str, text: str) -> Runtime:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "routes.yaml").write_text(text)
        options = RuntimeOptions(broker_url=None, data_dir=directory / "data", port=0)
        started.append(Runtime(load_config(directory / "routes.yaml"), options).start())
        return started[-1]

    yield run
    for runtime in started:
        runtime.stop()


def receiving_bus(start, pairs, recorder, **extra) -> Runtime:
    """The partner's side, "acme": receives from "bus" over AS2 and posts to the recorder."""
    return start("acme", f"""
version: 1
systems:
  bus: {profile(pairs, "bus", "acme", **extra)}
  wms: {{rest: {{base_url: "{recorder.url}"}}}}
routes:
  - name: from-bus
    from: {{as2: {{system: bus}}}}
    to:
      - rest: {{system: wms, path: /orders}}
""")


def sending_bus(start, pairs, url: str) -> Runtime:
    """Our side, "bus": a REST endpoint whose orders go to partner "acme" over AS2."""
    return start("bus", f"""
version: 1
systems:
  erp: {{rest: {{base_url: "http://127.0.0.1:9"}}}}
  acme: {profile(pairs, "acme", "bus", url=url, timeout="5s")}
routes:
  - name: to-acme
    from: {{rest: {{system: erp, format: json, auth: none}}}}
    to:
      - as2: {{system: acme}}
    retry: {{attempts: 2, backoff: [100ms]}}
""")


def trace_steps(runtime: Runtime, message_id: str, final: str, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runtime.journal.flush()
        entries = runtime.journal.trace(message_id=message_id)
        if any(entry.step == final for entry in entries):
            return entries
        time.sleep(0.05)
    raise AssertionError(f"no {final} step in {[entry.step for entry in entries]}")


def post_order(runtime: Runtime) -> str:
    response = requests.post(f"{runtime.server.url}/in/to-acme", json=ORDER, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_an_order_crosses_from_bus_to_bus_signed_encrypted_and_receipted(start, pairs, recorder):
    acme = receiving_bus(start, pairs, recorder)
    bus = sending_bus(start, pairs, f"{acme.server.url}/as2/bus")

    message_id = post_order(bus)

    delivered = recorder.wait_for(1)[0]
    assert json.loads(delivered["body"]) == ORDER
    entries = trace_steps(bus, message_id, "delivered")
    assert "dead_lettered" not in [entry.step for entry in entries]
    delivered_entry = next(entry for entry in entries if entry.step == "delivered")
    assert f"target: MDN <{message_id}@esb> processed, MIC " in delivered_entry.detail


@pytest.mark.parametrize("answer", [
    (200, "text/plain", b"thanks"),
    (500, "text/plain", b"down"),
], ids=["no receipt", "http error"])
def test_a_partner_without_a_good_receipt_is_retried_then_dead_lettered(start, pairs, recorder, answer):
    recorder.answer = answer
    bus = sending_bus(start, pairs, f"{recorder.url}/as2")

    message_id = post_order(bus)

    entries = trace_steps(bus, message_id, "dead_lettered")
    assert [entry.step for entry in entries].count("retried") == 1
    assert len(recorder.calls) == 2
    assert recorder.calls[0]["headers"]["Content-Type"].startswith("application/pkcs7-mime")


def test_a_receipt_with_a_wrong_mic_is_retried_then_dead_lettered(start, pairs, recorder):
    bus = sending_bus(start, pairs, f"{recorder.url}/as2")
    acme_cert, acme_key, *_ = pairs["acme"]

    class WrongMic:  # answers each message with a signed positive receipt carrying another MIC
        def __iter__(self):
            message_id = recorder.calls[-1]["headers"]["Message-ID"]
            body, content_type = mdn.build(original_message_id=message_id, reporter="ACME",
                                           mic=smime.mic(b"something else"))
            body, content_type = mdn.sign(body, content_type, acme_cert, acme_key)
            return iter((200, content_type, body))

    recorder.answer = WrongMic()

    message_id = post_order(bus)

    entries = trace_steps(bus, message_id, "dead_lettered")
    assert "is not the MIC we sent" in entries[-1].detail


# --- the inbound endpoint against the openssl command line ------------------------------------

def openssl_message(openssl, pairs, tmp_path, payload: bytes, *, signer: str = "acme") -> bytes:
    """A message built the way an independent partner would: openssl cms -sign, then -encrypt."""
    (tmp_path / "part").write_bytes(smime.mime_part(payload, "application/json"))
    cert_path, key_path = pairs[signer][2], pairs[signer][3]
    signed = subprocess.run([openssl, "cms", "-sign", "-binary", "-crlfeol", "-md", "sha256", "-in",
                             str(tmp_path / "part"), "-signer", str(cert_path), "-inkey", str(key_path),
                             "-outform", "SMIME"], capture_output=True, check=True).stdout
    (tmp_path / "signed").write_bytes(signed)
    return subprocess.run([openssl, "cms", "-encrypt", "-binary", "-aes-256-cbc", "-in",
                           str(tmp_path / "signed"), "-outform", "DER", str(pairs["bus"][2])],
                          capture_output=True, check=True).stdout


def send(runtime: Runtime, body: bytes, *, sender: str = "ACME", message_id: str = "<m1@acme>",
         content_type: str = smime.ENVELOPED_TYPE, headers: dict | None = None):
    """POST an AS2 message to the bus's endpoint for acme; `headers` are added (or replace)."""
    headers = {"AS2-From": sender, "AS2-To": "BUS", "Message-ID": message_id, "Content-Type": content_type,
               "Disposition-Notification-To": "ops@acme",
               "Disposition-Notification-Options": "signed-receipt-protocol=optional, pkcs7-signature; "
                                                   "signed-receipt-micalg=optional, sha-256",
               **(headers or {})}
    return requests.post(f"{runtime.server.url}/as2/acme", data=body, headers=headers, timeout=10)


def inbound_bus(start, pairs, recorder) -> Runtime:
    return start("bus", f"""
version: 1
systems:
  acme: {profile(pairs, "acme", "bus")}
  wms: {{rest: {{base_url: "{recorder.url}"}}}}
routes:
  - name: from-acme
    from: {{as2: {{system: acme}}}}
    to:
      - rest: {{system: wms, path: /orders}}
""")


def test_an_openssl_partner_gets_a_signed_receipt_with_the_mic_of_what_it_signed(start, pairs, recorder,
                                                                                openssl, tmp_path):
    bus = inbound_bus(start, pairs, recorder)
    payload = json.dumps(ORDER).encode()

    response = send(bus, openssl_message(openssl, pairs, tmp_path, payload))

    receipt = mdn.parse(response.content, response.headers["Content-Type"], pairs["bus"][0])
    assert receipt.signed and receipt.processed, receipt
    assert receipt.mic == smime.mic(smime.mime_part(payload, "application/json"))
    assert receipt.original_message_id == "<m1@acme>"
    assert json.loads(recorder.wait_for(1)[0]["body"]) == ORDER


@pytest.mark.parametrize(("case", "error", "why"), [
    ("unknown partner", "authentication-failed", "unknown trading partner"),
    ("signed by another certificate", "authentication-failed", "partner's certificate"),
    ("encrypted for someone else", "decryption-failed", "cannot be decrypted"),
    ("not encrypted", "insufficient-message-security", "not encrypted"),
])
def test_a_refused_message_gets_a_negative_receipt_naming_why_and_nothing_enters_the_route(
        start, pairs, recorder, openssl, tmp_path, case, error, why):
    bus = inbound_bus(start, pairs, recorder)
    payload = json.dumps(ORDER).encode()
    body = openssl_message(openssl, pairs, tmp_path, payload)
    sender, content_type = "ACME", smime.ENVELOPED_TYPE
    if case == "unknown partner":
        sender = "MALLORY"
    elif case == "signed by another certificate":
        body = openssl_message(openssl, pairs, tmp_path, payload, signer="other")
    elif case == "encrypted for someone else":
        body = smime.encrypt(smime.mime_part(payload, "application/json"), pairs["other"][0])
    else:
        body, content_type = payload, "application/json"

    response = send(bus, body, sender=sender, content_type=content_type)

    receipt = mdn.parse(response.content, response.headers["Content-Type"], pairs["bus"][0])
    assert not receipt.processed
    assert receipt.disposition.endswith(f"error: {error}")
    assert why in receipt.text
    assert receipt.mic is None
    time.sleep(0.3)
    assert recorder.calls == []


def test_a_body_over_the_limit_is_a_413_and_nothing_enters_the_route(start, pairs, recorder):
    bus = start("bus", f"""
version: 1
systems:
  acme: {profile(pairs, "acme", "bus", max_body_bytes=1000)}
  wms: {{rest: {{base_url: "{recorder.url}"}}}}
routes:
  - name: from-acme
    from: {{as2: {{system: acme}}}}
    to:
      - rest: {{system: wms, path: /orders}}
""")

    response = send(bus, b"x" * 1001)

    assert response.status_code == 413
    assert recorder.calls == []


def test_a_message_sent_twice_is_receipted_twice_and_delivered_once(start, pairs, recorder, openssl,
                                                                    tmp_path):
    bus = inbound_bus(start, pairs, recorder)
    body = openssl_message(openssl, pairs, tmp_path, json.dumps(ORDER).encode())

    first, second = send(bus, body, message_id="<twice@acme>"), send(bus, body, message_id="<twice@acme>")

    for response in (first, second):
        assert mdn.parse(response.content, response.headers["Content-Type"], pairs["bus"][0]).processed
    recorder.wait_for(1)
    time.sleep(0.5)
    assert len(recorder.calls) == 1


@pytest.mark.parametrize(("case", "error"), [
    ("random bytes", "decryption-failed"),
    ("no MIME part inside", "decryption-failed"),
    ("a signature that is no CMS", "authentication-failed"),
])
def test_a_malformed_message_gets_a_negative_receipt_never_a_500(start, pairs, recorder, case, error):
    bus = inbound_bus(start, pairs, recorder)
    bus_cert = pairs["bus"][0]
    if case == "random bytes":
        body = b"\x30\x82" + bytes(range(256)) * 4
    elif case == "no MIME part inside":
        body = smime.encrypt(b"just text, no headers", bus_cert)
    else:
        signed, content_type = smime.sign(smime.mime_part(b"{}", "application/json"), *pairs["acme"][:2])
        # the signature part claims to be binary: its base64 text is then read as (no) DER
        broken = signed.replace(b"Transfer-Encoding: base64\r\n", b"Transfer-Encoding: binary\r\n")
        body = smime.encrypt(f"Content-Type: {content_type}\r\n\r\n".encode() + broken, bus_cert)

    response = send(bus, body)

    assert response.status_code == 200
    receipt = mdn.parse(response.content, response.headers["Content-Type"], bus_cert)
    assert receipt.disposition.endswith(f"error: {error}"), receipt
    assert recorder.calls == []
