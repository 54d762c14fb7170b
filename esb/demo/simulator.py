"""A simulated system on loopback: a small Flask app served by esb.http_server that records every call."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request

from esb.http_server import HttpServer


@dataclasses.dataclass
class Call:
    """One call a simulator received, and what it answered."""

    system: str
    path: str
    status: int
    message_id: str | None  # the Idempotency-Key header: the bus's message id
    body: bytes
    answered_id: str | None = None


class Simulator:
    """A small system on loopback: records every call to `/<name>/<path>` (POST or PUT) and answers
    201 with its own id (the same id again for a repeated Idempotency-Key).

    `fail_first`: paths whose first call is answered 503; `app`: the Flask app, for more views."""

    def __init__(self, name: str, *, check_auth: Callable[[Any], bool], host: str = "127.0.0.1",
                 port: int = 0):
        self.name = name
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self._ids: dict[tuple[str, str], str] = {}  # (path, idempotency key) -> the id answered
        self._counter = 0
        self.fail_first: set[str] = set()  # paths whose first call is answered 503
        app = self.app = Flask(f"demo-{name}")
        self._check_auth = check_auth

        @app.route(f"/{name}/<path:path>", methods=["POST", "PUT"])
        def receive(path: str):
            return self._receive("/" + path)

        @app.get(f"/{name}/_received")
        def received():
            with self.lock:
                return jsonify([{"path": c.path, "status": c.status, "message_id": c.message_id,
                                 "id": c.answered_id, "body": c.body.decode("utf-8", "replace")}
                                for c in self.calls])

        self.server = HttpServer(app, host=host, port=port, threads=4)
        self.url = f"{self.server.url}/{name}"

    def _receive(self, path: str):
        body = request.get_data()
        key = request.headers.get("Idempotency-Key")
        if not self._check_auth(request.headers):
            self._record(path, 401, key, body)
            return jsonify(error="unauthorized"), 401
        with self.lock:
            if path in self.fail_first:
                self.fail_first.discard(path)
                self.calls.append(Call(self.name, path, 503, key, body))
                return jsonify(error="busy", message="the system is busy, try again later"), 503
            earlier = self._ids.get((path, key)) if key else None
            if earlier:
                self.calls.append(Call(self.name, path, 200, key, body, earlier))
                return jsonify(id=earlier, duplicate=True), 200
            answered = self.next_id()
            if key:
                self._ids[(path, key)] = answered
            self.calls.append(Call(self.name, path, 201, key, body, answered))
        return jsonify(id=answered), 201

    def next_id(self) -> str:
        """The next id this system gives a document (call with the lock held)."""
        self._counter += 1
        return f"{self.name.upper()}-{self._counter:06d}"

    def record(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def _record(self, path: str, status: int, key: str | None, body: bytes) -> None:
        with self.lock:
            self.calls.append(Call(self.name, path, status, key, body))

    def delivered(self, path: str) -> dict[str, Call]:
        """Message id -> the first successful call that carried it, to `path` or below it."""
        with self.lock:
            found: dict[str, Call] = {}
            for call in self.calls:
                if call.message_id and call.status < 300:
                    found.setdefault(call.message_id, call)
            return {k: v for k, v in found.items() if v.path == path or v.path.startswith(path + "/")}

    def statuses(self, message_id: str) -> list[int]:
        """The status of every call that carried `message_id`, in order."""
        with self.lock:
            return [call.status for call in self.calls if call.message_id == message_id]

    def start(self) -> Simulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
