"""The REST sink against a real HTTP server on loopback: outcomes, auth, paths, timeouts."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.rest import RestSink
from esb.envelope import Envelope
from esb.errors import Permanent, Retryable
from esb.routes import Endpoint


@pytest.fixture(scope="module")
def server():
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append({"path": self.path, "method": self.command, "headers": dict(self.headers),
                         "body": body})
            status = int(self.path.split("/status/")[1].split("/")[0]) if "/status/" in self.path else 201
            if "/slow" in self.path:
                time.sleep(1.5)
            answer = json.dumps({"data": {"id": "WMS-77"}}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_POST = do_PUT = _answer  # noqa: N815 - the names http.server wants

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", seen
    httpd.shutdown()


def sink(base_url: str, path: str, system: dict | None = None, **options) -> RestSink:
    return RestSink(Endpoint("rest", {"system": "wms", "path": path, **options}),
                    {"base_url": base_url, "timeout": 1.0, **(system or {})})


ENVELOPE = Envelope(type="purchase_order", source="erp", correlation_id="PO 1/2",
                    payload={"order_number": "PO 1/2", "lines": []})


def test_a_2xx_answer_is_delivered_with_the_message_id_as_idempotency_key_and_the_id_captured(server):
    url, seen = server
    target_id = sink(url, "/orders", capture_id="data.id").deliver(ENVELOPE, b'{"a": 1}', "application/json")
    assert target_id == "WMS-77"
    assert seen[-1]["headers"]["Idempotency-Key"] == ENVELOPE.id
    assert seen[-1]["headers"]["Content-Type"] == "application/json" and seen[-1]["body"] == b'{"a": 1}'


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_server_errors_timeouts_and_throttling_are_retryable(server, status):
    url, _ = server
    with pytest.raises(Retryable, match=str(status)):
        sink(url, f"/status/{status}").deliver(ENVELOPE, b"{}", "application/json")


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_client_errors_are_permanent(server, status):
    url, _ = server
    with pytest.raises(Permanent, match=str(status)):
        sink(url, f"/status/{status}").deliver(ENVELOPE, b"{}", "application/json")


def test_a_target_slower_than_the_timeout_is_retryable(server):
    url, _ = server
    with pytest.raises(Retryable, match="no answer within 1 s"):
        sink(url, "/slow").deliver(ENVELOPE, b"{}", "application/json")


def test_a_target_that_does_not_listen_is_retryable():
    with pytest.raises(Retryable, match="ConnectionError"):
        sink("http://127.0.0.1:9", "/x").deliver(ENVELOPE, b"{}", "application/json")


def test_path_placeholders_are_filled_from_the_document_and_url_encoded(server):
    url, seen = server
    sink(url, "/orders/{order_number}", method="PUT").deliver(ENVELOPE, b'{"x": 1}', "application/json")
    assert seen[-1]["path"] == "/orders/PO%201%2F2" and seen[-1]["method"] == "PUT"


def test_a_placeholder_the_document_lacks_is_permanent(server):
    url, _ = server
    with pytest.raises(Permanent, match="no 'sku'"):
        sink(url, "/items/{sku}").deliver(ENVELOPE, b"{}", "application/json")


@pytest.mark.parametrize(("system", "header", "value"), [
    ({"token": "t0k"}, "Authorization", "Bearer t0k"),
    ({"username": "u", "password": "p"}, "Authorization", "Basic dTpw"),
    ({"api_key": "k3y", "api_key_header": "X-Api-Key"}, "X-Api-Key", "k3y"),
])
def test_the_system_credentials_are_sent(server, system, header, value):
    url, seen = server
    sink(url, "/orders", system).deliver(ENVELOPE, b"{}", "application/json")
    assert seen[-1]["headers"][header] == value


def test_a_target_behind_an_environment_proxy_is_called_through_it(server, monkeypatch):
    url, seen = server
    monkeypatch.setenv("HTTP_PROXY", url)  # the test server plays the proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sink("http://wms.example", "/orders").deliver(ENVELOPE, b'{"a": 1}', "application/json")
    assert seen[-1]["path"] == "http://wms.example/orders"
    assert seen[-1]["headers"]["Idempotency-Key"] == ENVELOPE.id


def test_a_correlation_id_that_would_split_the_request_is_permanent(server):
    url, seen = server
    before = len(seen)
    envelope = Envelope(type="purchase_order", source="erp", correlation_id="PO-1\r\nX-Evil: 1", payload={})
    with pytest.raises(Permanent, match="line break"):
        sink(url, "/orders").deliver(envelope, b"{}", "application/json")
    assert len(seen) == before
