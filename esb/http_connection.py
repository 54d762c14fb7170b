"""One HTTP/1.1 client connection of `esb.http_server`: llhttp (httptools) parses its requests in
turn, each is checked (framing, versions, sizes, deadlines) and handed to the server, and the answers
are written in order. The server's own error answers carry the security headers."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections import deque
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import httptools

from esb import jsonfmt
from esb.web import SECURITY_HEADERS

if TYPE_CHECKING:
    from esb.http_server import HttpServer

log = logging.getLogger("esb.http")


# --- answers ---------------------------------------------------------------------------------

REASONS = {100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
           400: "Bad Request", 413: "Content Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 505: "HTTP Version Not Supported"}
_SECURITY = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS.items()]
_UNTRUSTED = frozenset({"HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST",
                        "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_BY"})
_NO_BODY = frozenset({204, 304})
MAX_PIPELINED = 8
"""Requests read ahead on one connection before the server stops reading it until it answered."""


class _Clock:
    """The Date header, formatted once a second."""

    second = -1
    value = b""

    @classmethod
    def date(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second, cls.value = now, formatdate(now, usegmt=True).encode("latin-1")
        return cls.value


class HttpError(Exception):
    """A request the server refuses itself (framing, sizes): answered, then the connection closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error_answer(status: int, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The server's own JSON error answer, with the security headers."""
    error = REASONS.get(status, "error").lower().replace(" ", "_")
    body = jsonfmt.dumps({"error": error, "message": message}).encode("utf-8")
    return status, [(b"Content-Type", b"application/json"), *_SECURITY], body


# --- one request, one connection -------------------------------------------------------------

class Request:
    __slots__ = ("method", "url", "version", "headers", "body", "keep_alive", "error")

    def __init__(self) -> None:
        self.method = b""
        self.url = b""
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.keep_alive = True
        self.error: HttpError | None = None


class Connection(asyncio.Protocol):
    """One client connection: parses requests in turn and answers them in order."""

    def __init__(self, server: HttpServer):
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.request: Request | None = None  # the one being read
        self.ready: deque[Request] = deque()  # read, waiting for their turn
        self.busy = False  # an answer of this connection is being made
        self.closing = False
        self.head_bytes = 0
        self.body_bytes = 0
        self.deadline: float | None = time.monotonic() + self.limits.header_timeout
        self.waiting_for: str | None = "head"
        self.peer: tuple[str, int] = ("", 0)

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1]) if isinstance(peer, tuple) else ("", 0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.forget(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(HttpError(400, "protocol upgrades are not served"))
        except httptools.HttpParserError as error:
            cause = error.__context__  # an exception raised by one of the callbacks below
            if isinstance(cause, HttpError):
                self._refuse(cause)
            elif cause is not None:
                log.error("esb: reading a request failed", exc_info=cause)
                self._refuse(HttpError(500, "the bus failed on this request; it is logged"))
            else:
                self._refuse(_framing_error(error))

    def eof_received(self) -> bool | None:
        if self.busy or self.ready:
            return True  # half-closed by the client: answer what it sent, then close
        return None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.request = Request()
        self.head_bytes = 0
        self.body_bytes = 0
        if self.waiting_for != "head":
            self.deadline, self.waiting_for = time.monotonic() + self.limits.header_timeout, "head"

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self.request.url += url  # type: ignore[union-attr]

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        self.request.headers.append((name, value))  # type: ignore[union-attr]

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.limits.max_header_bytes:
            raise HttpError(431, f"the request head is larger than {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        request = self.request
        assert request is not None
        request.method = self.parser.get_method()
        request.version = self.parser.get_http_version()
        request.keep_alive = self.parser.should_keep_alive()
        if request.version == "0.9":  # what llhttp makes of a request line without a version
            raise HttpError(400, "a request line is METHOD TARGET HTTP/1.1 (HTTP/0.9 is not served)")
        if request.version not in ("1.0", "1.1"):
            raise HttpError(505, f"HTTP/{request.version} is not served: send HTTP/1.1")
        length, expects_continue = None, False
        for name, value in request.headers:
            lowered = name.lower()
            if lowered == b"transfer-encoding" and request.version == "1.0":
                raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request is refused")
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"expect":
                expects_continue = value.lower() == b"100-continue" and request.version == "1.1"
        if length is not None and length > self.limits.max_body_bytes:
            raise HttpError(413, f"the body is larger than the limit of {self.limits.max_body_bytes} bytes")
        if expects_continue:  # the client waits for this before it sends the body
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
        self.deadline, self.waiting_for = time.monotonic() + self.limits.body_timeout, "body"

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > self.limits.max_body_bytes:
            raise HttpError(413, f"the body is larger than the limit of {self.limits.max_body_bytes} bytes")
        self.request.body.append(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        request, self.request = self.request, None
        self.deadline, self.waiting_for = None, None
        self.ready.append(request)  # type: ignore[arg-type]
        if len(self.ready) > MAX_PIPELINED:
            self.transport.pause_reading()  # type: ignore[union-attr]  # a client pipelining too far ahead
        self._next()

    # answering
    def _refuse(self, error: HttpError) -> None:
        """Answer `error` after the requests read before it, then close; read nothing more."""
        refused = self.request or Request()
        refused.error, refused.keep_alive = error, False
        self.request = None
        self.ready.append(refused)
        self.deadline, self.waiting_for = None, None
        self.closing = True
        self.transport.pause_reading()  # type: ignore[union-attr]
        self._next()

    def _next(self) -> None:
        if self.busy or not self.ready or self.transport is None or self.transport.is_closing():
            return
        request = self.ready.popleft()
        self.busy = True
        if request.error is not None:
            self.send(request, *error_answer(request.error.status, str(request.error)))
            return
        environ = self.environ(request)
        if self.server.runs_inline(environ):
            self.server.call_app_inline(self, request, environ)
        else:
            self.server.call_app(self, request, environ)

    def send(self, request: Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Write one answer (on the loop thread); keep the connection or close it."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        keep = request.keep_alive and not (self.closing and not self.ready)
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Status").encode("latin-1"))]
        has_length = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                has_length = True
            elif lowered == b"connection":
                if value.lower() == b"close":
                    keep = False
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        if not has_length and status not in _NO_BODY:
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"Date: %s\r\n" % _Clock.date())
        if not keep:
            lines.append(b"Connection: close\r\n")
        elif request.version == "1.0":
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        if request.method != b"HEAD" and status not in _NO_BODY:
            lines.append(body)
        transport.write(b"".join(lines))
        self.busy = False
        if not keep:
            self.closing = True
            transport.close()
            return
        if self.ready:
            if len(self.ready) <= MAX_PIPELINED:
                transport.resume_reading()
            self._next()
        elif self.request is None:
            self.deadline, self.waiting_for = time.monotonic() + self.limits.idle_timeout, "idle"

    def environ(self, request: Request) -> dict[str, Any]:
        url = httptools.parse_url(request.url)
        body = b"".join(request.body)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("latin-1"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(url.path or b"/").decode("latin-1"),
            "QUERY_STRING": (url.query or b"").decode("latin-1"),
            "SERVER_NAME": self.server.host,
            "SERVER_PORT": str(self.server.port),
            "SERVER_PROTOCOL": f"HTTP/{request.version}",
            "REMOTE_ADDR": self.peer[0],
            "REMOTE_PORT": str(self.peer[1]),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            text = name.decode("latin-1")
            if "_" in text:
                continue  # X_API_Key would read as X-API-Key in the environ: a spoofing channel
            key = text.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
                if key in _UNTRUSTED:
                    continue
            decoded = value.decode("latin-1")
            environ[key] = f"{environ[key]}, {decoded}" if key in environ else decoded
        return environ


def _framing_error(error: Exception) -> HttpError:
    message = str(error)
    if "Invalid HTTP version" in message:
        return HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served: send HTTP/1.1")
    if "Transfer-Encoding" in message and "Content-Length" in message:
        return HttpError(400, "Content-Length and Transfer-Encoding together are refused (RFC 9112 6.1)")
    if "Transfer-Encoding" in message:
        return HttpError(400, "Transfer-Encoding must be chunked, once, as the last coding")
    if "whitespace after header value" in message or "folding" in message:
        return HttpError(400, "obsolete line folding (a header line starting with a space) is refused")
    return HttpError(400, f"the request is not well-framed HTTP/1.1: {message}")
