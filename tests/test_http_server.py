"""The bus's HTTP server over real sockets on loopback: what the hostile suite does not cover —
100-continue, HEAD, HTTP/1.0 keep-alive, pipelining behind a deferred answer, a deferred answer
whose confirm never comes, a stop while one is on its way, the headers no proxy vouches for."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from flask import Flask, Response, jsonify, request

from esb.http_server import HttpLimits, HttpServer
from esb.push import DEFER
from tests.hostile.rawhttp import exchange, statuses


class Confirm:
    """A stand-in for `esb.inbound.Storing`: done when `arrive()` is called (from another thread,
    as the broker's I/O thread would), or never."""

    def __init__(self, timeout: float = 5.0):
        self.timeout = timeout
        self.expired = False
        self._callbacks: list = []
        self.arrived = False

    def when_done(self, callback) -> None:
        self._callbacks.append(callback)

    def arrive(self, after: float = 0.0) -> None:
        def later() -> None:
            time.sleep(after)
            self.arrived = True
            for callback in self._callbacks:
                callback()

        threading.Thread(target=later, daemon=True).start()

    def expire(self) -> None:
        self.expired = True


def make_app() -> Flask:
    app = Flask("test-http-server")

    @app.route("/echo", methods=["GET", "HEAD", "POST"])
    def echo():
        headers = {key: value for key, value in request.environ.items() if key.startswith("HTTP_")}
        return jsonify(body=request.get_data(as_text=True), headers=headers)

    @app.post("/in/deferred")
    def deferred():
        confirm = Confirm(timeout=float(request.args.get("timeout", "5")))
        wait = request.args.get("after")
        if wait is not None:
            confirm.arrive(float(wait))
        answer = (lambda: Response("stored", 202)) if wait is not None else \
            (lambda: Response("expired" if confirm.expired else "stored", 503 if confirm.expired else 202))
        request.environ[DEFER](confirm, answer)
        return Response(status=202)  # a placeholder, never sent

    return app


@pytest.fixture
def server():
    limits = HttpLimits(max_header_bytes=4096, max_body_bytes=1024)
    served = HttpServer(make_app(), port=0, limits=limits).start()
    yield served
    served.stop()


def connect(server: HttpServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def read_answers(connection: socket.socket, count: int, timeout: float = 10.0) -> bytes:
    """Read until `count` complete answers (each by its Content-Length) came; what came."""
    connection.settimeout(timeout)
    received = b""
    while complete_answers(received) < count:
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def complete_answers(received: bytes) -> int:
    count, rest = 0, received
    while b"\r\n\r\n" in rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = re.search(rb"Content-Length: (\d+)", head)
        size = int(length.group(1)) if length else 0
        if len(rest) < size:
            break
        rest, count = rest[size:], count + 1
    return count


def test_expect_100_continue_is_answered_before_the_body_is_sent(server):
    with connect(server) as connection:
        connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           b"Expect: 100-continue\r\n\r\n")
        assert connection.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.sendall(b"hello")
        answer = read_answers(connection, 1)
    assert statuses(answer) == [200] and b'"body":"hello"' in answer


def test_head_answers_the_headers_of_get_without_a_body(server):
    answer = exchange(server.host, server.port,
                      b"HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert statuses(head) == [200] and b"Content-Length: " in head and body == b""


def test_http_1_0_closes_unless_asked_to_keep_alive(server):
    plain = exchange(server.host, server.port, b"GET /echo HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in plain and statuses(plain) == [200]
    with connect(server) as connection:
        connection.sendall(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = read_answers(connection, 1)
        assert b"Connection: keep-alive" in first
        connection.sendall(b"GET /echo HTTP/1.0\r\n\r\n")  # still open: a second request is answered
        assert statuses(read_answers(connection, 1)) == [200]


def test_pipelined_requests_are_answered_in_order_behind_a_deferred_one(server):
    with connect(server) as connection:
        connection.sendall(b"POST /in/deferred?after=0.5 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                           b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answers = read_answers(connection, 2)
    assert statuses(answers) == [202, 200]  # the quick one waited for the deferred one
    assert answers.index(b"stored") < answers.index(b'"body"')
    assert time.monotonic() - started >= 0.45


def test_a_deferred_answer_whose_confirm_never_comes_is_answered_at_its_deadline(server):
    with connect(server) as connection:
        connection.sendall(b"POST /in/deferred?timeout=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        started = time.monotonic()
        answer = read_answers(connection, 1)
    assert statuses(answer) == [503] and answer.endswith(b"expired")
    assert 0.9 <= time.monotonic() - started < 5


def test_stop_answers_the_deferred_request_on_its_way_before_closing():
    served = HttpServer(make_app(), port=0).start()
    with connect(served) as connection:
        connection.sendall(b"POST /in/deferred?after=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        time.sleep(0.2)
        stopping = threading.Thread(target=served.stop)
        stopping.start()
        answer = read_answers(connection, 1)
        stopping.join(10)
    assert statuses(answer) == [202] and b"Connection: close" in answer


def test_underscored_and_proxy_headers_never_reach_the_app(server):
    answer = exchange(server.host, server.port,
                      b"GET /echo HTTP/1.1\r\nHost: x\r\nX_API_Key: spoof\r\nX-Forwarded-For: 10.0.0.1\r\n"
                      b"Forwarded: for=10.0.0.1\r\nX-Api-Key: real\r\nConnection: close\r\n\r\n")
    assert b'"HTTP_X_API_KEY":"real"' in answer
    assert b"spoof" not in answer and b"10.0.0.1" not in answer


def test_a_chunked_body_over_the_limit_is_413_and_the_connection_closed(server):
    chunk = b"x" * 800
    raw = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2 + b"0\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(exchange(server.host, server.port, raw)) == [413]


def test_a_head_over_the_limit_is_431(server):
    raw = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 5000 + b"\r\n\r\n"
    assert statuses(exchange(server.host, server.port, raw)) == [431]
