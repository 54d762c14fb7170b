"""The HTTP app: inbound endpoints of push sources, health and readiness (and, with the
monitoring issue, metrics, the admin API and the dashboard). Built by a factory, served by
waitress — never by Flask's development server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from esb.push import error_response

ReadinessCheck = Callable[[], str | None]
"""Returns None when ready, else a sentence saying what is not."""


def create_app(*, readiness: dict[str, ReadinessCheck] | None = None,
               test_config: dict[str, Any] | None = None) -> Flask:
    """The bus's Flask app. `readiness` names the checks `/readyz` runs (broker, journal, ...)."""
    app = Flask("esb")
    app.config.update(JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    checks = dict(readiness or {})

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        failing = {}
        for name, check in checks.items():
            try:
                problem = check()
            except Exception as error:  # a broken check is a failing check, with its reason
                problem = f"{type(error).__name__}: {error}"
            if problem:
                failing[name] = problem
        if failing:
            return jsonify(status="not ready", failing=failing), 503
        return jsonify(status="ready", checks=sorted(checks))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return error_response(error.code, error.name.lower().replace(" ", "_"), error.description)

    return app


class HttpServer:
    """waitress serving `app` on a background thread; `port=0` picks a free port."""

    def __init__(self, app: Flask, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 16):
        from waitress.server import create_server

        self._server = create_server(app, host=host, port=port, threads=threads,
                                     clear_untrusted_proxy_headers=True)
        self.host = host
        self.port = self._server.effective_port
        self._thread = threading.Thread(target=self._server.run, name="esb-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close the open (kept-alive) connections, let running requests finish.

        The sockets are closed on the server's own loop thread: closing them from here while the
        loop waits in select() makes it fail with EBADF."""

        def close_everything() -> None:
            for channel in list(self._server._map.values()):
                if channel is not self._server and channel is not self._server.trigger:
                    channel.close()
            self._server.close()  # the listening socket and the trigger; the loop then ends

        try:
            alive = self._thread.is_alive()
            if alive:
                self._server.trigger.pull_trigger(close_everything)
        except OSError:  # the loop closed its trigger on its way out: nothing left to wake
            alive = False
        if alive:
            self._thread.join(timeout=5)
        else:
            self._server.close()
        self._server.task_dispatcher.shutdown()
