"""The adapter plugin contract and the registry of adapters by name.

An adapter is a module in `adapters/` (or any installed package) that calls `register()` with an
`AdapterSpec` at import time. Built-in adapters are imported on first use; third-party ones are
found through the `esb.adapters` entry point group, whose entry points name such a module:

    [project.entry-points."esb.adapters"]
    mqtt = "my_package.mqtt_adapter"

The spec's JSON Schema fragments are the single source of each adapter's options: `esb check`
validates route files with them and `schemas/routes.schema.json` is generated from them.
Adapters know this contract and the codecs, never the broker: a sink delivers or raises
`esb.errors.Retryable` / `esb.errors.Permanent`.

Options that several adapters take (a call's timeout, TLS, credentials of a call, a push source's
body limit and caller authentication) are declared once here as fragments, as Redpanda Connect's
`config_http.go` / `config_tls.go` are, so that they read, default and check the same everywhere.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from esb.durations import duration_option
from esb.errors import NotFound, Unavailable
from esb.problems import unknown

BUILTIN_MODULES = ("adapters.rest", "adapters.soap", "adapters.flatfile", "adapters.table", "adapters.as2",
                   "adapters.sftp", "adapters.aggregate", "adapters.alerts", "adapters.units")
ENTRY_POINT_GROUP = "esb.adapters"

DEFAULT_TIMEOUT = 30.0
"""Seconds an outbound call may take (connect plus read) before it counts as a retryable failure."""

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""Largest request body a push source accepts (1 MiB); a larger one is refused with 413."""


@dataclass(frozen=True, slots=True)
class RawMessage:
    """What a source produces: undecoded bytes plus what it knows about them."""

    body: bytes
    content_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """What the source knows: "file" (the file name) and "line" (the line of the file on which a
    part's first record is; the mapping's source_file() and source_line() read them), HTTP
    headers, ..."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to a source that submitted a raw payload: the ids of the messages stored.

    `duplicate` is True when the payload repeated an earlier one (same idempotency key): the
    ids are then the first payload's and nothing was published again."""

    message_ids: tuple[str, ...]
    duplicate: bool = False


Submit = Callable[..., Accepted]
"""`submit(raw: RawMessage, *, idempotency_key: str | None = None, message_id: str | None = None)
-> Accepted`, given to sources. `message_id` (a UUID) makes the message ids repeatable: a source
that may read the same input twice (a table row after a crash) derives it from what it read.

Returns after the broker confirmed every message made from `raw`. Raises `esb.errors.InputError`
(decode, mapping or validation problems: nothing was published) or `esb.errors.Unavailable`
(the bus could not store it now: nothing is reported as accepted)."""


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What the runtime gives a source: its route, `submit`, and where to mount HTTP endpoints."""

    route: str
    submit: Submit
    add_url_rule: Callable[..., None]  # Flask's app.add_url_rule, for push sources (HTTP, SOAP)
    data_dir: Path  # for watermarks and claimed files
    credentials: Any = None  # esb.credentials.Credentials, for push sources that authenticate callers
    dead_letter: Callable[[RawMessage, BaseException], None] | None = None
    """For polled sources: store a raw payload that `submit` refused (InputError) in the route's
    dead-letter queue with its error, confirmed, so it can be replayed once fixed. Raises
    `esb.errors.Unavailable` when it could not be stored (then keep the input and try later)."""
    submit_async: Callable[..., Any] | None = None
    """`submit` up to the publish, returning an `esb.inbound.Storing` to await the confirms
    with (`esb.push.answer_when_stored` uses it); None where the runtime gives none."""
    set_aside: Callable[[str], None] | None = None
    """For polled sources: count one input set aside (a file moved to an error folder, or one
    that could not even be moved); the argument is the reason (`refused`, `empty`, `unreadable`,
    `not_regular`, `error`, `unmovable`, ...), a metric label."""
    trace: Callable[[str, str, str], None] | None = None
    """`trace(step, message_id, detail)`: one entry in the trace of a message this source submitted,
    for what happens after the submit (an asynchronous AS2 receipt sent: `receipt_sent`, or failed:
    `receipt_failed`; the steps are `esb.journal.STEPS`)."""

    def dead_letter_refused(self, raw: RawMessage, error: BaseException, *, log: logging.Logger,
                            source: str, item: str) -> bool:
        """`dead_letter` a payload `submit` refused; False, with one log line on `log`, when this
        runtime gives no dead-letter queue or the queue cannot store now (then keep the input for a
        later poll). `source` and `item` name them in that line: "soap poll", "record"."""
        if self.dead_letter is None:
            log.error("%s: a %s was refused and there is no dead-letter queue: %s", source, item, error,
                      extra={"route": self.route})
            return False
        try:
            self.dead_letter(raw, error)
        except Unavailable as failure:
            log.warning("%s: could not dead-letter a refused %s: %s", source, item, failure,
                        extra={"route": self.route})
            return False
        return True


class Source:
    """A source of raw payloads. Push sources mount HTTP endpoints in `start`; polling sources
    set `poll_interval` (seconds) and implement `poll`, which the scheduler calls."""

    poll_interval: float | None = None

    def start(self, context: SourceContext) -> None:
        """Called once before traffic starts."""

    def poll(self) -> None:
        """Fetch what is new and `submit` it (polling sources only)."""

    def stop(self) -> None:
        """Called once at shutdown; release files, connections."""

    def readiness(self) -> str | None:
        """None while the source can work, else a sentence for `/readyz` (a database that is down)."""
        return None


class Sink:
    """Delivers one message to a target system, or raises `Retryable` / `Permanent`."""

    def deliver(self, envelope: Any, body: bytes, content_type: str) -> str | None:
        """Deliver `body` (the rendered target document); return the target's id for it, if any."""
        raise NotImplementedError

    def close(self) -> None:
        """Called once at shutdown."""

    def readiness(self) -> str | None:
        """None while the sink can deliver, else a sentence for `/readyz`."""
        return None


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """An adapter's name, what it can do, and the JSON Schema of its options.

    - `endpoint_schema`: the options of a `from:`/`to:` block (`{"rest": {...}}`);
    - `system_schema`: the connection settings under `systems.<name>.<adapter>`;
    - `source_factory(endpoint, system_settings, route_name) -> Source` and
      `sink_factory(endpoint, system_settings) -> Sink` build the running parts (None while the
      adapter cannot be a source or a sink); `system_settings` is the system's block for this
      adapter (or None).
    """

    name: str
    summary: str
    endpoint_schema: dict[str, Any]
    system_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    source_factory: Callable[..., Any] | None = None
    sink_factory: Callable[..., Any] | None = None
    check: Callable[..., list[str]] | None = None  # extra checks: (endpoint, system, base_dir) -> sentences
    check_mapping: Callable[..., list[str]] | None = None
    """A destination's outbound mapping fits what the target takes: ``(endpoint, system, outline)
    -> sentences``, ``outline`` an `esb.mapping.outline.Outline` (what the mapping writes); `esb
    check` calls it for each destination of this adapter with a ``map:``."""
    connect_check: Callable[..., list[str]] | None = None
    """`esb check --connect`: (endpoint, system_settings, role "source"|"sink") -> sentences about the
    running target (a missing table or column, a server that does not answer)."""

    @property
    def can_source(self) -> bool:
        return self.source_factory is not None or self.endpoint_schema.get("x-esb-source", False)

    @property
    def can_sink(self) -> bool:
        return self.sink_factory is not None or self.endpoint_schema.get("x-esb-sink", False)


_adapters: dict[str, AdapterSpec] = {}
_loaded = False


def register(spec: AdapterSpec) -> AdapterSpec:
    """Make an adapter known by its name; a second adapter with the same name is an error."""
    existing = _adapters.get(spec.name)
    if existing is not None and existing is not spec:
        raise ValueError(f'adapter "{spec.name}" is registered twice')
    _adapters[spec.name] = spec
    return spec


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def adapters() -> dict[str, AdapterSpec]:
    """Every registered adapter by name (built-ins and entry points)."""
    _load()
    return dict(_adapters)


def get_adapter(name: str) -> AdapterSpec:
    """The adapter called `name`; `NotFound` with a "did you mean" sentence otherwise."""
    _load()
    try:
        return _adapters[name]
    except KeyError:
        raise NotFound(unknown("adapter", name, _adapters)) from None


# --- option fragments shared by adapters ------------------------------------------------------
# Each returns a fresh JSON-Schema fragment (a property, or a dict of properties to splat into a
# spec's "properties"); extra keywords (such as `**{"x-esb-role": "sink"}`) are added to it.

def timeout_option(default: float | None = DEFAULT_TIMEOUT, *, description: str | None = None,
                   **keywords: Any) -> dict[str, Any]:
    """`timeout`: seconds (or a duration such as 10s) a call may take, default 30 s."""
    text = description or ("Seconds a call may take (connect plus read), or a duration such as 10s; "
                           "a timeout is a retryable failure.")
    return duration_option(text, default, **keywords)


def tls_options(*, ca_file: bool = True) -> dict[str, dict[str, Any]]:
    """`verify_tls` (default true) and, unless `ca_file=False`, `ca_file` (a PEM path)."""
    options: dict[str, dict[str, Any]] = {
        "verify_tls": {"type": "boolean", "default": True,
                       "description": "Check the server's TLS certificate. Turn off only for a test system."},
    }
    if ca_file:
        options["ca_file"] = {"type": ["string", "null"], "default": None, "x-esb-path": True,
                              "description": "PEM file of the CA that signed the server's certificate (a "
                                             "private CA); relative to the routes file."}
    return options


def basic_auth_options(*, also: str = "") -> dict[str, dict[str, Any]]:
    """`username` and `password` of a call (HTTP basic authentication); `also` completes the
    username's description with another use (", or ...")."""
    return {
        "username": {"type": ["string", "null"], "default": None,
                     "description": f"User name for HTTP basic authentication (with password){also}."},
        "password": {"type": ["string", "null"], "default": None, "description": "Password for username."},
    }


def key_auth_options() -> dict[str, dict[str, Any]]:
    """`token` (a bearer token), `api_key` and `api_key_header` (default X-API-Key) of a call."""
    return {
        "token": {"type": ["string", "null"], "default": None,
                  "description": "Bearer token sent as `Authorization: Bearer ...`."},
        "api_key": {"type": ["string", "null"], "default": None,
                    "description": "API key sent in the api_key_header header."},
        "api_key_header": {"type": "string", "default": "X-API-Key",
                           "description": "Header that carries api_key."},
    }


def body_limit_option(default: int = DEFAULT_MAX_BODY_BYTES, **keywords: Any) -> dict[str, Any]:
    """`max_body_bytes` of a push source: bytes, default 1 MiB; a larger body gets 413."""
    return {"type": "integer", "minimum": 1, "default": default,
            "description": "Largest request body accepted, in bytes; a larger one is refused with 413.",
            **keywords}


def sender_auth_option(**keywords: Any) -> dict[str, Any]:
    """`auth` of a push source: `token` (default: a key with the role sender=<route>) or `none`."""
    return {"enum": ["token", "none"], "default": "token",
            "description": "token: the caller needs an API key or bearer token with the role sender=<route> "
                           "(from ESB_API_KEYS or ESB_CREDENTIALS_FILE, never from this file); none: no "
                           "credentials (tests and trusted networks only).",
            **keywords}
