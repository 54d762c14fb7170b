"""The JSON Schema of routes.yaml (draft 2020-12), made from the registered adapters' specs.

`esb schema` prints `build_routes_schema()`; `schemas/routes.schema.json` is its copy. The
`x-esb-*` keywords it reads from adapter specs are described in `esb.config`.
"""

from __future__ import annotations

import copy
from typing import Any

from esb.durations import DURATION_PATTERN
from esb.plugins import AdapterSpec, adapters
from esb.retry import DEFAULT_ATTEMPTS
from esb.splitter import DEFAULT_ITEMS
from esb.transport.contract import DEFAULT_PREFETCH

CONFIG_VERSION = 1
"""The only `version:` of routes.yaml this code reads."""

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
"""Route and destination names: they become parts of queue names."""

DESTINATION_KEYS = ("map", "filter", "name")
"""Keys a `to:` adapter block takes besides the adapter's own options."""

MAX_NAME_LENGTH = 100
"""Route and destination names stay short enough for every queue name made from them."""
RESERVED_DESTINATION_NAMES = ("dlq",)
"""`esb.<route>.dlq` is the route's inbound dead-letter queue, so no destination may be called dlq."""

def duration_schema() -> dict:
    return {
        "type": ["number", "string"], "minimum": 0, "pattern": DURATION_PATTERN,
        "description": "Seconds, or a number with a unit: 500ms, 5s, 2m, 1h, 1d.",
        "x-esb-expected": "a duration (seconds, or e.g. 500ms, 5s, 2m, 1h)",
    }


def _settings_schema() -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Settings of the whole bus. The environment wins over these "
                       "(ESB_BROKER_URL, ESB_HTTP_HOST, ESB_HTTP_PORT, ESB_DATA_DIR), flags win over both.",
        "properties": {
            "broker_url": {"type": ["string", "null", "array"], "pattern": "^$|^amqps?://",
                           "minItems": 1, "items": {"type": "string", "pattern": "^amqps?://"},
                           "default": None,
                           "x-esb-expected": "an amqp:// or amqps:// URL, a list of them (the nodes of a "
                                             "cluster), or nothing for the embedded transport",
                           "description": "RabbitMQ URL; several nodes of a cluster: a list, or the URLs "
                                          "separated by commas; unset or empty: the embedded transport "
                                          "(one file in data_dir)."},
            "http_host": {"type": "string", "default": "127.0.0.1",
                          "description": "Address the inbound and monitoring HTTP app listens on."},
            "http_port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 8080,
                          "description": "Port of the inbound and monitoring HTTP app."},
            "data_dir": {"type": "string", "default": ".esb", "x-esb-path": True,
                         "description": "Directory of the journal, the embedded transport and the "
                                        "watermarks; relative to the routes file when given here."},
            "journal": {"type": ["string", "null"], "default": None,
                        "description": "Trace journal: a postgresql:// DSN (several nodes share it); "
                                       "default: SQLite in data_dir. Put the password in ${ENV}."},
            "timezone": {"type": ["string", "null"], "default": None,
                         "description": "IANA time zone (e.g. Asia/Shanghai) of source times written "
                                        "without an offset, for mappings without a timezone of their "
                                        "own; default: UTC."},
            "workers": {"type": "integer", "minimum": 1, "default": 1,
                        "description": "Processes of esb run: each serves the HTTP port and consumes; "
                                       "the first alone polls (--workers, ESB_WORKERS)."},
            "prefetch": {"type": "integer", "minimum": 1, "default": DEFAULT_PREFETCH,
                         "description": "Messages a consumer may hold unacknowledged, per destination."},
            "queue_type": {"enum": ["classic", "quorum"], "default": "classic",
                           "description": "RabbitMQ queue type of every route that does not set its own."},
        },
    }


def role_schema(spec: AdapterSpec, role: str) -> dict:
    """The adapter's endpoint schema as one side sees it: the other side's options left out."""
    schema = copy.deepcopy(spec.endpoint_schema)
    other = "sink" if role == "source" else "source"
    properties = {key: option for key, option in schema.get("properties", {}).items()
                  if option.get("x-esb-role") != other}
    required = [*schema.get("required", []), *schema.get(f"x-esb-{role}-required", [])]
    for key in ("x-esb-source-required", "x-esb-sink-required"):
        schema.pop(key, None)
    if role == "sink":
        properties.update({
            "map": {"type": "string",
                    "description": "Outbound mapping file (canonical -> this target's format), "
                                   "relative to the routes file."},
            "filter": {"type": "string",
                       "description": "JMESPath over the envelope; the message goes to this destination "
                                      "only when it is true."},
            "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH,
                     "not": {"enum": list(RESERVED_DESTINATION_NAMES)},
                     "x-esb-expected": "a name of lower-case letters, digits, - and _ (it names queues), "
                                       f"at most {MAX_NAME_LENGTH} characters, not "
                                       + " or ".join(RESERVED_DESTINATION_NAMES),
                     "description": "Name of this destination (it names its queues); default: its system, "
                                    "else the adapter name."},
        })
    schema["properties"] = properties
    if required:
        schema["required"] = sorted(set(required), key=required.index)
    schema["x-esb-adapter"] = spec.name
    schema["x-esb-what"] = f"{spec.name} {'source' if role == 'source' else 'destination'}"
    return schema


def _adapter_block(names: list[str], kind: str, description: str, many: bool = False) -> dict:
    block = {
        "type": "object",
        "description": description,
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {name: {"$ref": f"#/$defs/{name}_{kind}"} for name in names},
        "x-esb-kind": "adapter",
    }
    if not many:
        block["maxProperties"] = 1
    return block


def build_routes_schema() -> dict:
    """The JSON Schema of routes.yaml, with every registered adapter's options in it."""
    specs = adapters()
    names = sorted(specs)
    definitions: dict[str, Any] = {"duration": duration_schema()}
    for name in names:
        system_schema = copy.deepcopy(specs[name].system_schema)
        system_schema.setdefault("x-esb-what", f"{name} system")
        definitions[f"{name}_system"] = system_schema
        definitions[f"{name}_source"] = role_schema(specs[name], "source")
        definitions[f"{name}_destination"] = role_schema(specs[name], "sink")
    definitions["system"] = _adapter_block(
        names, "system", "Connection settings of one system, per adapter: {rest: {...}, soap: {...}}.",
        many=True)
    definitions["source"] = _adapter_block(names, "source", "Where messages come from: {adapter: {options}}.")
    definitions["destination"] = _adapter_block(
        names, "destination", "Where messages go: {adapter: {options, map, filter, name}}.")
    definitions["retry"] = {
        "type": "object",
        "additionalProperties": False,
        "description": "How often and how late a failed delivery is tried again before it is "
                       "dead-lettered.",
        "properties": {
            "attempts": {"type": "integer", "minimum": 1, "default": DEFAULT_ATTEMPTS,
                         "description": "Deliveries tried in all, the first one included."},
            "backoff": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/duration"},
                        "default": ["1s", "5s", "30s", "2m"],
                        "description": "Wait before retry 1, 2, 3, ... (seconds or durations); the last "
                                       "one repeats."},
        },
    }
    definitions["route"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "from", "to"],
        "properties": {
            "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH,
                     "x-esb-expected": "a name of lower-case letters, digits, - and _ (it names queues), "
                                       f"at most {MAX_NAME_LENGTH} characters",
                     "description": "Unique name of the route; inbound HTTP routes are served at "
                                    "/in/<name>."},
            "description": {"type": "string", "description": "What the route is for, for people."},
            "from": {"$ref": "#/$defs/source"},
            "map": {"type": "string",
                    "description": "Inbound mapping file (source format -> canonical type), relative to "
                                   "the routes file."},
            "validate": {"type": "string",
                         "description": "Canonical type the mapped document must match "
                                        "(schemas/<type>.v<schema_version>.json)."},
            "schema_version": {"type": "integer", "minimum": 1, "default": 1,
                               "description": "Version of the canonical type's schema."},
            "filter": {"type": "string",
                       "description": "JMESPath over the envelope ({type, source, payload, ...}); a "
                                      "message is passed on only when it is true."},
            "split": {"type": "object", "additionalProperties": False, "required": ["by"],
                      "description": "Split each mapped document into one document per distinct value of "
                                     "a field of its lines (before validation); e.g. {by: warehouse}.",
                      "properties": {
                          "by": {"type": "string", "minLength": 1,
                                 "description": "Field of each item that picks its document; it becomes "
                                                "that document's own (header) field."},
                          "items": {"type": "string", "minLength": 1, "default": DEFAULT_ITEMS,
                                    "description": "The list of the document that is split."}}},
            "to": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/destination"},
                   "description": "Destinations; each has its own queue, retry and dead-letter queue."},
            "retry": {"$ref": "#/$defs/retry"},
            "queue_type": {"enum": ["classic", "quorum"],
                           "description": "RabbitMQ queue type of this route's queues; default: "
                                          "settings.queue_type."},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "esb routes file",
        "description": "Systems and routes of the esb integration bus. Generated by `esb schema` from "
                       "the registered adapters; do not edit by hand.",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "routes"],
        "properties": {
            "version": {"const": CONFIG_VERSION, "description": "Format version of this file."},
            "settings": _settings_schema(),
            "systems": {"type": "object", "additionalProperties": {"$ref": "#/$defs/system"},
                        "description": "External systems by name, referenced by `system:`."},
            "routes": {"type": "array", "items": {"$ref": "#/$defs/route"},
                       "description": "The routes: from, map, validate, filter, to, retry."},
        },
        "$defs": definitions,
    }

