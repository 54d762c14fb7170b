"""REST over HTTP: inbound `POST /in/<route>` (a push source) and outbound calls (a sink).

Options are JSON-Schema fragments. Keywords the bus adds (see `esb.config`):
`x-esb-role` ("source" or "sink") marks an option that only one side takes, `x-esb-path`
marks a file path (resolved relative to the routes file), `x-esb-source-required` /
`x-esb-sink-required` list what each side needs.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

import jmespath
import requests
from flask import jsonify, request

from esb import jsonfmt, push
from esb.credentials import presented_key_of
from esb.durations import parse_duration
from esb.errors import Conflict, DecodeError, InputError, Permanent, Retryable
from esb.http_client import CallFailed, CallTimeout, HttpClient, basic_authorization
from esb.plugins import (
    DEFAULT_TIMEOUT,
    Accepted,
    AdapterSpec,
    RawMessage,
    Sink,
    Source,
    SourceContext,
    basic_auth_options,
    body_limit_option,
    key_auth_options,
    register,
    sender_auth_option,
    timeout_option,
    tls_options,
)

DEFAULT_SUCCESS_CODES = [200, 201, 202, 204]


SYSTEM_SCHEMA = {
    "type": "object",
    "description": "How to reach a system's HTTP API. Secrets come from ${ENV} variables.",
    "additionalProperties": False,
    "required": ["base_url"],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://",
                     "x-esb-expected": "an http:// or https:// URL",
                     "description": "Base URL of the API (http:// or https://); a destination's path is "
                                    "appended to it."},
        **key_auth_options(),
        **basic_auth_options(),
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                    "description": "Extra headers sent with every call to this system."},
        "timeout": timeout_option(),
        **tls_options(),
    },
}

ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "from: an inbound endpoint `POST /in/<route>`; to: a call to a system's API.",
    "x-esb-source": True,
    "x-esb-sink": True,
    "x-esb-sink-required": ["system", "path"],
    "additionalProperties": False,
    "properties": {
        "system": {"type": ["string", "null"], "default": None,
                   "description": "The system (under systems:) this endpoint talks to; for a source, the "
                                  "sender, recorded as the message's source."},
        "format": {"enum": ["json", "xml"], "default": "json",
                   "description": "Body format: what the inbound endpoint accepts, or what a call sends."},
        # inbound (source) options
        "max_body_bytes": body_limit_option(**{"x-esb-role": "source"}),
        "auth": sender_auth_option(**{"x-esb-role": "source"}),
        "idempotency_key": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                            "description": "JMESPath over the decoded body giving the business key that "
                                           "de-duplicates re-posted documents; default: the caller's "
                                           "Idempotency-Key header, if any."},
        # outbound (sink) options
        "method": {"enum": ["POST", "PUT", "PATCH", "DELETE"], "default": "POST", "x-esb-role": "sink",
                   "description": "HTTP method of the call."},
        "path": {"type": "string", "x-esb-role": "sink",
                 "description": "Path appended to the system's base_url; {field} placeholders are filled "
                                "from the mapped document (dotted paths allowed) and URL-encoded, e.g. "
                                "/orders/{order_number}."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                    "x-esb-role": "sink", "description": "Extra headers for this call."},
        "timeout": timeout_option(None, description="Seconds the call may take, or a duration; default: the "
                                                 "system's timeout.", **{"x-esb-role": "sink"}),
        "idempotency_header": {"type": "boolean", "default": True, "x-esb-role": "sink",
                               "description": "Send the message id as the Idempotency-Key header, so the "
                                              "target can ignore a redelivered message."},
        "success_codes": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599},
                          "minItems": 1, "default": DEFAULT_SUCCESS_CODES, "x-esb-role": "sink",
                          "description": "Status codes that mean delivered. Otherwise 408, 429 and 5xx "
                                         "are retried and other codes dead-lettered."},
        "capture_id": {"type": ["string", "null"], "default": None, "x-esb-role": "sink",
                       "description": "JMESPath over the response body giving the id the target gave the "
                                      "document; it is recorded in the message's trace."},
    },
}


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """The CA file of the system exists (other problems show only when a call is made)."""
    ca_file = (system or {}).get("ca_file")
    if ca_file and not Path(ca_file).is_file():
        return [f"CA file not found: {ca_file}"]
    return []


# --- the source: POST /in/<route> ------------------------------------------------------------

class RestSource(Source):
    """A push source: `POST /in/<route>` answers 202 with the message id once the broker confirmed.

    200 with the first id for a repeat (same `Idempotency-Key` header or business key), 409 for an
    `Idempotency-Key` used before with another body, 400 undecodable, 422 unmappable or invalid
    (each problem listed), 401 no or unknown key,
    403 a key without the sender role for this route, 413 over `max_body_bytes`,
    503 when the bus cannot store the message now (never a 202 that was not stored).
    """

    def __init__(self, endpoint, system: dict | None, route_name: str):
        self.options = {name: spec.get("default") for name, spec in ENDPOINT_SCHEMA["properties"].items()}
        self.options.update(endpoint.options)
        self.route = route_name
        self.sender = endpoint.options.get("system")
        expression = self.options.get("idempotency_key")
        self._key_expression = jmespath.compile(expression) if expression else None

    def start(self, context: SourceContext) -> None:
        self._submit = context.submit
        self._submit_async = context.submit_async
        self._credentials = context.credentials
        context.add_url_rule(f"/in/{self.route}", endpoint=f"in_{self.route}", view_func=self._receive,
                             methods=["POST"])

    def _receive(self):
        try:
            if self.options["auth"] != "none":
                push.authorize(self._credentials, self.route, presented_key_of(request.environ))
            body = push.read_body(request, self.options["max_body_bytes"])
            if not body:
                return push.error_response(400, "decode", "the body is empty")
            metadata = {"sender": self.sender, "remote": request.remote_addr}
            raw = RawMessage(body, request.content_type, metadata)
            idempotency_key = request.environ.get("HTTP_IDEMPOTENCY_KEY")
            if self._submit_async is None:
                return _accepted(push.store(self._submit, raw, idempotency_key=idempotency_key,
                                            business_key=self._business_key(body)))
            return push.answer_when_stored(self._submit_async, raw, _accepted,
                                           idempotency_key=idempotency_key,
                                           business_key=self._business_key(body))
        except push.Refusal as refusal:
            return refusal.json_response()
        except DecodeError as error:
            return jsonify(error.as_dict()), 400
        except Conflict as error:
            return jsonify(error.as_dict()), 409
        except InputError as error:
            return jsonify(error.as_dict()), 422

    def _business_key(self, body: bytes) -> str | None:
        if self._key_expression is None or self.options["format"] != "json":
            return None
        try:
            value = self._key_expression.search(jsonfmt.loads(body))
        except ValueError:
            return None  # the pipeline reports the bad JSON with its position
        return None if value is None else str(value)


def _accepted(accepted: Accepted):
    """202 with the new ids, or 200 with the first ids for a repeat (made outside a Flask context
    when the answer was deferred)."""
    ids = list(accepted.message_ids)
    answer = {"id": ids[0] if len(ids) == 1 else None, "ids": ids, "duplicate": accepted.duplicate}
    return push.json_response(answer, 200 if accepted.duplicate else 202)


# --- the sink: calls to a system's API ----------------------------------------------------------

RETRYABLE_STATUS = frozenset({408, 425, 429})


class RestSink(Sink):
    """One HTTP call per message; 2xx (or `success_codes`) delivered, 408/425/429/5xx and
    connection errors or timeouts retryable, any other status permanent."""

    def __init__(self, endpoint, system: dict):
        options = endpoint.options
        self.method = options.get("method", "POST")
        self.base_url = system["base_url"].rstrip("/")
        self.path = options["path"]
        self.timeout = parse_duration(options.get("timeout") or system.get("timeout") or DEFAULT_TIMEOUT)
        self.success_codes = frozenset(options.get("success_codes") or DEFAULT_SUCCESS_CODES)
        self.idempotency_header = options.get("idempotency_header", True)
        capture = options.get("capture_id")
        self._capture = jmespath.compile(capture) if capture else None
        self.headers = {**(system.get("headers") or {}), **(options.get("headers") or {})}
        self.auth = None
        if system.get("token"):
            self.headers["Authorization"] = f"Bearer {system['token']}"
        elif system.get("username"):
            self.auth = (system["username"], system.get("password") or "")
        if system.get("api_key"):
            self.headers[system.get("api_key_header") or "X-API-Key"] = system["api_key"]
        self.verify = system.get("ca_file") or system.get("verify_tls", True)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._client: HttpClient | None = None  # the lean client, unless a proxy is configured
        if not HttpClient.proxied(self.base_url):
            auth_headers = {"Authorization": basic_authorization(*self.auth)} if self.auth else {}
            self._client = HttpClient(self.base_url, timeout=self.timeout, verify=self.verify,
                                      headers={**self.headers, **auth_headers})
            origin = urlsplit(self.base_url)
            self._origin_length = len(f"{origin.scheme}://{origin.netloc}")

    def _session(self) -> requests.Session:
        """One connection-pooling session per handler thread (a Session is not made for sharing);
        only for targets behind a proxy (HTTP_PROXY, HTTPS_PROXY), which esb.http_client does not speak."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.headers)
            session.auth = self.auth
            session.verify = self.verify
            self._sessions.append(session)
        return session

    def url_for(self, document: dict) -> str:
        """The path template filled from the document (dotted paths), each value URL-encoded."""
        def fill(match: re.Match) -> str:
            value = jmespath.search(match.group(1), document)
            if value is None:
                raise Permanent(f"path {self.path!r}: the document has no {match.group(1)!r}")
            return quote(str(value), safe="")
        return self.base_url + _PLACEHOLDER.sub(fill, self.path)

    def deliver(self, envelope, body: bytes, content_type: str) -> str | None:
        headers = {"Content-Type": content_type}
        if self.idempotency_header:
            headers["Idempotency-Key"] = envelope.id
        if envelope.correlation_id:
            headers["X-Correlation-Id"] = envelope.correlation_id
        url = self.url_for(_path_document(body, envelope.payload) if "{" in self.path else {})
        if self._client is None:
            status, text, content = self._call_through_proxy(url, body, headers)
        else:
            try:
                response = self._client.request(self.method, url[self._origin_length:] or "/", body, headers)
            except CallTimeout as error:
                raise Retryable(f"{self.method} {url}: no answer within {self.timeout:g} s") from error
            except CallFailed as error:
                raise Retryable(f"{self.method} {url}: {error}") from error
            except ValueError as error:  # a header that would split the request: never sendable
                raise Permanent(f"{self.method} {url}: {error}") from error
            status, content = response.status, response.body
            text = response.text if status not in self.success_codes else ""
        if status in self.success_codes:
            return self._captured_id(content)
        text = f"{self.method} {url} answered {status}: {text[:300]}"
        if status in RETRYABLE_STATUS or status >= 500:
            raise Retryable(text)
        raise Permanent(text)

    def _call_through_proxy(self, url: str, body: bytes, headers: dict) -> tuple[int, str, bytes]:
        try:
            response = self._session().request(self.method, url, data=body, headers=headers,
                                               timeout=self.timeout)
        except requests.Timeout as error:
            raise Retryable(f"{self.method} {url}: no answer within {self.timeout:g} s") from error
        except requests.RequestException as error:
            raise Retryable(f"{self.method} {url}: {type(error).__name__}: {error}") from error
        return response.status_code, response.text, response.content

    def _captured_id(self, content: bytes) -> str | None:
        if self._capture is None:
            return None
        try:
            value = self._capture.search(jsonfmt.loads(content))
        except ValueError:
            return None
        return None if value is None else str(value)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        for session in self._sessions:
            session.close()


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def _path_document(body: bytes, payload: dict) -> dict:
    """Path placeholders are filled from the rendered document when it is a JSON object,
    falling back to the canonical payload for names it lacks."""
    try:
        document = jsonfmt.loads(body)
    except ValueError:
        return payload
    return {**payload, **document} if isinstance(document, dict) else payload


register(AdapterSpec(
    name="rest",
    summary="HTTP/JSON or XML: inbound POST /in/<route>, outbound calls to a system's API",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema=SYSTEM_SCHEMA,
    source_factory=RestSource,
    sink_factory=lambda endpoint, system: RestSink(endpoint, system or {}),
    check=check_endpoint,
))
