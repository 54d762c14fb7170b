"""What every push source (an HTTP endpoint that external systems post to) answers the same way:
401/403 for credentials, 413 for a body over its limit, 503 (with `Retry-After`) when the bus
cannot store the message now — never a 202 for a message that was not stored.

Each check raises a `Refusal` (status, a one-word error, the sentence for the caller, the headers
the answer needs); a source answers it in its own format: `refusal.json_response()` for the JSON
endpoints, a SOAP fault for the SOAP endpoint. Adapters use this module, never the broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from flask import Response, request

from esb import jsonfmt
from esb.errors import Unavailable, WouldWait
from esb.plugins import Accepted, RawMessage, Submit

INLINE = "esb.inline"
"""The WSGI environ key that is True when the app runs on the server's loop thread, which must
never wait: `answer_when_stored` then asks for the request to be run again on a thread
(`environ[OFFLOAD]()`) where storing would have to wait."""

OFFLOAD = "esb.offload"

DEFER = "esb.defer"
"""The WSGI environ key of a server that can wait for an answer (`esb.http_server`): its value is
`defer(deferred, answer)`; an app that calls it returns a placeholder response, and the server
sends `answer()` once `deferred` (an `esb.inbound.Storing`) is done. See `answer_when_stored`."""

RETRY_AFTER_SECONDS = 5
"""Seconds a caller is told to wait (`Retry-After`) before posting again when the bus cannot store."""

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="esb"'}
"""The challenge of a 401: an API key or bearer token is what the bus accepts."""


class Refusal(Exception):
    """A request a push source refuses before storing anything."""

    def __init__(self, status: int, error: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})

    def json_response(self) -> Response:
        """The answer of a JSON endpoint: `{"error": ..., "message": ...}` with the status and headers."""
        return error_response(self.status, self.error, self.message, self.headers)


def error_response(status: int, error: str, message: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    """The bus's JSON error answer (`error` is one word, `message` a sentence for the caller)."""
    return json_response({"error": error, "message": message}, status, headers)


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """`value` as a JSON answer. Unlike `flask.jsonify` it needs no app context, so a deferred
    answer is made on the server's loop without pushing one (measured: 15 us a request)."""
    return Response(jsonfmt.dump_bytes(value), status, headers=dict(headers or {}),
                    mimetype="application/json")


def authorize(credentials: Any, route: str, key: str | None, *,
              accepted: str = "API key (X-API-Key) or bearer token", action: str = "post to") -> Any:
    """The principal of `key` when it may send to `route` (role `sender=<route>`); otherwise a
    Refusal: 401 for no or an unknown key (`accepted` names what the endpoint takes), 403 for a
    key without the role (`action` says what it may not do: "post to", "call")."""
    principal = credentials.identify(key) if credentials is not None else None
    if principal is None:
        raise Refusal(401, "unauthorized", f"a valid {accepted} is required", BEARER_CHALLENGE)
    if not principal.may_send(route):
        raise Refusal(403, "forbidden", f'"{principal.name}" may not {action} route "{route}"')
    return principal


def refuse_declared_length(request: Any, limit: int, *, what: str = "body") -> None:
    """A Refusal (413) when the request's Content-Length already says it is over `limit` bytes,
    so the body is never read."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit, what)


def read_body(request: Any, limit: int, *, what: str = "body") -> bytes:
    """The request body, at most `limit` bytes; a Refusal (413) when it is larger, whether its
    Content-Length says so or it is sent without one (chunked)."""
    refuse_declared_length(request, limit, what=what)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large(limit, what)
    return body


def too_large(limit: int, what: str = "body") -> Refusal:
    return Refusal(413, "too_large", f"the {what} is larger than the limit of {limit} bytes")


def store(submit: Submit, raw: RawMessage, *, idempotency_key: str | None, advice: str = "",
          business_key: str | None = None) -> Accepted:
    """`submit(raw)` (with the request's `idempotency_key` and the source's `business_key`), with
    `Unavailable` (the bus cannot store now) turned into a Refusal (503, `Retry-After`); `advice`
    is appended to the sentence. Input errors pass through: each source answers them in its own
    format."""
    try:
        return submit(raw, **_keys(idempotency_key, business_key))
    except Unavailable as error:
        raise unavailable(error, advice) from None


def answer_when_stored(submit_async: Callable[..., Any], raw: RawMessage,
                       answer: Callable[[Accepted], Response], *, idempotency_key: str | None,
                       business_key: str | None = None) -> Response:
    """`store`, answered with `answer(accepted)` once the broker confirmed, without holding the
    request's thread meanwhile when the server can wait for it (`DEFER`): the
    server sends the answer when the confirms are in, and the thread serves the next request.
    `submit_async` is the source context's; `Unavailable`, before or after the publish, is a 503
    answer. Input errors pass through, raised here, as `store` raises them."""
    keys = _keys(idempotency_key, business_key)
    inline = request.environ.get(INLINE, False)
    if inline:
        keys["may_wait"] = False
    try:
        storing = submit_async(raw, **keys)
    except Unavailable as error:
        raise unavailable(error) from None
    except WouldWait:
        request.environ[OFFLOAD]()
        return Response(status=202)  # a placeholder: the server runs the request again on a thread

    def respond() -> Response:  # made on the server's loop thread, outside any Flask context
        try:
            return answer(storing.finish())
        except Unavailable as error:
            return unavailable(error).json_response()

    defer = request.environ.get(DEFER)
    if defer is None:  # a server that cannot wait for us (Flask's test client): wait here
        with suppress(Unavailable):
            storing.wait()
        return respond()
    defer(storing, respond)
    return Response(status=202)  # a placeholder: the server sends respond()'s answer instead


def _keys(idempotency_key: str | None, business_key: str | None) -> dict[str, Any]:
    """The keys a submit is given; `business_key` only when the source read one (a source's own
    `submit` need not take it)."""
    keys: dict[str, Any] = {"idempotency_key": idempotency_key}
    if business_key is not None:
        keys["business_key"] = business_key
    return keys


def unavailable(error: Unavailable, advice: str = "") -> Refusal:
    """The 503 of a message the bus cannot store now, with `Retry-After`."""
    return Refusal(503, "unavailable", f"the bus cannot store the message now{advice}: {error}",
                   {"Retry-After": str(RETRY_AFTER_SECONDS)})
