"""A lean HTTP/1.1 client for outbound calls: one keep-alive connection per thread, the request
written in one `sendall`, the answer read from a buffered socket.

Why not `requests`: on the delivery path (`bench/bench_delivery.py`, nginx answering 201 on
loopback) a `requests.Session` call cost about 560 us of CPU, `urllib3` 140 us and `http.client`
64 us (its header parsing goes through the `email` package); this client costs about 10 us, and
the per-message CPU of delivery is what limits its throughput. It speaks only what a sink needs:
one request at a time per connection, `Content-Length` request bodies, answers with a
`Content-Length`, chunked or read-to-close body (gzip/deflate decoded), 1xx interim answers
skipped, no redirects followed (a 3xx is an answer like any other), TLS with SNI and
verification. Proxies are not spoken: `HttpClient.proxied(url)` says when the environment asks
for one, and the caller then uses `requests`.

Errors: `CallTimeout` (no answer within the timeout), `CallFailed` (could not connect, the
connection broke, or the answer was not HTTP), both OSError subclasses; `ValueError` for a header
that would split the request (a CR or LF in a name or value).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import select
import socket
import ssl
import threading
import urllib.request
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_LINE = 65_536
"""Bytes a status or header line may have (as http.client's _MAXLINE)."""

MAX_HEADERS = 100
"""Header lines an answer may have (as http.client's _MAXHEADERS)."""

USER_AGENT = "esb"

_ILLEGAL_HEADER = re.compile(r"[\r\n\x00]|^\s")  # as requests' check_header_validity: no splitting


class CallFailed(OSError):
    """The call could not be made or its answer could not be read (connection refused, reset,
    closed before the answer, not HTTP)."""


class CallTimeout(CallFailed):
    """No connection or no answer within the timeout."""


@dataclass(slots=True)
class Response:
    """An answer: status, headers (names lower-case; a repeated header's values joined by ", ")
    and the body, decoded when the server compressed it."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text, in the charset the Content-Type names (UTF-8 by default)."""
        match = re.search(r"charset=([\w.:-]+)", self.headers.get("content-type", ""), re.I)
        try:
            return self.body.decode(match.group(1) if match else "utf-8", "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")


def basic_authorization(username: str, password: str) -> str:
    """The Authorization header value of HTTP basic auth (latin-1, as requests encodes it)."""
    token = f"{username}:{password}".encode("latin-1")
    return "Basic " + base64.b64encode(token).decode("ascii")


def default_ca_bundle() -> str | None:
    """The CA bundle `requests` would use: REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, else certifi's."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


class HttpClient:
    """Calls to one origin (`scheme://host:port`), one keep-alive connection per calling thread.

    `verify`: True (the default CA bundle), False (no verification), or the path of a CA file.
    `timeout`: seconds to connect, and between bytes of the answer. `headers` go with every call.
    """

    def __init__(self, base_url: str, *, timeout: float, verify: bool | str = True,
                 headers: dict[str, str] | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.timeout = timeout
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        fixed = {"Host": host if default_port else f"{host}:{self.port}", "User-Agent": USER_AGENT,
                 "Accept": "*/*", **(headers or {})}
        self._head_tail = _header_lines(fixed)
        self._tls = _tls_context(verify) if parts.scheme == "https" else None
        self._local = threading.local()
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()

    @staticmethod
    def proxied(url: str) -> bool:
        """True when the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ...) sends `url` through
        a proxy, which this client does not speak."""
        parts = urlsplit(url)
        proxies = urllib.request.getproxies()
        if not (proxies.get(parts.scheme) or proxies.get("all")):
            return False
        return not urllib.request.proxy_bypass(parts.hostname or "")

    def request(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> Response:
        """One call: `target` is the path (and query) on this origin. Raises CallTimeout, CallFailed."""
        head = (f"{method} {target} HTTP/1.1\r\n{_header_lines(headers)}{self._head_tail}"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        connection = self._connection()
        try:
            return connection.exchange(head + body if len(body) < 65_536 else head, body, method)
        except TimeoutError as error:
            connection.close()
            raise CallTimeout(f"no answer within {self.timeout:g} s") from error
        except (OSError, ValueError) as error:
            connection.close()
            if isinstance(error, CallFailed):
                raise
            raise CallFailed(f"{type(error).__name__}: {error}") from error

    def _connection(self) -> _Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = _Connection(self)
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close every thread's connection (a later call opens a new one)."""
        with self._lock:
            for connection in self._connections:
                connection.close()


class _Connection:
    """One thread's connection to the origin, opened on first use and again after a close."""

    __slots__ = ("client", "sock", "reader", "poller")

    def __init__(self, client: HttpClient):
        self.client = client
        self.sock: socket.socket | None = None
        self.reader = None
        self.poller = None

    def _open(self) -> None:
        client = self.client
        try:
            sock = socket.create_connection((client.host, client.port), timeout=client.timeout)
        except TimeoutError:
            raise
        except OSError as error:
            raise CallFailed(f"ConnectionError: cannot connect to {client.host}:{client.port}: "
                             f"{error}") from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if client._tls is not None:
            try:
                sock = client._tls.wrap_socket(sock, server_hostname=client.host)
            except (OSError, ValueError):
                sock.close()
                raise
        self.sock, self.reader = sock, sock.makefile("rb")
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)

    def _stale(self) -> bool:
        """The server closed (or wrote to) an idle connection: readable before we asked anything."""
        return bool(self.poller.poll(0))

    def close(self) -> None:
        sock, self.sock, self.reader = self.sock, None, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def exchange(self, data: bytes, body: bytes, method: str) -> Response:
        if self.sock is not None and self._stale():
            self.close()
        if self.sock is None:
            self._open()
        sock = self.sock
        sock.sendall(data)
        if len(data) < len(body):  # a large body was not joined to the head
            sock.sendall(body)
        response, keep = _read_response(self.reader, method)
        if not keep:
            self.close()
        return response


def _read_response(reader, method: str) -> tuple[Response, bool]:
    """The answer (1xx skipped) and whether the connection may be used again."""
    while True:
        version, status = _status_line(reader)
        headers = _headers(reader)
        if not 100 <= status < 200 or status == 101:
            break
    keep = version == "HTTP/1.1"
    connection = headers.get("connection", "").lower()
    if "close" in connection:
        keep = False
    elif "keep-alive" in connection:
        keep = True
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _chunked(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"].split(",")[0])
        except ValueError:
            raise CallFailed(f"bad Content-Length in the answer: {headers['content-length']!r}") from None
        body = reader.read(length)
        if len(body) < length:
            raise CallFailed(f"the answer ended after {len(body)} of {length} bytes")
    else:
        body, keep = reader.read(), False
    encoding = headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate") and body:
        with contextlib.suppress(zlib.error):  # else keep the bytes as they came, for the error text
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS)
    return Response(status, headers, body), keep


def _line(reader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise CallFailed("an answer line is longer than 64 KiB")
    return line


def _status_line(reader) -> tuple[str, int]:
    line = _line(reader)
    if not line:
        raise CallFailed("ConnectionError: the server closed the connection without answering")
    version, _, rest = line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/") or not rest[:3].isdigit():
        raise CallFailed(f"not an HTTP answer: {line[:80]!r}")
    return version, int(rest[:3])


def _headers(reader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return headers
        if not line:
            raise CallFailed("the answer ended in its headers")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            continue  # a folded or malformed line: http.client ignores these too
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    raise CallFailed(f"the answer has more than {MAX_HEADERS} headers")


def _chunked(reader) -> bytes:
    parts = []
    while True:
        size_line = _line(reader).split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise CallFailed(f"bad chunk size in the answer: {size_line[:20]!r}") from None
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        chunk = reader.read(size)
        if len(chunk) < size:
            raise CallFailed("the answer ended inside a chunk")
        parts.append(chunk)
        reader.readline(2)


def _header_lines(headers: dict[str, str]) -> str:
    lines = []
    for name, value in headers.items():
        value = str(value)
        if _ILLEGAL_HEADER.search(name) or not name or _ILLEGAL_HEADER.search(value):
            raise ValueError(f"header {name!r}: a value with a line break (or leading space) cannot be sent")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        cafile = verify if isinstance(verify, str) else default_ca_bundle()
        context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["http/1.1"])
    return context
