"""The HTTP app: inbound endpoints of push sources, health and readiness (and, with the
monitoring issue, metrics, the admin API and the dashboard). Built by a factory, served by
`esb.http_server` — never by Flask's development server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from esb.push import error_response

SECURITY_HEADERS = {
    # Scripts, styles and API calls from this origin only (the dashboard has no inline script or
    # style); no plugins, no <base>, forms post here only, and no page may frame this one.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Headers of every answer of the bus's HTTP app (inbound endpoints, API, dashboard, errors); the
HTTP server adds them to the answers it makes itself (framing errors)."""

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

    @app.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

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
