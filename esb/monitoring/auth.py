"""Who may call what: API keys (`esb.credentials`) and roles, endpoints an operator opened with
`ESB_OPEN_ENDPOINTS`, and the guard of `/readyz`.

- `viewer` (and `admin`): `/metrics`, every `GET /api/...` but the audit log, and `/readyz`
  (it says what is failing; see `esb.monitoring.health`);
- `admin`: replay, purge, pause, resume, and reading the audit log; a refused admin action is
  written to the audit log too.
`ESB_OPEN_ENDPOINTS` (comma-separated) opens some to anyone: `metrics` (Prometheus scrapes
without a key), `readyz` (probes without a key), `read` (every viewer endpoint).
Nothing else is open without a key, except `/healthz` and the dashboard's page itself.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from flask import g, jsonify, request

from esb.admin import Actor, AdminService
from esb.credentials import Credentials, Principal, presented_key

OPEN_ENDPOINTS_ENV = "ESB_OPEN_ENDPOINTS"
"""Comma-separated: `metrics`, `readyz` and/or `read` are served without credentials."""

_ANONYMOUS = Principal("anonymous", frozenset({"viewer"}))


def open_endpoints_from(environ: Mapping[str, str] = os.environ) -> set[str]:
    """The endpoints `ESB_OPEN_ENDPOINTS` opens."""
    return {e.strip() for e in environ.get(OPEN_ENDPOINTS_ENV, "").split(",") if e.strip()}


def unauthorized():
    response = jsonify(error="unauthorized", message="a valid API key or bearer token is needed")
    response.headers["WWW-Authenticate"] = 'Bearer realm="esb"'
    return response, 401


def forbidden(role: str):
    return jsonify(error="forbidden", message=f"the {role} role is needed"), 403


def actor() -> Actor:
    """The caller of this request, as the admin service audits it."""
    return Actor(g.principal.name, request.remote_addr)


class Access:
    """Checks the caller of each view against `credentials`; refused admin calls go to the audit
    log of `service`."""

    def __init__(self, credentials: Credentials, open_endpoints: set[str], service: AdminService):
        self.credentials = credentials
        self.open_endpoints = open_endpoints
        self.service = service

    def identify(self):
        """The caller's principal, or None without a valid key."""
        return self.credentials.identify(presented_key(request.headers))

    def requires(self, role: str, *, opened_by: str | None = None) -> Callable:
        """A view decorator: the caller needs `role`, unless `opened_by` (or `read`, for a viewer
        view) is an open endpoint. Sets `g.principal`."""

        def decorator(view):
            @functools.wraps(view)
            def guarded(*args: Any, **kwargs: Any):
                principal = self.identify()
                if principal is None:
                    opened = self.open_endpoints
                    if opened_by in opened or (role == "viewer" and "read" in opened):
                        g.principal = _ANONYMOUS
                        return view(*args, **kwargs)
                    return unauthorized()
                if not principal.has(role):
                    if role == "admin":
                        self.service.record_refusal(Actor(principal.name, request.remote_addr),
                                                    request.endpoint or "?", kwargs, "not an admin")
                    return forbidden(role)
                g.principal = principal
                return view(*args, **kwargs)

            return guarded

        return decorator
