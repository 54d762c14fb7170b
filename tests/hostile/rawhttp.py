"""Raw-socket HTTP for the hostile tests and benchmarks: bytes no HTTP library would send."""

from __future__ import annotations

import re
import socket
import time

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def exchange(host: str, port: int, raw: bytes, *, wait: float = 5.0) -> bytes:
    """Send `raw` on a fresh connection and read until the server closes it (or `wait` seconds
    pass with nothing more to read): every byte the server answered."""
    with socket.create_connection((host, port), timeout=wait) as connection:
        connection.sendall(raw)
        received = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                return received
            if not chunk:
                return received
            received += chunk


def statuses(answer: bytes) -> list[int]:
    """The status code of every response in a stream of answers."""
    return [int(code) for code in STATUS_LINE.findall(answer)]


def closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes `connection` within `seconds` (whatever it sent before)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        connection.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not connection.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:  # reset by the server: closed too
            return True
    return False


def post_request(path: str, body: bytes, content_type: str, key: str, *, close: bool = True) -> bytes:
    """A complete HTTP/1.1 POST."""
    head = (f"POST {path} HTTP/1.1\r\nHost: bus\r\nContent-Type: {content_type}\r\nX-API-Key: {key}\r\n"
            f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n")
    return head.encode() + body
