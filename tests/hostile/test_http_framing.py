"""Strict HTTP/1.1 framing (RFC 9112), over raw sockets on the bus's real server: a request a proxy
in front could frame differently is refused and its connection closed, so nothing can be smuggled
behind it; versions other than HTTP/1.0 and 1.1 are refused."""

from __future__ import annotations

import pytest

from esb.web import SECURITY_HEADERS
from tests.hostile.rawhttp import exchange, statuses

SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: bus\r\n\r\n"
POST = b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: bus\r\n"
LAST = b"GET /healthz HTTP/1.1\r\nHost: bus\r\nConnection: close\r\n\r\n"


def send(hostile_bus, raw: bytes) -> bytes:
    return exchange(hostile_bus.host, hostile_bus.port, raw)


def test_content_length_with_chunked_is_a_400_and_the_request_behind_it_is_never_answered(hostile_bus):
    raw = (b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: bus\r\nContent-Length: 5\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED)
    assert statuses(send(hostile_bus, raw)) == [400]


@pytest.mark.parametrize("encoding", [b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                                      b"Transfer-Encoding: chunked, chunked"],
                         ids=["two headers", "one list"])
def test_chunked_twice_is_a_400(hostile_bus, encoding):
    raw = POST + encoding + b"\r\n\r\n0\r\n\r\n" + SMUGGLED
    assert statuses(send(hostile_bus, raw)) == [400]


def test_transfer_encoding_in_an_http_1_0_request_is_a_400(hostile_bus):
    raw = b"POST /in/wms-shipments-to-erp HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    assert statuses(send(hostile_bus, raw)) == [400]


def test_obsolete_line_folding_is_a_400(hostile_bus):
    raw = b"GET /healthz HTTP/1.1\r\nHost: bus\r\nX-Folded: a\r\n b\r\n\r\n"
    assert statuses(send(hostile_bus, raw)) == [400]


@pytest.mark.parametrize(("line", "status"), [
    (b"GET /healthz HTTP/9.9", 505),
    (b"GET /healthz HTTP/1.2", 505),
    (b"GET /healthz HTTP/2.0", 505),
    (b"GET /healthz HTTP/1.10", 400),
    (b"GET /healthz", 400),  # HTTP/0.9
])
def test_a_request_line_of_another_http_version_is_refused(hostile_bus, line, status):
    answer = exchange(hostile_bus.host, hostile_bus.port, line + b"\r\nHost: bus\r\n\r\n" + SMUGGLED)
    assert statuses(answer) == [status]


def test_the_servers_own_error_answers_carry_the_security_headers(hostile_bus):
    answer = send(hostile_bus, b"GET /healthz HTTP/9.9\r\n\r\n").decode("latin-1")
    for name, value in SECURITY_HEADERS.items():
        assert f"{name}: {value}\r\n" in answer


def test_well_framed_requests_are_still_answered_in_turn_on_one_connection(hostile_bus):
    chunked = POST + b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    chunked += b"1\r\n{\r\n0\r\n\r\n"
    answer = send(hostile_bus, SMUGGLED + chunked + LAST)
    assert statuses(answer) == [200, 401, 200]  # the chunked post is read whole (and has no key)
