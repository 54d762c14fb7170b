"""The bus's HTTP server: waitress serving the Flask app on a background thread, hardened for
hostile clients.

waitress was kept, measured against the attacks of issue 21 (`bench/hostile_connections.py`):
its single I/O loop parks an idle or slow connection for the price of a socket, never a thread,
so thousands can be held while the 16 worker threads serve valid requests. What it lacked is
added here:

- **a header timeout**: a connection must send a complete request head within
  `header_timeout` seconds of opening (or of the first byte of its next request), and the body
  within `body_timeout` seconds after the head; otherwise it is closed (slowloris, slow POST).
  waitress alone only closes a connection that sends nothing at all for `channel_timeout`;
- **an idle keep-alive timeout** (`idle_timeout`, waitress's `channel_timeout`), checked every
  second instead of every 30;
- **a connection limit high enough** to hold many idle connections (`connection_limit`, 100 in
  waitress) with `poll()` instead of `select()`, which fails beyond 1,024 file descriptors, and
  the process's open-file limit raised to fit;
- **strict framing** (RFC 9112): Content-Length with Transfer-Encoding, Transfer-Encoding in an
  HTTP/1.0 request, chunked applied twice and obsolete line folding are 400 (a proxy in front
  that frames the request differently could otherwise smuggle a second one); a request line
  without a version (HTTP/0.9) is 400, a version other than 1.0 and 1.1 is 505;
- the security headers of `esb.web.SECURITY_HEADERS` on the answers the server makes itself.

Every limit is set by an `ESB_HTTP_*` environment variable (`HttpLimits.from_environment`).
"""

from __future__ import annotations

import logging
import os
import re
import resource
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from flask import Flask
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import Error

from esb.web import SECURITY_HEADERS

log = logging.getLogger("esb.http")


@dataclass(frozen=True)
class HttpLimits:
    """The limits of the HTTP server; each one is the `ESB_HTTP_<NAME>` environment variable.

    Parameters:
        header_timeout (float): seconds a connection has to send a complete request head, from
            its opening or the first byte of its next request; default 10.
        body_timeout (float): seconds the body may take once the head is in; default 60.
        idle_timeout (float): seconds a kept-alive connection may wait for its next request; default 30.
        connection_limit (int): open connections at most; beyond, new ones wait in the listen
            backlog; default 4000.
        backlog (int): connections the kernel queues before they are accepted; default 2048.
        threads (int): requests handled at the same time; default 16.
        max_header_bytes (int): largest request head (request line and headers); default 65536.
        max_body_bytes (int): largest request body the server reads at all, above every route's
            own `max_body_bytes` (which answers 413 with the route's limit); default 64 MiB.
    """

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 30.0
    connection_limit: int = 4000
    backlog: int = 2048
    threads: int = 16
    max_header_bytes: int = 65536
    max_body_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> HttpLimits:
        """The limits, each from `ESB_HTTP_<NAME>` when set; ValueError names a bad variable."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            variable = f"ESB_HTTP_{field.name.upper()}"
            text = environ.get(variable, "").strip()
            if not text:
                continue
            kind = float if field.type in ("float", float) else int
            try:
                value = kind(text)
            except ValueError:
                raise ValueError(f"{variable} must be a {'number' if kind is float else 'whole number'} "
                                 f"(got {text!r})") from None
            if value <= 0:
                raise ValueError(f"{variable} must be greater than 0 (got {text!r})")
            values[field.name] = value
        return cls(**values)


# --- strict framing -------------------------------------------------------------------------

class VersionNotSupported(Error):
    code = 505
    reason = "HTTP Version Not Supported"


class _Secured(Error):
    """A waitress error answer with the security headers added."""

    def __init__(self, error: Error):
        super().__init__(error.body)
        self.code, self.reason = error.code, error.reason

    def to_response(self, ident: str | None = None):
        status, headers, body = super().to_response(ident)
        return status, [*headers, *SECURITY_HEADERS.items()], body


_REQUEST_LINE = re.compile(rb"(\S+) (\S+)(?: (\S+))?")
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")


class StrictRequestParser(HTTPRequestParser):
    """waitress's parser, refusing what RFC 9112 lets a server refuse and proxies read differently."""

    _unsupported_version = False

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.error is not None and not isinstance(self.error, _Secured):
            if self._unsupported_version:
                self.error = VersionNotSupported(self.error.body)
            self.error = _Secured(self.error)
        return consumed

    def parse_header(self, header_plus: bytes) -> None:
        first_line, _, rest = header_plus.partition(b"\r\n")
        line = _REQUEST_LINE.fullmatch(first_line)
        if line is None or line[3] is None:
            raise ParsingError("a request line is METHOD TARGET HTTP/1.1 (HTTP/0.9 is not served)")
        if line[3] not in (b"HTTP/1.0", b"HTTP/1.1"):
            if not _VERSION.fullmatch(line[3]):
                raise ParsingError("the request line's HTTP version is malformed")
            self._unsupported_version = True
            raise ParsingError(f"{line[3].decode('latin-1')} is not served: send HTTP/1.1")
        lines = rest.split(b"\r\n") if rest else []
        if any(header[:1] in (b" ", b"\t") for header in lines):
            raise ParsingError("obsolete line folding (a header line starting with a space) is refused")
        names = [header.partition(b":")[0].strip().lower() for header in lines]
        if b"transfer-encoding" in names:
            if b"content-length" in names:
                raise ParsingError("Content-Length and Transfer-Encoding together are refused (RFC 9112 6.1)")
            if line[3] == b"HTTP/1.0":
                raise ParsingError("Transfer-Encoding in an HTTP/1.0 request is refused")
            codings = [coding.strip(b" \t").lower() for header in lines
                       if header.partition(b":")[0].strip().lower() == b"transfer-encoding"
                       for coding in header.partition(b":")[2].split(b",") if coding.strip(b" \t")]
            if codings.count(b"chunked") > 1:
                raise ParsingError("Transfer-Encoding chunked more than once is refused")
        super().parse_header(header_plus)


# --- timeouts -------------------------------------------------------------------------------

class HardenedChannel(HTTPChannel):
    """A connection with a deadline for the request head and one for the body."""

    parser_class = StrictRequestParser

    def __init__(self, server: HardenedServer, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map)
        self.limits = server.limits
        self.deadline: float | None = time.monotonic() + self.limits.header_timeout
        self.waiting_for = "head"

    def received(self, data: bytes) -> bool:
        answer = super().received(data)
        request = self.request  # the request still being read, if any
        if request is None:
            self.deadline, self.waiting_for = None, None
        elif not request.headers_finished:
            if self.waiting_for != "head":
                self.deadline, self.waiting_for = time.monotonic() + self.limits.header_timeout, "head"
        elif self.waiting_for != "body":
            self.deadline, self.waiting_for = time.monotonic() + self.limits.body_timeout, "body"
        return answer


class HardenedServer(TcpWSGIServer):
    channel_class = HardenedChannel

    def __init__(self, application, *, limits: HttpLimits, adj: Adjustments, dispatcher):
        self.limits = limits
        self.timed_out = 0  # connections closed for a missed deadline, for tests and benchmarks
        super().__init__(application, {}, True, None, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # closes the connections idle for channel_timeout (idle_timeout)
        clock = time.monotonic()
        for channel in list(self.active_channels.values()):
            deadline = getattr(channel, "deadline", None)
            if deadline is not None and clock > deadline and not channel.requests and not channel.will_close:
                channel.will_close = True
                self.timed_out += 1
                log.debug("closed %s: no complete request %s in time", channel.addr, channel.waiting_for)


def _raise_open_file_limit(needed: int) -> None:
    """The soft limit of open files up to `needed` (within the hard limit); a warning if short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning("open-file limit %d is below the %d ESB_HTTP_CONNECTION_LIMIT needs", target, needed)


class HttpServer:
    """The hardened waitress serving `app` on a background thread; `port=0` picks a free port.
    `limits` default to `HttpLimits()`; `threads`, when given, overrides theirs."""

    def __init__(self, app: Flask, *, host: str = "127.0.0.1", port: int = 8080, threads: int | None = None,
                 limits: HttpLimits | None = None):
        limits = limits or HttpLimits()
        _raise_open_file_limit(limits.connection_limit + 256)
        adj = Adjustments(host=host, port=port, threads=threads or limits.threads,
                          clear_untrusted_proxy_headers=True, connection_limit=limits.connection_limit,
                          backlog=limits.backlog,
                          channel_timeout=int(max(1, limits.idle_timeout)), cleanup_interval=1,
                          asyncore_use_poll=True, max_request_header_size=limits.max_header_bytes,
                          max_request_body_size=limits.max_body_bytes)
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(adj.threads)
        self._server = HardenedServer(app, limits=limits, adj=adj, dispatcher=dispatcher)
        self.limits = limits
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._server.run, name="esb-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def timed_out(self) -> int:
        """Connections closed so far because their request head or body did not come in time."""
        return self._server.timed_out

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close the open (kept-alive) connections, let running requests finish.

        The sockets are closed on the server's own loop thread: closing them from here while the
        loop waits in poll() makes it fail with EBADF."""

        def close_everything() -> None:
            for channel in list(self._server._map.values()):
                if channel is not self._server and channel is not self._server.trigger:
                    channel.close()
            self._server.close()  # the listening socket and the trigger; the loop then ends

        if self._thread.is_alive():
            try:
                self._server.trigger.pull_trigger(close_everything)
            except OSError:  # the trigger is closed already: the loop is ending on its own
                close_everything()
            self._thread.join(timeout=5)
        else:
            self._server.close()
        self._server.task_dispatcher.shutdown()
