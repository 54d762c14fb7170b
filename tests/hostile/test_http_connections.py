"""Connection exhaustion, over raw sockets with small counts (`bench/hostile_connections.py` has
the issue's): idle and slowloris connections are held without starving valid requests, and each
is closed once its deadline passed. The bus's own app, served by a second server whose limits are
short so the tests end quickly; the deadlines asserted are generous (no timing is measured)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import requests

from esb.http_server import HttpLimits, HttpServer
from tests.hostile.conftest import KEYS, shipment
from tests.hostile.rawhttp import closed_within, statuses

LIMITS = HttpLimits(header_timeout=1.0, body_timeout=2.0, idle_timeout=2.0, connection_limit=500)
SLACK = 8.0
"""Seconds beyond a deadline the server may take to close (it checks every second; a loaded machine)."""


@pytest.fixture(scope="module")
def server(hostile_bus):
    served = HttpServer(hostile_bus.runtime.app, port=0, limits=LIMITS).start()
    yield served
    served.stop()


def connect(server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def post_shipment(server) -> int:
    return requests.post(f"{server.url}/in/wms-shipments-to-erp", data=shipment(), timeout=10, headers={
        "Content-Type": "application/json", "X-API-Key": KEYS["wms-shipments-to-erp"]}).status_code


def test_with_150_idle_connections_held_valid_posts_are_still_accepted(server):
    idle = [connect(server) for _ in range(150)]  # more than waitress's default limit of 100 was
    try:
        assert [post_shipment(server) for _ in range(5)] == [202] * 5
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        for connection in idle:
            connection.close()


def test_with_slowloris_connections_held_valid_posts_are_still_accepted_and_each_is_closed(server):
    stop = threading.Event()
    slow = [connect(server) for _ in range(40)]
    for connection in slow:
        connection.sendall(b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: bus\r\n")

    def drip():  # one more header line every 0.3 s, never the end of the head
        while not stop.wait(0.3):
            for connection in slow:
                with contextlib.suppress(OSError):  # closed by the server: what is expected
                    connection.sendall(b"X-Slow: 1\r\n")

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        assert [post_shipment(server) for _ in range(5)] == [202] * 5
        assert all(closed_within(connection, LIMITS.header_timeout + SLACK) for connection in slow)
    finally:
        stop.set()
        dripper.join()
        for connection in slow:
            connection.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server):
    with connect(server) as connection:
        assert closed_within(connection, LIMITS.header_timeout + SLACK)


def test_a_body_that_never_ends_is_closed_after_the_body_timeout(server):
    with connect(server) as connection:
        connection.sendall(b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: bus\r\n"
                           b"Content-Length: 100\r\n\r\n{")
        assert closed_within(connection, LIMITS.body_timeout + SLACK)


def test_a_kept_alive_connection_is_closed_after_the_idle_timeout(server):
    with connect(server) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: bus\r\n\r\n")
        time.sleep(0.2)
        assert statuses(connection.recv(65536)) == [200]
        assert closed_within(connection, LIMITS.idle_timeout + SLACK)


def test_every_limit_comes_from_its_esb_http_variable():
    limits = HttpLimits.from_environment({"ESB_HTTP_HEADER_TIMEOUT": "2.5", "ESB_HTTP_IDLE_TIMEOUT": "",
                                          "ESB_HTTP_CONNECTION_LIMIT": "900", "ESB_HTTP_THREADS": "8"})
    assert (limits.header_timeout, limits.connection_limit, limits.threads) == (2.5, 900, 8)
    assert limits.idle_timeout == HttpLimits().idle_timeout
    with pytest.raises(ValueError, match="ESB_HTTP_BACKLOG must be a whole number"):
        HttpLimits.from_environment({"ESB_HTTP_BACKLOG": "many"})
    with pytest.raises(ValueError, match="ESB_HTTP_BODY_TIMEOUT must be greater than 0"):
        HttpLimits.from_environment({"ESB_HTTP_BODY_TIMEOUT": "0"})
