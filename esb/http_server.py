"""The bus's HTTP server: an asyncio loop (uvloop when installed) with llhttp's C parser
(httptools) in front of the Flask app, hardened for hostile clients.

Why not waitress (which served the bus until issue 11): it parses HTTP in Python and hands every
request to a worker thread that then blocks until the broker confirms; on two cores waitress alone
answered `GET /healthz` at a third of uvicorn's rate, and a request thread per unconfirmed message
means a GIL hand-off per step. Here one loop thread reads, parses and writes every connection; the
app runs on a few threads (`threads`); and an inbound endpoint does not hold its thread while the
broker confirms: it hands the server a *deferred* answer (`esb.push.DEFER`, see
`esb.push.answer_when_stored`), which the loop sends once the confirms arrived. 202 still goes out
only after the confirm.

Hardening (issue 21), kept from the waitress version:
- **a header timeout**: a connection must send a complete request head within `header_timeout`
  seconds of opening (or of the first byte of its next request), and the body within
  `body_timeout` seconds after the head; otherwise it is closed (slowloris, slow POST);
- **an idle keep-alive timeout** (`idle_timeout`), checked every second;
- **a connection limit** (`connection_limit`): beyond it, new connections wait in the listen
  backlog (the server stops accepting); the process's open-file limit is raised to fit;
- **strict framing** (RFC 9112, llhttp's strict mode plus two checks): Content-Length with
  Transfer-Encoding, Transfer-Encoding in an HTTP/1.0 request, chunked applied twice, obsolete line
  folding, bare LF line ends are 400 and close the connection (a proxy in front that frames the
  request differently could otherwise smuggle a second one); a request line without a version
  (HTTP/0.9) is 400, a version other than 1.0 and 1.1 is 505;
- headers spelled with `_` and proxy headers (`Forwarded`, `X-Forwarded-*`) are dropped: no proxy
  is trusted;
- the security headers of `esb.web.SECURITY_HEADERS` on the answers the server makes itself.

Every limit is set by an `ESB_HTTP_*` environment variable (`HttpLimits.from_environment`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import resource
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from flask import Flask

from esb.http_connection import Connection, Request, error_answer
from esb.push import DEFER, INLINE, OFFLOAD

log = logging.getLogger("esb.http")

INLINE_PATHS = ("/in/", "/healthz")
"""Requests run on the loop thread (see `HttpServer.runs_inline`): REST inbound posts, liveness."""
INLINE_MAX_BODY_BYTES = 256 * 1024



class Deferred(Protocol):
    """What an app defers its answer on (`esb.inbound.Storing` is one)."""

    timeout: float

    def when_done(self, callback: Callable[[], None]) -> None: ...

    def expire(self) -> None: ...


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
        threads (int): app calls running at the same time (an inbound request waiting for its
            broker confirm holds none); default 16.
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


# --- the server ------------------------------------------------------------------------------

def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # optional: the standard loop serves too, a little slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _raise_open_file_limit(needed: int) -> None:
    """The soft limit of open files up to `needed` (within the hard limit); a warning if short."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning("open-file limit %d is below the %d ESB_HTTP_CONNECTION_LIMIT needs", target, needed)


class HttpServer:
    """Serves `app` on a background thread; `port=0` picks a free port. `limits` default to
    `HttpLimits()`; `threads`, when given, overrides theirs. `reuse_port`: several processes listen
    on one port and the kernel shares the connections out among them (SO_REUSEPORT)."""

    def __init__(self, app: Flask, *, host: str = "127.0.0.1", port: int = 8080, threads: int | None = None,
                 limits: HttpLimits | None = None, reuse_port: bool = False):
        self.limits = limits or HttpLimits()
        _raise_open_file_limit(self.limits.connection_limit + 256)
        self.app = app
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=self.limits.backlog,
                                               reuse_port=reuse_port)
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self.connections: set[Connection] = set()
        self._timed_out = 0
        self.offloaded = 0  # inline requests run again on an app thread (storing had to wait), for tests
        self._accepting = False
        self._loop = _new_loop()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._workers = [threading.Thread(target=self._work, name=f"esb-http-app-{n}", daemon=True)
                         for n in range(threads or self.limits.threads)]
        self._thread = threading.Thread(target=self._run, name="esb-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def timed_out(self) -> int:
        """Connections closed so far because their request head or body did not come in time."""
        return self._timed_out

    def start(self) -> HttpServer:
        for worker in self._workers:
            worker.start()
        self._thread.start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop listening, close the idle (kept-alive) connections, give the requests in progress
        (an inbound post waiting for its confirm among them) up to `grace` seconds to be answered,
        then close the rest."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._close_everything, time.monotonic() + grace)
            self._thread.join(timeout=grace + 5)
        else:
            self._listener.close()
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join(timeout=5)

    # the loop thread
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._start_accepting()
        self._loop.call_later(1.0, self._sweep)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def _close_everything(self, deadline: float) -> None:
        self._stop_accepting()
        if self._listener.fileno() >= 0:
            self._listener.close()
        in_progress = False
        for connection in list(self.connections):
            if connection.busy and time.monotonic() < deadline:
                in_progress = True
                connection.request = None
                connection.ready.clear()  # answer the one in progress, then close
                connection.closing = True
            elif connection.transport is not None:
                connection.transport.close()
        if in_progress:
            self._loop.call_later(0.05, self._close_everything, deadline)
        else:
            self._loop.call_later(0.05, self._loop.stop)

    def _on_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        """`callback(*args)` on the loop thread, from any thread; nothing once the loop is closed
        (the server stopped: its connections are closed, so there is no one left to answer)."""
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            log.debug("esb: an answer came after the HTTP server stopped")

    def _start_accepting(self) -> None:
        if not self._accepting and self._listener.fileno() >= 0:
            self._loop.add_reader(self._listener, self._accept)
            self._accepting = True

    def _stop_accepting(self) -> None:
        if self._accepting:
            self._loop.remove_reader(self._listener)
            self._accepting = False

    def _accept(self) -> None:
        for _ in range(64):
            if len(self.connections) >= self.limits.connection_limit:
                self._stop_accepting()  # the rest wait in the backlog until a connection closes
                return
            try:
                sock, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors, typically: try again in a second
                log.warning("esb: accepting a connection failed: %s", error)
                self._stop_accepting()
                self._loop.call_later(1.0, self._start_accepting)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(self)
            self.connections.add(connection)  # counted from now, for the limit above
            task = self._loop.create_task(self._loop.connect_accepted_socket(lambda c=connection: c, sock))
            task.add_done_callback(lambda done, c=connection, s=sock: self._connected(done, c, s))

    def _connected(self, task: asyncio.Task, connection: Connection, sock: socket.socket) -> None:
        """A connection the loop could not take on (it closed at once): forget it."""
        if not task.cancelled() and task.exception() is None:
            return
        log.debug("esb: a connection could not be set up: %s", None if task.cancelled() else task.exception())
        sock.close()
        self.forget(connection)

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self._accepting and len(self.connections) < self.limits.connection_limit:
            self._start_accepting()

    def _sweep(self) -> None:
        """Close the connections whose head, body or next request is late (every second)."""
        now = time.monotonic()
        for connection in list(self.connections):
            if connection.deadline is not None and now > connection.deadline and not connection.busy:
                if connection.waiting_for in ("head", "body"):
                    self._timed_out += 1
                    log.debug("closed %s: no complete request %s in time", connection.peer,
                              connection.waiting_for)
                connection.closing = True
                if connection.transport is not None:
                    connection.transport.close()
        self._loop.call_later(1.0, self._sweep)

    # the app: inline on the loop, or on the app threads
    def runs_inline(self, environ: dict[str, Any]) -> bool:
        """Inbound posts of ordinary size run on the loop thread: no hand-off to an app thread and
        back, which cost more than the request itself (measured). Everything else (the API, the
        dashboard, SOAP, large bodies) runs on the app threads, where waiting harms no one."""
        return (environ["PATH_INFO"].startswith(INLINE_PATHS)
                and int(environ["CONTENT_LENGTH"]) <= INLINE_MAX_BODY_BYTES)

    def call_app(self, connection: Connection, request: Request, environ: dict[str, Any]) -> None:
        self._jobs.put(lambda: self._call_app(connection, request, environ))

    def call_app_inline(self, connection: Connection, request: Request, environ: dict[str, Any]) -> None:
        """On the loop thread; where storing would have to wait (`esb.push.OFFLOAD`), the request
        runs again on an app thread."""
        offloaded: list[bool] = []
        environ[INLINE] = True
        environ[OFFLOAD] = lambda: offloaded.append(True)
        self._call_app(connection, request, environ, inline=True, offloaded=offloaded)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def _call_app(self, connection: Connection, request: Request, environ: dict[str, Any], *,
                  inline: bool = False, offloaded: list[bool] | None = None) -> None:
        deferred: list[tuple[Deferred, Callable[[], Any]]] = []
        environ[DEFER] = lambda pending, answer: deferred.append((pending, answer))
        try:
            status, headers, body = self._respond(environ)
        except Exception:  # the app's own error handlers answer what they know: this is a bug
            log.exception("esb: the HTTP app failed on %s %s", environ["REQUEST_METHOD"],
                          environ["PATH_INFO"])
            status, headers, body = error_answer(500, "the bus failed on this request; it is logged")
        if offloaded:
            self.offloaded += 1
            self.call_app(connection, request, connection.environ(request))
            return
        on_loop = self._loop.call_soon if inline else self._on_loop
        if not deferred:
            on_loop(connection.send, request, status, headers, body)
            return
        pending, answer = deferred[0]
        timer: list[asyncio.TimerHandle] = []

        def finish() -> None:  # on the loop thread, once: when the confirms are in, or at the deadline
            if not timer:
                return  # answered already
            timer.pop().cancel()
            try:
                final_status, final_headers, final_body = _wsgi_answer(answer())
            except Exception:
                log.exception("esb: a deferred answer failed on %s", environ["PATH_INFO"])
                final_status, final_headers, final_body = error_answer(
                    500, "the bus failed on this request; it is logged")
            names = {name.lower() for name, _ in final_headers}
            final_headers += [(name, value) for name, value in headers
                              if name.lower() not in names and name.lower() not in (b"content-type",
                                                                                      b"content-length")]
            connection.send(request, final_status, final_headers, final_body)

        def at_deadline() -> None:
            pending.expire()
            finish()

        def arm() -> None:  # before finish() can run: both are queued on the loop, in this order
            timer.append(self._loop.call_later(pending.timeout, at_deadline))

        on_loop(arm)
        pending.when_done(lambda: self._on_loop(finish))

    def _respond(self, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            started[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        result = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return (int(status[:3]), [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
                b"".join(chunks))


def _wsgi_answer(response: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A Flask/werkzeug Response as (status, headers, body)."""
    return (response.status_code,
            [(n.encode("latin-1"), v.encode("latin-1")) for n, v in response.headers.items()],
            response.get_data())
