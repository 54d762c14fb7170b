"""End to end on the real broker: a real HTTP client posts to the bus, the bus delivers to a
real HTTP server on loopback."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pika
import pytest
import requests

from esb.config import load_config
from esb.credentials import Credentials, Principal, digest
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

pytestmark = pytest.mark.broker

SENDER_KEY = "sender-secret"
ORDER = json.loads((PROJECT / "schemas" / "purchase_order.v1.json").read_text())["examples"][0]


class Target:
    """A real HTTP server on loopback that records every call; `script[path]` lists the status
    codes to answer in turn (then 201 for ever)."""

    def __init__(self):
        self.calls: dict[str, list[dict]] = defaultdict(list)
        self.script: dict[str, list[int]] = defaultdict(list)
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server wants
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with target.lock:
                    target.calls[self.path].append({"body": json.loads(body), "headers": dict(self.headers)})
                    status = target.script[self.path].pop(0) if target.script[self.path] else 201
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                answer = json.dumps({"id": f"T-{len(target.calls[self.path])}"}).encode()
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, path: str, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.calls[path]) >= count:
                    return list(self.calls[path])
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.calls[path])} calls, expected {count}")

    def close(self):
        self.server.shutdown()


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def write_routes(directory: Path, route: str, target_url: str, broker_url: str, *,
                 down_url: str | None = None, attempts: int = 4, archive_filter: str | None = None,
                 route_filter: str | None = None) -> Path:
    second = down_url or target_url
    archive_filter_option = f", filter: \"{archive_filter}\"" if archive_filter else ""
    route_filter_line = f'    filter: "{route_filter}"\n' if route_filter else ""
    text = f"""
version: 1
settings: {{broker_url: "{broker_url}", data_dir: data}}
systems:
  erp: {{rest: {{base_url: "http://127.0.0.1:9/erp"}}}}
  wms: {{rest: {{base_url: "{target_url}", timeout: 2s}}}}
  archive: {{rest: {{base_url: "{second}", timeout: 2s}}}}
routes:
  - name: {route}
    from: {{rest: {{system: erp, format: json}}}}
    validate: purchase_order
{route_filter_line}    to:
      - rest: {{system: wms, path: /wms/orders}}
      - rest: {{system: archive, path: /archive/orders{archive_filter_option}}}
    retry: {{attempts: {attempts}, backoff: [200ms, 400ms]}}
"""
    path = directory / "routes.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def bus(tmp_path, unique_name, target, broker_url):
    """A running bus (in this process) with one route `unique_name` delivering to `target`."""
    started = []

    def start(**route_options) -> Runtime:
        config = load_config(write_routes(tmp_path, unique_name, target.url, broker_url, **route_options))
        options = RuntimeOptions(broker_url=broker_url, data_dir=tmp_path / "data", port=0,
                                 credentials=Credentials.from_environment(
                                     {"ESB_API_KEYS": f"erp:sender={unique_name}:{SENDER_KEY}"}))
        runtime = Runtime(config, options)
        runtime.start(app=create_app(runtime))  # as `esb run` serves it: /readyz for viewers only
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()
        _delete_queues(broker_url, runtime)


def _delete_queues(broker_url: str, runtime: Runtime) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in (q.name for q in runtime.transport.topology.queues):
        channel.queue_delete(queue)
    connection.close()


def post(runtime: Runtime, route: str, document, key: str | None = SENDER_KEY, **headers):
    if key:
        headers["X-API-Key"] = key
    return requests.post(f"{runtime.server.url}/in/{route}", json=document, headers=headers, timeout=30)


def test_a_valid_order_is_accepted_after_the_confirm_and_delivered_to_both_targets(bus, target, unique_name):
    runtime = bus()
    response = post(runtime, unique_name, ORDER)

    assert response.status_code == 202
    message_id = response.json()["id"]
    wms = target.wait_for("/wms/orders", 1)
    archive = target.wait_for("/archive/orders", 1)
    assert wms[0]["body"]["order_number"] == ORDER["order_number"] == archive[0]["body"]["order_number"]
    assert wms[0]["headers"]["Idempotency-Key"] == message_id
    deadline = time.monotonic() + 10  # a target has the call before the bus journals its answer
    while True:
        runtime.journal.flush()
        steps = [entry.step for entry in runtime.journal.trace(message_id=message_id)]
        if steps.count("delivered") == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert steps[:2] == ["received", "published"] and steps.count("delivered") == 2


def test_an_invalid_order_is_refused_with_every_problem_and_nothing_is_published(bus, target, unique_name):
    runtime = bus()
    bad = {**ORDER, "warehouse": None, "lines": [{**ORDER["lines"][0], "quantity": -1}]}

    response = post(runtime, unique_name, bad)

    assert response.status_code == 422
    paths = {problem["path"] for problem in response.json()["problems"]}
    assert {"warehouse", "lines[0].quantity"} <= paths
    time.sleep(0.5)
    assert target.calls["/wms/orders"] == []


def test_a_body_that_is_not_json_is_a_400_naming_the_position(bus, unique_name):
    runtime = bus()
    headers = {"X-API-Key": SENDER_KEY, "Content-Type": "application/json"}
    response = requests.post(f"{runtime.server.url}/in/{unique_name}", data=b'{"order_number": ',
                             headers=headers, timeout=10)
    assert response.status_code == 400 and "JSON" in response.json()["message"]


def test_no_key_is_401_and_a_key_for_another_route_is_403(bus, unique_name):
    runtime = bus()
    missing = post(runtime, unique_name, ORDER, key=None)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="esb"'
    assert missing.json() == {"error": "unauthorized",
                              "message": "a valid API key (X-API-Key) or bearer token is required"}
    assert post(runtime, unique_name, ORDER, key="wrong").status_code == 401
    runtime.options.credentials.add(digest("other"), Principal("wms", frozenset({"sender=another-route"})))
    foreign = post(runtime, unique_name, ORDER, key="other")
    assert foreign.status_code == 403
    assert foreign.json() == {"error": "forbidden", "message": f'"wms" may not post to route "{unique_name}"'}


def test_a_body_over_the_limit_is_413_whether_its_length_is_declared_or_chunked(bus, target, unique_name):
    runtime = bus()
    url = f"{runtime.server.url}/in/{unique_name}"
    oversized = b" " * (1_048_576 + 1)
    headers = {"X-API-Key": SENDER_KEY, "Content-Type": "application/json"}

    declared = requests.post(url, data=oversized, headers=headers, timeout=30)
    chunked = requests.post(url, data=iter([oversized[:600_000], oversized[600_000:]]), headers=headers,
                            timeout=30)

    expected = {"error": "too_large", "message": "the body is larger than the limit of 1048576 bytes"}
    assert declared.status_code == 413 and declared.json() == expected
    assert chunked.status_code == 413 and chunked.json() == expected
    time.sleep(0.3)
    assert target.calls["/wms/orders"] == []


def test_a_repeated_post_returns_the_first_id_and_is_delivered_once(bus, target, unique_name):
    runtime = bus()
    first = post(runtime, unique_name, ORDER, **{"Idempotency-Key": "erp-po-4500012345-0"})
    again = post(runtime, unique_name, ORDER, **{"Idempotency-Key": "erp-po-4500012345-0"})
    same_document = post(runtime, unique_name, ORDER)  # no header: the business key still matches
    revised = post(runtime, unique_name, {**ORDER, "revision": 1})  # another revision: a new document

    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert same_document.status_code == 200 and same_document.json()["id"] == first.json()["id"]
    assert revised.status_code == 202
    calls = target.wait_for("/wms/orders", 2)
    time.sleep(1.0)
    assert len(target.calls["/wms/orders"]) == len(calls) == 2


def test_one_document_posted_many_times_at_once_is_stored_once_and_every_answer_names_its_id(
        bus, target, unique_name):
    """The posts arrive together: while the first waits for its confirm the others find its key
    pending; each of those is run again on an app thread (the loop never waits) and answered with
    the first id once it is confirmed."""
    runtime = bus()
    document = {**ORDER, "order_number": f"PO-{unique_name}"}
    barrier = threading.Barrier(24)
    answers: list[requests.Response] = []

    def send() -> None:
        with requests.Session() as session:
            session.get(f"{runtime.server.url}/healthz", timeout=10)  # the connection, opened before
            barrier.wait(timeout=10)
            answers.append(session.post(f"{runtime.server.url}/in/{unique_name}", json=document, timeout=30,
                                        headers={"X-API-Key": SENDER_KEY}))

    for _round in range(5):  # the timing varies: a few rounds make the pending key all but certain
        answers.clear()
        barrier.reset()
        document = {**document, "order_number": f"PO-{unique_name}-{_round}"}
        threads = [threading.Thread(target=send) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * 23 + [202]
        assert len({answer.json()["id"] for answer in answers}) == 1
    assert runtime.server.offloaded > 0
    calls = target.wait_for("/wms/orders", 5)
    time.sleep(1.0)
    assert len(target.calls["/wms/orders"]) == len(calls) == 5


def test_a_target_that_fails_twice_then_succeeds_gets_the_message_on_the_third_try(bus, target, unique_name):
    target.script["/wms/orders"] = [503, 503]
    runtime = bus()
    message_id = post(runtime, unique_name, ORDER).json()["id"]

    calls = target.wait_for("/wms/orders", 3)

    assert [call["headers"]["Idempotency-Key"] for call in calls] == [message_id] * 3
    runtime.journal.flush()
    time.sleep(0.3)
    runtime.journal.flush()
    steps = [e.step for e in runtime.journal.trace(message_id=message_id) if e.destination == "wms"]
    assert steps == ["retried", "retried", "delivered"]


def test_a_target_that_answers_400_sends_the_message_to_the_dead_letter_queue(bus, target, unique_name):
    target.script["/wms/orders"] = [400]
    runtime = bus()
    message_id = post(runtime, unique_name, ORDER).json()["id"]

    target.wait_for("/wms/orders", 1)
    deadline = time.monotonic() + 10
    while not (dead := runtime.transport.dead_letters(unique_name, "wms")) and time.monotonic() < deadline:
        time.sleep(0.1)

    assert [d.message_id for d in dead] == [message_id]
    assert "400" in dead[0].summary()["last_error"]
    time.sleep(0.5)
    assert len(target.calls["/wms/orders"]) == 1  # not retried


def test_one_target_down_does_not_hold_up_the_other(bus, target, unique_name):
    runtime = bus(down_url="http://127.0.0.1:9", attempts=10)  # port 9: nothing listens

    for number in range(5):
        assert post(runtime, unique_name, {**ORDER, "order_number": f"PO-{number}"}).status_code == 202

    assert len(target.wait_for("/wms/orders", 5, timeout=10)) == 5


def test_sigterm_mid_stream_loses_no_accepted_message(tmp_path, unique_name, target, broker_url):
    routes = write_routes(tmp_path, unique_name, target.url, broker_url)
    env = {**os.environ, "ESB_API_KEYS": f"erp:sender={unique_name}:{SENDER_KEY}", "ESB_HTTP_PORT": "0"}
    process = subprocess.Popen([sys.executable, "-m", "esb", "run", "-c", str(routes), "--port", "0"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = _listening_url(process)
        accepted = []
        for number in range(40):
            order = {**ORDER, "order_number": f"SIG-{number}"}
            response = requests.post(f"{url}/in/{unique_name}", json=order,
                                     headers={"X-API-Key": SENDER_KEY}, timeout=30)
            assert response.status_code == 202
            accepted.append(f"SIG-{number}")
            if number == 20:
                process.send_signal(signal.SIGTERM)
                break
        assert process.wait(60) == 0
        # Start again: whatever was accepted and not yet delivered is delivered now.
        again = subprocess.Popen([sys.executable, "-m", "esb", "run", "-c", str(routes), "--port", "0"],
                                 env=env, stderr=subprocess.PIPE, text=True)
        try:
            _listening_url(again)
            calls = target.wait_for("/wms/orders", len(accepted), timeout=30)
        finally:
            again.send_signal(signal.SIGTERM)
            again.wait(60)
        delivered = {call["body"]["order_number"] for call in calls}
        assert set(accepted) <= delivered
    finally:
        if process.poll() is None:
            process.kill()
        config = load_config(routes)
        from esb.transport.topology import Topology

        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        channel = connection.channel()
        for queue in (q.name for q in Topology.from_routes(config.routes).queues):
            channel.queue_delete(queue)
        connection.close()


def _listening_url(process: subprocess.Popen) -> str:
    for line in process.stderr:
        if "listening on " in line:
            # keep the pipe drained, or the child blocks on a full pipe
            threading.Thread(target=lambda: process.stderr.read(), daemon=True).start()
            return line.rsplit("listening on ", 1)[1].strip()
    raise AssertionError(f"esb run exited with {process.wait()} before listening")


def test_an_array_of_documents_becomes_one_message_each_all_confirmed_before_the_answer(bus, target,
                                                                                       unique_name):
    runtime = bus()
    orders = [{**ORDER, "order_number": f"BATCH-{n}"} for n in range(3)]

    response = post(runtime, unique_name, orders)

    assert response.status_code == 202 and len(response.json()["ids"]) == 3
    delivered = {call["body"]["order_number"] for call in target.wait_for("/wms/orders", 3)}
    assert delivered == {"BATCH-0", "BATCH-1", "BATCH-2"}


def test_an_array_with_one_invalid_document_is_refused_whole(bus, target, unique_name):
    runtime = bus()
    orders = [{**ORDER, "order_number": "GOOD-1"}, {**ORDER, "order_number": "BAD-1", "lines": []}]

    response = post(runtime, unique_name, orders)

    assert response.status_code == 422
    assert any(problem["path"].startswith("[1].lines") for problem in response.json()["problems"])
    time.sleep(0.5)
    assert target.calls["/wms/orders"] == []


def test_logs_name_the_message_and_route_and_never_the_key(bus, unique_name, caplog):
    runtime = bus()
    with caplog.at_level(logging.DEBUG):
        message_id = post(runtime, unique_name, ORDER).json()["id"]
        post(runtime, unique_name, {"order_number": "no lines"})

    accepted = [r for r in caplog.records if getattr(r, "message_id", None) == message_id]
    assert accepted and accepted[0].route == unique_name
    assert any(getattr(r, "outcome", "") == "rejected:validation" for r in caplog.records)
    assert all(SENDER_KEY not in r.getMessage() and "guest:guest" not in r.getMessage()
               for r in caplog.records)


def test_readiness_names_the_broker_when_it_is_gone(bus, unique_name):
    runtime = bus()
    runtime.options.credentials.add(digest("viewer-key"), Principal("probe", frozenset({"viewer"})))
    url, key = f"{runtime.server.url}/readyz", {"X-API-Key": "viewer-key"}
    assert requests.get(url, timeout=5).status_code == 401  # it says what fails: not for anyone
    ready = requests.get(url, headers=key, timeout=5)
    assert ready.status_code == 200 and set(ready.json()["checks"]) == {"broker", "journal", "pollers",
                                                                         "adapters"}

    runtime.transport.stop(timeout=1)
    not_ready = requests.get(url, headers=key, timeout=5)

    assert not_ready.status_code == 503 and "broker" in not_ready.json()["failing"]
    assert post(runtime, unique_name, ORDER).status_code == 503  # never a 202 that was not stored


def test_a_destination_filter_sends_each_order_only_where_it_matches(bus, target, unique_name):
    runtime = bus(archive_filter="payload.warehouse == 'WH2'")

    post(runtime, unique_name, {**ORDER, "order_number": "F-1", "warehouse": "WH1"})
    post(runtime, unique_name, {**ORDER, "order_number": "F-2", "warehouse": "WH2"})

    assert {c["body"]["order_number"] for c in target.wait_for("/wms/orders", 2)} == {"F-1", "F-2"}
    assert [c["body"]["order_number"] for c in target.wait_for("/archive/orders", 1)] == ["F-2"]
    time.sleep(0.5)
    assert len(target.calls["/archive/orders"]) == 1


def test_an_order_the_route_filter_stops_is_accepted_and_traced_as_filtered(bus, target, unique_name):
    runtime = bus(route_filter="payload.warehouse == 'WH9'")

    response = post(runtime, unique_name, {**ORDER, "order_number": "NOWHERE-1", "warehouse": "WH1"})

    assert response.status_code == 202
    message_id = response.json()["id"]
    runtime.journal.flush()
    assert [e.step for e in runtime.journal.trace(message_id=message_id)] == ["received", "filtered"]
    time.sleep(0.5)
    assert target.calls["/wms/orders"] == [] and target.calls["/archive/orders"] == []
