"""The admin API (`/api/...`): routes and their state, dead letters (list, show, replay, purge),
pause and resume, message traces, the audit log. Every action goes through `esb.admin`, which
journals and audits it the same way for the API and the CLI."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, g, jsonify, request

from esb import metrics
from esb.admin import AdminService, DeadLetterAction
from esb.monitoring.arguments import (
    DEFAULT_AUDIT_ENTRIES,
    DEFAULT_PAGE_SIZE,
    MAX_AUDIT_ENTRIES,
    MAX_PAGE_SIZE,
    int_argument,
    selection,
)
from esb.monitoring.auth import Access, actor
from esb.monitoring.openapi import OPENAPI
from esb.monitoring.state import route_state
from esb.transport.topology import DEAD_LETTER


def add_api_views(
    blueprint: Blueprint,
    service: AdminService,
    access: Access,
    queues: metrics.QueueCollector,
) -> None:
    """Register the `/api/...` views on `blueprint`. An unknown route, destination or message id
    raises `NotFound` (the blueprint answers 404), a broker failure `TransportError` (503)."""
    requires = access.requires
    transport, config, journal = service.transport, service.config, service.journal

    def destination_query(name: str) -> str | None:
        return service.destination(name, request.args.get("destination"))

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
        counters, errors = metrics.counters_by_route(), journal.last_errors()
        latency = metrics.latency_by_destination()
        return jsonify(
            broker_connected=transport.connected,
            routes=[route_state(r, counters, errors, queues, transport, latency) for r in config.routes],
        )

    @blueprint.get("/api/routes/<name>")
    @requires("viewer")
    def route(name: str):
        counters, errors = metrics.counters_by_route(), journal.last_errors()
        latency = metrics.latency_by_destination()
        return jsonify(route_state(service.route(name), counters, errors, queues, transport, latency))

    @blueprint.get("/api/routes/<name>/dead-letters")
    @requires("viewer")
    def dead_letters(name: str):
        destination = destination_query(name)
        offset = int_argument("offset", 0, 0, None)
        limit = int_argument("limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        view = request.args.get("view", "summary")
        if view not in ("summary", "full"):
            abort(400, description="view must be summary or full")
        letters = service.dead_letters(name, destination, limit=offset + limit + 1)
        page = letters[offset : offset + limit]
        more = len(letters) > offset + limit
        return jsonify(
            route=name,
            destination=destination,
            offset=offset,
            limit=limit,
            next_offset=offset + limit if more else None,
            total=queues.depth(name, destination, DEAD_LETTER, fresh=True, inbound=destination is None),
            items=[letter.as_dict() if view == "full" else letter.summary() for letter in page],
        )

    @blueprint.get("/api/routes/<name>/dead-letters/<message_id>")
    @requires("viewer")
    def dead_letter(name: str, message_id: str):
        destination = destination_query(name)
        return jsonify(service.dead_letter(name, message_id, destination).as_dict())

    @blueprint.get("/api/trace")
    @requires("viewer")
    def trace():
        asked = {name: request.args.get(name) or None
                 for name in ("message_id", "correlation_id", "document_number")}
        if sum(value is not None for value in asked.values()) != 1:
            abort(400, description="give exactly one of message_id, correlation_id or document_number")
        entries = service.trace(**asked)
        if not entries:
            abort(
                404, description="nothing in the journal for this id (unknown, or older than the retention)"
            )
        return jsonify(**asked, hops=[entry.as_dict() for entry in entries])

    @blueprint.get("/api/activity")
    @requires("viewer")
    def activity():
        return jsonify(journal.activity())

    @blueprint.get("/api/audit")
    @requires("admin")
    def audit_entries():
        limit = int_argument("limit", DEFAULT_AUDIT_ENTRIES, 1, MAX_AUDIT_ENTRIES)
        return jsonify(entries=service.audit.entries(limit))

    # --- admin actions ------------------------------------------------------------------------
    def on_selection(change: Callable[..., DeadLetterAction], name: str):
        service.route(name)  # an unknown route is a 404 before the body is read
        ids, destination = selection(service, name)
        return jsonify(change(name, destination, ids, actor=actor()).as_dict())

    @blueprint.post("/api/routes/<name>/dead-letters/replay")
    @requires("admin")
    def replay_many(name: str):
        return on_selection(service.replay, name)

    @blueprint.post("/api/routes/<name>/dead-letters/purge")
    @requires("admin")
    def purge_many(name: str):
        return on_selection(service.purge, name)

    @blueprint.post("/api/routes/<name>/dead-letters/<message_id>/replay")
    @requires("admin")
    def replay_one(name: str, message_id: str):
        return jsonify(service.replay(name, destination_query(name), [message_id], actor=actor()).as_dict())

    @blueprint.post("/api/routes/<name>/pause")
    @requires("admin")
    def pause(name: str):
        return jsonify(service.pause(name, destination_query(name), actor=actor()).as_dict())

    @blueprint.post("/api/routes/<name>/resume")
    @requires("admin")
    def resume(name: str):
        return jsonify(service.resume(name, destination_query(name), actor=actor()).as_dict())
