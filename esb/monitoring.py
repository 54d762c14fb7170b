"""Monitoring and admin over HTTP: `/metrics`, the admin API (`/api/...`, described by
`/api/openapi.json`) and the dashboard page, as one Flask blueprint built for a runtime.

Who may do what (keys from `ESB_API_KEYS` / `ESB_CREDENTIALS_FILE`, see `esb.credentials`, sent as
`Authorization: Bearer <key>` or `X-API-Key: <key>`):
- `viewer` (and `admin`): `/metrics`, every `GET /api/...` but the audit log;
- `viewer`: also `/readyz` (it says what is failing);
- `admin`: replay, purge, pause, resume, and reading the audit log; every admin action is written
  to the audit log (`esb.audit`), refused ones included.

Nothing here is open without a key, except the dashboard's page itself (static HTML and script,
no data: it asks for a key and calls the API with it). `ESB_OPEN_ENDPOINTS` (comma-separated)
opens some to anyone, for operators who want that: `metrics` (Prometheus scrapes without a key),
`readyz` (probes without a key), `read` (every viewer endpoint).
"""

from __future__ import annotations

import functools
import os
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, g, jsonify, request, send_file

from esb import metrics
from esb.audit import AUDIT_FILE_NAME, AuditLog
from esb.credentials import Credentials, Principal, presented_key
from esb.database import Database
from esb.transport import TransportError
from esb.transport.topology import DEAD_LETTER, INBOUND_DEAD_LETTER, RETRY, WORK

OPEN_ENDPOINTS_ENV = "ESB_OPEN_ENDPOINTS"
"""Comma-separated: `metrics` and/or `read` are served without credentials."""

DEFAULT_PAGE_SIZE = 50
"""Dead letters per page when `limit` is not given."""

MAX_PAGE_SIZE = 500
"""The largest `limit` a page of dead letters may ask for."""

LAST_ERROR_WINDOW = 86400.0
"""Seconds back the journal is searched for a route's last error."""

ERROR_STEPS = ("rejected", "retried", "dead_lettered")

STATIC = Path(__file__).parent / "static"

_ANONYMOUS = Principal("anonymous", frozenset({"viewer"}))


def monitoring_blueprint(
    runtime: Any,
    *,
    credentials: Credentials | None = None,
    audit: AuditLog | None = None,
    open_endpoints: set[str] | None = None,
) -> Blueprint:
    """The blueprint for `runtime` (its config, transport, journal and data directory).

    - `credentials`: who may call; default `runtime.options.credentials`;
    - `audit`: where admin actions go; default `<data_dir>/audit.jsonl`;
    - `open_endpoints`: default from `ESB_OPEN_ENDPOINTS` (`metrics`, `read`, `readyz`).
    """
    credentials = credentials if credentials is not None else runtime.options.credentials
    audit = audit or AuditLog(Path(runtime.options.data_dir) / AUDIT_FILE_NAME)
    if open_endpoints is None:
        open_endpoints = {e.strip() for e in os.environ.get(OPEN_ENDPOINTS_ENV, "").split(",") if e.strip()}
    queues = metrics.QueueCollector(runtime.transport)
    blueprint = Blueprint("monitoring", __name__)
    blueprint.audit = audit  # type: ignore[attr-defined]  # for tests and the runtime

    def requires(role: str, *, opened_by: str | None = None):
        def decorator(view):
            @functools.wraps(view)
            def guarded(*args, **kwargs):
                principal = credentials.identify(presented_key(request.headers))
                if principal is None:
                    if opened_by in open_endpoints or (role == "viewer" and "read" in open_endpoints):
                        g.principal = _ANONYMOUS
                        return view(*args, **kwargs)
                    response = jsonify(
                        error="unauthorized", message="a valid API key or bearer token is needed"
                    )
                    response.headers["WWW-Authenticate"] = 'Bearer realm="esb"'
                    return response, 401
                if not principal.has(role):
                    if role == "admin":
                        _audit(audit, principal, request.endpoint or "?", kwargs, {"refused": "not an admin"})
                    return jsonify(error="forbidden", message=f"the {role} role is needed"), 403
                g.principal = principal
                return view(*args, **kwargs)

            return guarded

        return decorator

    @blueprint.before_app_request
    def guard_readiness():
        """/readyz (served by esb.web) tells what is failing: viewers only, unless opened for probes."""
        if request.endpoint != "readyz" or "readyz" in open_endpoints:
            return None
        principal = credentials.identify(presented_key(request.headers))
        if principal is None:
            response = jsonify(error="unauthorized", message="a valid API key or bearer token is needed")
            response.headers["WWW-Authenticate"] = 'Bearer realm="esb"'
            return response, 401
        if not principal.has("viewer"):
            return jsonify(error="forbidden", message="the viewer role is needed"), 403
        return None

    def route_or_404(name: str):
        try:
            return runtime.config.route(name)
        except KeyError as error:
            abort(404, description=str(error.args[0]))

    def destination_argument(route, value: str | None) -> str | None:
        if value and value not in [d.name for d in route.destinations]:
            abort(404, description=f'route "{route.name}" has no destination "{value}"')
        return value or None

    @blueprint.errorhandler(TransportError)
    def broker_error(error: TransportError):
        return jsonify(error="broker_unavailable", message=str(error)), 503

    # --- metrics ------------------------------------------------------------------------------
    @blueprint.get("/metrics")
    @requires("viewer", opened_by="metrics")
    def metrics_page():
        return Response(metrics.scrape(queues), mimetype=metrics.CONTENT_TYPE)

    # --- reading ------------------------------------------------------------------------------
    @blueprint.get("/api/openapi.json")
    @requires("viewer")
    def openapi():
        return jsonify(OPENAPI)

    @blueprint.get("/api/whoami")
    @requires("viewer")
    def whoami():
        return jsonify(name=g.principal.name, roles=sorted(g.principal.roles), admin=g.principal.has("admin"))

    @blueprint.get("/api/routes")
    @requires("viewer")
    def routes():
        counters = metrics.counters_by_route()
        errors = last_errors(runtime.journal.target)
        return jsonify(
            broker_connected=runtime.transport.connected,
            routes=[route_state(r, counters, errors, queues, runtime) for r in runtime.config.routes],
        )

    @blueprint.get("/api/routes/<name>")
    @requires("viewer")
    def route(name: str):
        model = route_or_404(name)
        return jsonify(
            route_state(
                model, metrics.counters_by_route(), last_errors(runtime.journal.target), queues, runtime
            )
        )

    @blueprint.get("/api/routes/<name>/dead-letters")
    @requires("viewer")
    def dead_letters(name: str):
        model = route_or_404(name)
        destination = destination_argument(model, request.args.get("destination"))
        offset = _int_argument("offset", 0, 0, None)
        limit = _int_argument("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        letters = runtime.transport.dead_letters(name, destination, limit=offset + limit + 1)
        page = letters[offset : offset + limit]
        more = len(letters) > offset + limit
        return jsonify(
            route=name,
            destination=destination,
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
            total=queues.depth(name, destination, DEAD_LETTER, fresh=True, inbound=destination is None),
            items=[letter.summary() for letter in page],
        )

    @blueprint.get("/api/routes/<name>/dead-letters/<message_id>")
    @requires("viewer")
    def dead_letter(name: str, message_id: str):
        model = route_or_404(name)
        destination = destination_argument(model, request.args.get("destination"))
        for letter in runtime.transport.dead_letters(name, destination):
            if letter.message_id == message_id:
                return jsonify(letter.as_dict())
        abort(404, description=f'no dead letter "{message_id}" in route "{name}"')

    @blueprint.get("/api/trace")
    @requires("viewer")
    def trace():
        message_id, correlation_id = request.args.get("message_id"), request.args.get("correlation_id")
        if bool(message_id) == bool(correlation_id):
            abort(400, description="give exactly one of message_id or correlation_id")
        runtime.journal.flush(2.0)
        entries = runtime.journal.trace(message_id=message_id or None, correlation_id=correlation_id or None)
        if not entries:
            abort(
                404, description="nothing in the journal for this id (unknown, or older than the retention)"
            )
        return jsonify(
            message_id=message_id, correlation_id=correlation_id, hops=[entry.as_dict() for entry in entries]
        )

    @blueprint.get("/api/audit")
    @requires("admin")
    def audit_entries():
        return jsonify(entries=audit.entries(_int_argument("limit", 100, 1, 10_000)))

    # --- admin actions ------------------------------------------------------------------------
    def replay_or_purge(action: str, name: str, ids: list[str] | None, destination: str | None):
        present = {letter.message_id for letter in runtime.transport.dead_letters(name, destination)}
        target = {"route": name, "destination": destination, "ids": ids if ids is not None else "all"}
        try:
            if action == "replay":
                count = runtime.transport.replay_dead_letters(name, destination, ids=ids)
            else:
                count = runtime.transport.purge_dead_letters(name, destination, ids=ids)
        except Exception as error:
            _audit(
                audit,
                g.principal,
                f"dead-letters.{action}",
                target,
                {"failed": f"{type(error).__name__}: {error}"},
            )
            raise
        done = [i for i in ids if i in present] if ids is not None else sorted(i for i in present if i)
        step = "replayed" if action == "replay" else "purged"
        for message_id in done:
            runtime.journal.record(
                step,
                message_id=message_id,
                route=name,
                destination=destination,
                detail=f"by {g.principal.name}",
            )
        outcome = {
            "count": count,
            "ids": done,
            "missing": [i for i in ids if i not in present] if ids is not None else [],
        }
        entry = _audit(audit, g.principal, f"dead-letters.{action}", target, outcome)
        return jsonify(action=action, route=name, destination=destination, **outcome, audit=entry)

    def selection(model) -> tuple[list[str] | None, str | None]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400, description='send a JSON object: {"ids": [...]} or {"all": true}')
        destination = body.get("destination")
        if destination is not None and not isinstance(destination, str):  # 0, [], false: not "every one"
            abort(400, description='"destination" must be the name of a destination of the route')
        destination = destination_argument(model, destination)
        ids = body.get("ids")
        if "all" in body and body["all"] is not True:
            abort(400, description='"all" can only be true')
        if ("all" in body) == ("ids" in body):  # an "ids": null is not "all"
            abort(400, description='give either "ids" (a list of message ids) or "all": true')
        if "ids" in body and (
            not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids
        ):
            abort(400, description='"ids" must be a non-empty list of message ids')
        return ids, destination

    @blueprint.post("/api/routes/<name>/dead-letters/replay")
    @requires("admin")
    def replay_many(name: str):
        ids, destination = selection(route_or_404(name))
        return replay_or_purge("replay", name, ids, destination)

    @blueprint.post("/api/routes/<name>/dead-letters/purge")
    @requires("admin")
    def purge_many(name: str):
        ids, destination = selection(route_or_404(name))
        return replay_or_purge("purge", name, ids, destination)

    @blueprint.post("/api/routes/<name>/dead-letters/<message_id>/replay")
    @requires("admin")
    def replay_one(name: str, message_id: str):
        model = route_or_404(name)
        destination = destination_argument(model, request.args.get("destination"))
        return replay_or_purge("replay", name, [message_id], destination)

    def pause_or_resume(action: str, name: str):
        model = route_or_404(name)
        destination = destination_argument(model, request.args.get("destination"))
        change = runtime.transport.pause if action == "pause" else runtime.transport.resume
        destinations = change(name, destination)
        target = {"route": name, "destination": destination}
        entry = _audit(audit, g.principal, f"route.{action}", target, {"destinations": destinations})
        return jsonify(action=action, route=name, destinations=destinations,
                       paused=sorted(runtime.transport.paused(name)), audit=entry)

    @blueprint.post("/api/routes/<name>/pause")
    @requires("admin")
    def pause(name: str):
        return pause_or_resume("pause", name)

    @blueprint.post("/api/routes/<name>/resume")
    @requires("admin")
    def resume(name: str):
        return pause_or_resume("resume", name)

    # --- dashboard ----------------------------------------------------------------------------
    @blueprint.get("/dashboard")
    def dashboard():
        return send_file(STATIC / "dashboard.html", mimetype="text/html", max_age=0)

    return blueprint


# --- helpers ----------------------------------------------------------------------------------
def _int_argument(name: str, default: int, lowest: int, highest: int | None) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        abort(400, description=f"{name} must be an integer")
    if value < lowest or (highest is not None and value > highest):
        abort(
            400,
            description=f"{name} must be between {lowest} and {highest}"
            if highest is not None
            else f"{name} must be at least {lowest}",
        )
    return value


def _audit(
    audit: AuditLog, principal: Principal, action: str, target: dict[str, Any], outcome: dict[str, Any]
) -> dict[str, Any]:
    return audit.record(
        who=principal.name, action=action, target=target, outcome=outcome, address=request.remote_addr
    )


def last_errors(journal_target: str, window: float = LAST_ERROR_WINDOW) -> dict[str, dict[str, Any]]:
    """{route: its newest rejected/retried/dead-lettered journal entry of the last `window` seconds}."""
    database = Database(journal_target)
    marks = database.params(len(ERROR_STEPS))
    sql = (
        f"SELECT route, destination, step, detail, at FROM esb_trace WHERE step IN ({marks})"
        f" AND at_epoch >= {database.placeholder} ORDER BY at_epoch DESC LIMIT 1000"
    )
    with closing(database.connect()) as connection:
        rows = connection.cursor().execute(sql, (*ERROR_STEPS, time.time() - window)).fetchall()
    newest: dict[str, dict[str, Any]] = {}
    for route, destination, step, detail, at in rows:
        newest.setdefault(route, {"destination": destination, "step": step, "detail": detail, "at": at})
    return newest


def route_state(
    route: Any, counters: dict[str, Any], errors: dict[str, Any], queues: metrics.QueueCollector, runtime: Any
) -> dict[str, Any]:
    """What the admin API and the dashboard show of one route."""
    counted = counters.get(route.name, {"total": {}, "destinations": {}, "last_success": None})
    destinations = []
    for destination in route.destinations:
        work = queues.depth(route.name, destination.name, WORK)
        destinations.append(
            {
                "name": destination.name,
                "adapter": destination.endpoint.adapter,
                "counters": counted["destinations"].get(destination.name, {}),
                "queue_depth": work,
                "consumers": queues.consumers(route.name, destination.name, WORK),
                "retry_depth": queues.depth(route.name, destination.name, RETRY),
                "dead_letter_depth": queues.depth(route.name, destination.name, DEAD_LETTER),
            }
        )
    consumers = [d["consumers"] for d in destinations]
    paused = runtime.transport.paused(route.name)
    for destination in destinations:
        destination["paused"] = destination["name"] in paused
    if not runtime.transport.connected:
        state = "disconnected"
    elif paused and len(paused) == len(destinations):
        state = "paused"
    elif any(c is None for c in consumers):
        state = "unknown"
    elif all(consumers):
        state = "running"
    else:
        state = "degraded" if any(consumers) else "stopped"
    dead_letter_depths = [d["dead_letter_depth"] for d in destinations]
    inbound = queues.depth(route.name, None, INBOUND_DEAD_LETTER)
    return {
        "name": route.name,
        "source": route.source.adapter,
        "state": state,
        "counters": counted["total"],
        "last_success": counted["last_success"],
        "last_error": errors.get(route.name),
        "dead_letter_depth": None
        if None in dead_letter_depths or inbound is None
        else sum(dead_letter_depths) + inbound,
        "destinations": destinations,
    }


# --- the OpenAPI document -----------------------------------------------------------------------
def _answer(description: str, schema: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema:
        answer["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return answer


def _operation(
    summary: str,
    role: str,
    ok: dict[str, Any],
    *,
    parameters: tuple[str, ...] = (),
    body: bool = False,
    missing: bool = True,
) -> dict[str, Any]:
    responses = {"200": ok, "401": _answer("No valid key", "Error"), "403": _answer(f"Not a {role}", "Error")}
    if missing:
        responses["404"] = _answer("Unknown route, destination or message", "Error")
    if body or parameters:
        responses["400"] = _answer("Bad parameters", "Error")
    if role == "admin" or "route" in parameters:
        responses["503"] = _answer("The broker cannot be reached", "Error")
    operation: dict[str, Any] = {
        "summary": f"{summary} (role: {role})",
        "responses": responses,
        "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in parameters],
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Selection"}}},
        }
    return operation


_OBJECT = {"type": "object", "additionalProperties": True}
_TEXT_OR_NULL = {"type": "string", "nullable": True}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "esb admin API",
        "version": "1",
        "description": "Routes, dead letters, message traces and the audit log of the bus. Send a key "
        "as `Authorization: Bearer <key>` or `X-API-Key: <key>`; `viewer` reads, "
        "`admin` also replays and purges (every admin action is audited).",
    },
    "security": [{"bearer": []}, {"apiKey": []}],
    "paths": {
        "/metrics": {
            "get": {
                **_operation(
                    "Prometheus metrics",
                    "viewer",
                    {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    missing=False,
                )
            }
        },
        "/api/whoami": {
            "get": _operation(
                "Who the key belongs to", "viewer", _answer("The caller", "Whoami"), missing=False
            )
        },
        "/api/routes": {
            "get": _operation(
                "Every route with its state and counters",
                "viewer",
                _answer("The routes", "Routes"),
                missing=False,
            )
        },
        "/api/routes/{route}": {
            "get": _operation("One route", "viewer", _answer("The route", "Route"), parameters=("route",))
        },
        "/api/routes/{route}/dead-letters": {
            "get": _operation(
                "A page of dead letters (every destination and raw inbound input, or one destination)",
                "viewer",
                _answer("A page", "DeadLetterPage"),
                parameters=("route", "destination", "offset", "limit"),
            )
        },
        "/api/routes/{route}/dead-letters/{message_id}": {
            "get": _operation(
                "One dead letter with its headers and body",
                "viewer",
                _answer("The dead letter", "DeadLetter"),
                parameters=("route", "message_id", "destination"),
            )
        },
        "/api/routes/{route}/dead-letters/{message_id}/replay": {
            "post": _operation(
                "Send one dead letter back to its destination's work queue",
                "admin",
                _answer("Done", "Done"),
                parameters=("route", "message_id", "destination"),
            )
        },
        "/api/routes/{route}/dead-letters/replay": {
            "post": _operation(
                "Replay some (ids) or all dead letters of a route or destination",
                "admin",
                _answer("Done", "Done"),
                parameters=("route",),
                body=True,
            )
        },
        "/api/routes/{route}/dead-letters/purge": {
            "post": _operation(
                "Delete some (ids) or all dead letters of a route or destination",
                "admin",
                _answer("Done", "Done"),
                parameters=("route",),
                body=True,
            )
        },
        "/api/routes/{route}/pause": {
            "post": _operation(
                "Stop consuming a route's destinations (or one): messages wait in their queues",
                "admin",
                _answer("Paused", "PauseResult"),
                parameters=("route", "destination"),
            )
        },
        "/api/routes/{route}/resume": {
            "post": _operation(
                "Consume a paused route's destinations (or one) again",
                "admin",
                _answer("Resumed", "PauseResult"),
                parameters=("route", "destination"),
            )
        },
        "/api/trace": {
            "get": _operation(
                "Every hop of a message, or of all messages of a correlation id",
                "viewer",
                _answer("The hops, oldest first", "Trace"),
                parameters=("message_id_query", "correlation_id"),
            )
        },
        "/api/audit": {
            "get": _operation(
                "The newest audit entries, newest first",
                "admin",
                _answer("Entries", "Audit"),
                parameters=("limit",),
                missing=False,
            )
        },
        "/api/openapi.json": {
            "get": _operation(
                "This document",
                "viewer",
                {"description": "OpenAPI 3", "content": {"application/json": {"schema": _OBJECT}}},
                missing=False,
            )
        },
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
        "parameters": {
            "route": {"name": "route", "in": "path", "required": True, "schema": {"type": "string"}},
            "message_id": {
                "name": "message_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
            },
            "destination": {
                "name": "destination",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "One destination of the route",
            },
            "offset": {
                "name": "offset",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 0, "default": 0},
            },
            "limit": {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                    "default": DEFAULT_PAGE_SIZE,
                },
            },
            "message_id_query": {
                "name": "message_id",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "Give exactly one of message_id and correlation_id (else 400)",
            },
            "correlation_id": {
                "name": "correlation_id",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "Give exactly one of message_id and correlation_id (else 400)",
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            },
            "Whoami": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "admin": {"type": "boolean"},
                    "roles": {"type": "array", "items": {"type": "string"}},
                },
            },
            "Counters": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "received, published, delivered, retried, dead_lettered, rejected",
            },
            "Route": {
                "type": "object",
                "required": ["name", "state", "counters", "destinations"],
                "properties": {
                    "name": {"type": "string"},
                    "source": {"type": "string"},
                    "state": {
                        "type": "string",
                        "enum": ["running", "degraded", "paused", "stopped", "disconnected", "unknown"],
                    },
                    "counters": {"$ref": "#/components/schemas/Counters"},
                    "last_success": {"type": "number", "nullable": True, "description": "Unix time"},
                    "last_error": {"type": "object", "nullable": True, "additionalProperties": True},
                    "dead_letter_depth": {"type": "integer", "nullable": True},
                    "destinations": {"type": "array", "items": _OBJECT},
                },
            },
            "Routes": {
                "type": "object",
                "properties": {
                    "broker_connected": {"type": "boolean"},
                    "routes": {"type": "array", "items": {"$ref": "#/components/schemas/Route"}},
                },
            },
            "DeadLetterSummary": {
                "type": "object",
                "properties": {
                    "id": _TEXT_OR_NULL,
                    "correlation_id": _TEXT_OR_NULL,
                    "route": {"type": "string"},
                    "destination": _TEXT_OR_NULL,
                    "attempts": {"type": "integer"},
                    "reason": _TEXT_OR_NULL,
                    "last_error": _TEXT_OR_NULL,
                    "last_failed_at": _TEXT_OR_NULL,
                    "dead_lettered_at": _TEXT_OR_NULL,
                },
            },
            "DeadLetter": {
                "allOf": [
                    {"$ref": "#/components/schemas/DeadLetterSummary"},
                    {
                        "type": "object",
                        "properties": {
                            "headers": _OBJECT,
                            "body": {},
                            "type": _TEXT_OR_NULL,
                            "content_type": _TEXT_OR_NULL,
                        },
                    },
                ]
            },
            "DeadLetterPage": {
                "type": "object",
                "properties": {
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "next_offset": {"type": "integer", "nullable": True},
                    "total": {"type": "integer", "nullable": True},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetterSummary"}},
                },
            },
            "Selection": {
                "type": "object",
                "properties": {
                    "ids": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "all": {"type": "boolean", "enum": [True]},
                    "destination": {"type": "string", "nullable": True},
                },
                "oneOf": [{"required": ["ids"]}, {"required": ["all"]}],
                "description": 'Either {"ids": [...]} or {"all": true}; "destination" narrows to one.',
            },
            "Done": {
                "type": "object",
                "properties": {
                    "action": {"type": "string"},
                    "count": {"type": "integer"},
                    "ids": {"type": "array", "items": {"type": "string"}},
                    "missing": {"type": "array", "items": {"type": "string"}},
                    "audit": _OBJECT,
                },
            },
            "PauseResult": {
                "type": "object",
                "required": ["action", "route", "destinations", "paused"],
                "properties": {
                    "action": {"type": "string", "enum": ["pause", "resume"]},
                    "route": {"type": "string"},
                    "destinations": {"type": "array", "items": {"type": "string"}},
                    "paused": {"type": "array", "items": {"type": "string"},
                               "description": "the route's destinations paused now"},
                    "audit": _OBJECT,
                },
            },
            "Trace": {"type": "object", "properties": {"hops": {"type": "array", "items": _OBJECT}}},
            "Audit": {"type": "object", "properties": {"entries": {"type": "array", "items": _OBJECT}}},
        },
    },
}
