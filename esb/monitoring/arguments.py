"""What the admin API reads from a request: paging arguments and the selection of dead letters
an action works on. Bad values abort with a 400 that says why (an unknown destination raises
`NotFound`, a 404)."""

from __future__ import annotations

from flask import abort, request

from esb.admin import AdminService

DEFAULT_PAGE_SIZE = 50
"""Dead letters per page when `limit` is not given."""

MAX_PAGE_SIZE = 500
"""The largest `limit` a page of dead letters may ask for."""

DEFAULT_AUDIT_ENTRIES = 100
"""Audit entries in an answer when `limit` is not given."""

MAX_AUDIT_ENTRIES = 10_000
"""The largest `limit` the audit log may be asked for."""


def int_argument(name: str, default: int, lowest: int, highest: int | None) -> int:
    """The query argument `name` as an integer in [lowest, highest]; `default` when absent."""
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


def selection(service: AdminService, route: str) -> tuple[list[str] | None, str | None]:
    """(ids or None for all, destination) from a body `{"ids": [...]}` or `{"all": true}`,
    with an optional `"destination"`."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='send a JSON object: {"ids": [...]} or {"all": true}')
    destination = body.get("destination")
    if destination is not None and not isinstance(destination, str):  # 0, [], false: not "every one"
        abort(400, description='"destination" must be the name of a destination of the route')
    destination = service.destination(route, destination)  # NotFound: a 404
    ids = body.get("ids")
    if "all" in body and body["all"] is not True:
        abort(400, description='"all" can only be true')
    if ("all" in body) == ("ids" in body):  # an "ids": null is not "all"
        abort(400, description='give either "ids" (a list of message ids) or "all": true')
    if "ids" in body and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids):
        abort(400, description='"ids" must be a non-empty list of message ids')
    return ids, destination
