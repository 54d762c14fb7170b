"""Loading and checking routes.yaml: every problem found, each with its file and line.

- `check_config(path)` returns every `Problem` (YAML syntax, `${VAR}` references, the routes
  schema, then the references: systems, adapters, mapping files, canonical types, filters,
  durations, adapter checks); it never stops at the first one.
- `load_config(path)` is the same check, then the `esb.routes.Config` model; it raises
  `ConfigError(problems)` when anything is wrong.
- `build_routes_schema()` is the JSON Schema (draft 2020-12) of routes.yaml, made from the
  registered adapters' specs; `esb schema` prints it and `schemas/routes.schema.json` is its copy.

Environment variables: a string value may hold `${VAR}` or `${VAR:-default}` (the default is used
when VAR is unset or empty) and `$$` for a literal `$`. A value that is a bare `${VAR}` (unquoted)
is typed as YAML would type the text (`port: ${PORT:-8080}` is a number); quote it to keep a
string. Values taken from the environment are never repeated in a problem: they may be secrets.

Adapter option schemas may carry these keywords, which this module reads:
`x-esb-role: source|sink` (an option only one side takes), `x-esb-path: true` (a file or
directory, resolved relative to the routes file), `x-esb-source-required` / `x-esb-sink-required`
(options one side needs), and `x-esb-source` / `x-esb-sink` on the endpoint schema (what the
adapter can be). A string option with `"pattern": DURATION_PATTERN` is a duration. In the built
model every option is present (missing ones take their default), paths are absolute and
durations are seconds as floats.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from esb.durations import DURATION_PATTERN, parse_duration
from esb.errors import ConfigError
from esb.plugins import AdapterSpec, adapters
from esb.problems import Problem, did_you_mean, unknown
from esb.retry import DEFAULT_ATTEMPTS, RetryPolicy
from esb.routes import Config, Destination, Endpoint, Route, System

CONFIG_VERSION = 1
"""The only `version:` of routes.yaml this code reads."""

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
"""Route and destination names: they become parts of queue names."""

DESTINATION_KEYS = ("map", "filter", "name")
"""Keys a `to:` adapter block takes besides the adapter's own options."""

MAX_NODES = 100_000
"""A routes file with more YAML nodes than this (e.g. through aliases of aliases) is refused."""

_ENV_REFERENCE = re.compile(r"\$(?:\$|\{([^}]*)\}|\{)")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(NAME_PATTERN)
MAX_NAME_LENGTH = 100
"""Route and destination names stay short enough for every queue name made from them."""
RESERVED_DESTINATION_NAMES = ("dlq",)
"""`esb.<route>.dlq` is the route's inbound dead-letter queue, so no destination may be called dlq."""

JsonPath = tuple[str | int, ...]


# --------------------------------------------------------------------------- the routes schema

def _duration_schema() -> dict:
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
            "broker_url": {"type": ["string", "null"], "pattern": "^$|^amqps?://", "default": None,
                           "x-esb-expected": "an amqp:// or amqps:// URL (or nothing for the embedded "
                                             "transport)",
                           "description": "RabbitMQ URL; unset or empty: the embedded transport (one file "
                                          "in data_dir)."},
            "http_host": {"type": "string", "default": "127.0.0.1",
                          "description": "Address the inbound and monitoring HTTP app listens on."},
            "http_port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 8080,
                          "description": "Port of the inbound and monitoring HTTP app."},
            "admin_port": {"type": ["integer", "null"], "minimum": 1, "maximum": 65535, "default": None,
                           "description": "Serve monitoring and the admin API on this port instead; "
                                          "default: the same port as the inbound endpoints."},
            "data_dir": {"type": "string", "default": ".esb", "x-esb-path": True,
                         "description": "Directory of the journal, the embedded transport and the "
                                        "watermarks; relative to the routes file when given here."},
            "journal": {"type": ["string", "null"], "default": None,
                        "description": "Trace journal: a postgresql:// DSN (several nodes share it); "
                                       "default: SQLite in data_dir. Put the password in ${ENV}."},
            "timezone": {"type": ["string", "null"], "default": None,
                         "description": "IANA time zone (e.g. Asia/Shanghai) of source times written "
                                        "without an offset; default: the machine's zone."},
            "prefetch": {"type": "integer", "minimum": 1, "default": 50,
                         "description": "Messages a consumer may hold unacknowledged, per destination."},
            "queue_type": {"enum": ["classic", "quorum"], "default": "classic",
                           "description": "RabbitMQ queue type of every route that does not set its own."},
        },
    }


def _role_schema(spec: AdapterSpec, role: str) -> dict:
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
    definitions: dict[str, Any] = {"duration": _duration_schema()}
    for name in names:
        system_schema = copy.deepcopy(specs[name].system_schema)
        system_schema.setdefault("x-esb-what", f"{name} system")
        definitions[f"{name}_system"] = system_schema
        definitions[f"{name}_source"] = _role_schema(specs[name], "source")
        definitions[f"{name}_destination"] = _role_schema(specs[name], "sink")
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


# --------------------------------------------------------------------------- reading the YAML

@dataclass
class _Document:
    """The file's data, the line of every JSON path in it, and which values came from ${VAR}."""

    file: str
    data: Any = None
    lines: dict[JsonPath, int] = field(default_factory=dict)
    from_environment: set[JsonPath] = field(default_factory=set)
    unset_variables: set[JsonPath] = field(default_factory=set)  # their schema errors would only repeat
    quoted_references: set[JsonPath] = field(default_factory=set)  # "${VAR}": kept a string
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: JsonPath) -> int:
        """The line of `path`, or of its nearest parent that has one."""
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1 if self.data is not None else 0)

    def add(self, path: JsonPath, sentence: str, line: int | None = None) -> None:
        """A problem at `path` (on `line` when given, else on the line of `path`)."""
        where = format_path(path)
        text = f"{where}: {sentence}" if where else sentence
        self.problems.append(Problem(self.file, line or self.line(path), text))


def format_path(path: JsonPath) -> str:
    """`routes[1].retry.attempts` for ("routes", 1, "retry", "attempts")."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _read(document: _Document, path: Path, environ: Mapping[str, str]) -> None:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        document.problems.append(Problem(document.file, 0, "routes file not found"))
        return
    except UnicodeDecodeError as error:
        document.problems.append(Problem(document.file, 0, f"not UTF-8 text ({error.reason} at byte "
                                                           f"{error.start})"))
        return
    except OSError as error:
        document.problems.append(Problem(document.file, 0, f"cannot read the file: {error.strerror}"))
        return
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            document.problems.append(Problem(document.file, 0, "the file is empty; it needs at least "
                                                               "version: 1 and routes:"))
            return
        document.lines[()] = node.start_mark.line + 1
        converter = _Converter(loader, document, environ)
        document.data = converter.convert(node, ())
    except yaml.MarkedYAMLError as error:
        document.problems.append(_syntax_problem(document.file, error))
    except yaml.YAMLError as error:
        document.problems.append(Problem(document.file, 0, f"YAML syntax error: {error}"))
    finally:
        loader.dispose()


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    sentence = f"YAML syntax error: {error.problem or error.context}"
    if mark is not None:
        sentence += f" (column {mark.column + 1})"
    if error.context and error.problem and error.context_mark is not None:
        sentence += f", {error.context} on line {error.context_mark.line + 1}"
    return Problem(file, mark.line + 1 if mark is not None else 0, sentence)


class _Converter:
    """YAML nodes to plain data (as yaml.safe_load would), noting each path's line on the way."""

    def __init__(self, loader: yaml.SafeLoader, document: _Document, environ: Mapping[str, str]):
        self.loader = loader
        self.document = document
        self.environ = environ
        self.nodes = 0

    def convert(self, node: yaml.Node, path: JsonPath) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise yaml.YAMLError(f"more than {MAX_NODES} values (aliases of aliases?)")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            result = []
            for index, item in enumerate(node.value):
                self.document.lines[(*path, index)] = item.start_mark.line + 1
                result.append(self.convert(item, (*path, index)))
            return result
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            return self._substitute(node, value, path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict:
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.document.problems.append(Problem(self.document.file, line, "a key must be plain text"))
                continue
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key)  # e.g. `1: x`; JSON keys are strings
            if key in result:
                self.document.add(path, f'"{key}" appears twice in this block '
                                                f"(the first on line {self.document.lines[(*path, key)]})",
                                  line=line)
                continue
            self.document.lines[(*path, key)] = line
            result[key] = self.convert(value_node, (*path, key))
        return result

    def _substitute(self, node: yaml.ScalarNode, text: str, path: JsonPath) -> Any:
        used_environment = False

        def replace(match: re.Match) -> str:
            nonlocal used_environment
            if match.group(0) == "$$":
                return "$"
            if match.group(1) is None:
                self.document.add(path, '"${" without its closing "}"; write $$ for a literal $')
                return match.group(0)
            name, has_default, default = match.group(1).partition(":-")
            if not _VARIABLE_NAME.match(name):
                self.document.add(path, f'"${{{match.group(1)}}}" is not a variable reference; names are '
                                        "letters, digits and _ (write $$ for a literal $)")
                return match.group(0)
            value = self.environ.get(name)
            if value:
                used_environment = True
                return value
            if has_default:
                return default
            if value is None:
                self.document.unset_variables.add(path)
                self.document.add(path, f"environment variable {name} is not set "
                                        f"(set it, or write ${{{name}:-default}})")
            else:
                used_environment = True
            return ""

        result = _ENV_REFERENCE.sub(replace, text)
        if used_environment:
            self.document.from_environment.add(path)
        whole_reference = _ENV_REFERENCE.fullmatch(text.strip()) and not text.startswith("$$")
        if node.style is not None and whole_reference:
            self.document.quoted_references.add(path)
        if node.style is None and whole_reference:
            # an unquoted `${PORT:-8080}` is typed as if the text had been written there
            tag = self.loader.resolve(yaml.ScalarNode, result, (True, False))
            return self.loader.construct_object(yaml.ScalarNode(tag, result), deep=True)
        return result


# --------------------------------------------------------------------------- schema errors as sentences

_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string",
               "boolean": "true or false", "object": "a block of key: value pairs", "array": "a list",
               "null": "nothing"}


def _expected(schema: dict) -> str:
    """What a schema asks for, in words: "an integer >= 1", "one of classic, quorum"."""
    if "x-esb-expected" in schema:
        return schema["x-esb-expected"]
    if schema.get("pattern") == DURATION_PATTERN:
        return _duration_schema()["x-esb-expected"]
    if "const" in schema:
        return _shown(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(str(value) for value in schema["enum"])
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"] or types
    text = " or ".join(_TYPE_WORDS.get(t, t) for t in types) or "a valid value"
    if "minimum" in schema and "maximum" in schema:
        text += f" from {schema['minimum']} to {schema['maximum']}"
    else:
        limits = [("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")]
        text += "".join(f" {sign} {schema[key]}" for key, sign in limits if key in schema)
    if "minItems" in schema:
        text += f" of at least {schema['minItems']} item{'s' if schema['minItems'] != 1 else ''}"
    if "minLength" in schema and "maxLength" in schema and schema["minLength"] == schema["maxLength"]:
        text += f" of exactly {schema['minLength']} character{'s' if schema['minLength'] != 1 else ''}"
    elif "minLength" in schema:
        text += f" of at least {schema['minLength']} characters"
    if "pattern" in schema:
        text += f" matching {schema['pattern']}"
    return text


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a block of key: value pairs"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _schema_problems(document: _Document, schema: dict) -> set[JsonPath]:
    """Validate against the routes schema, add a sentence per error; the paths that had errors."""
    from jsonschema import Draft202012Validator

    broken: set[JsonPath] = set()
    validator = Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(document.data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(error.absolute_path)
        broken.add(path)
        if path in document.unset_variables:
            continue
        for extra_path, sentence in _sentences(document, error, path):
            broken.add(extra_path)
            document.add(extra_path, sentence)
    return broken


def _sentences(document: _Document, error, path: JsonPath) -> list[tuple[JsonPath, str]]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    instance = error.instance
    if kind == "additionalProperties":
        return [((*path, key), _unknown_key_sentence(schema, key, path))
                for key in instance if key not in schema.get("properties", {})]
    if kind == "required":
        missing = [key for key in error.validator_value if key not in instance]
        what = schema.get("x-esb-what")
        return [(path, f'missing "{key}"' + (f" (the {what} needs it)" if what else "")) for key in missing]
    if kind == "minProperties" and schema.get("x-esb-kind") == "adapter":
        return [(path, "expected an adapter block, one of: " + ", ".join(schema.get("properties", {})))]
    if kind == "maxProperties" and schema.get("x-esb-kind") == "adapter":
        known = [key for key in instance if key in schema.get("properties", {})]
        if len(known) < 2:
            return []  # the unknown key already has its own sentence
        return [(path, "name one adapter only, got " + " and ".join(known))]
    if kind == "enum" and isinstance(instance, str) and path not in document.from_environment:
        choices = [str(value) for value in error.validator_value]
        suggestion = did_you_mean(instance, choices)
        return [(path, f"expected {_expected(schema)}, got {_shown(instance)}{suggestion}")]
    if kind in {"type", "enum", "const", "pattern", "not", "minimum", "maximum", "exclusiveMinimum",
                "exclusiveMaximum", "minItems", "minLength", "maxLength"}:
        got = "a value from the environment" if path in document.from_environment else _shown(instance)
        hint = ""
        if kind == "type" and path in document.quoted_references:
            hint = " (write ${...} without quotes to read it as a number or true/false)"
        return [(path, f"expected {_expected(schema)}, got {got}{hint}")]
    return [(path, error.message if path not in document.from_environment else f"not valid ({kind})")]


def _unknown_key_sentence(schema: dict, key: str, path: JsonPath) -> str:
    known = list(schema.get("properties", {}))
    if schema.get("x-esb-kind") == "adapter":
        sentence = unknown("adapter", key, known)
        if key in DESTINATION_KEYS and "to" in path:
            sentence += f"; {key}: goes inside the adapter block: - rest: {{..., {key}: ...}}"
        return sentence
    what = schema.get("x-esb-what")
    if what is None:
        return unknown("key", key, known)
    sentence = unknown(f"{what} option", key, known)
    adapter = schema.get("x-esb-adapter")
    if adapter:
        option = adapters()[adapter].endpoint_schema.get("properties", {}).get(key, {})
        role = option.get("x-esb-role")
        if role:
            side = "source" if role == "source" else "destination"
            sentence += f' ("{key}" is an option of a {adapter} {side})'
    return sentence


# --------------------------------------------------------------------------- references, and the model

class _Checker:
    """Checks every reference of a schema-checked document and builds the model on the way."""

    def __init__(self, document: _Document, config_path: str, broken: set[JsonPath]):
        self.document = document
        self.config_path = config_path
        self.base_dir = Path(config_path).parent
        self.broken = broken
        self.specs = adapters()
        self._registry = None
        data = document.data if isinstance(document.data, dict) else {}
        self.systems_block = data.get("systems") if isinstance(data.get("systems"), dict) else {}
        self.settings_block = data.get("settings") if isinstance(data.get("settings"), dict) else {}

    def is_broken(self, path: JsonPath) -> bool:
        """True when a schema error was found at `path` or inside it."""
        return any(error[:len(path)] == path for error in self.broken)

    def add(self, path: JsonPath, sentence: str) -> None:
        self.document.add(path, sentence)

    def resolve(self, value: str) -> str:
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(value)))

    def options(self, schema: dict, block: dict) -> dict:
        """`block` with every option present (defaults filled in), file paths made absolute and
        durations in seconds (floats)."""
        options = copy.deepcopy(block)
        for key, option in schema.get("properties", {}).items():
            if key not in options and "default" in option:
                options[key] = copy.deepcopy(option["default"])
            if option.get("x-esb-path") and isinstance(options.get(key), str):
                options[key] = self.resolve(options[key])
            if option.get("pattern") == DURATION_PATTERN and options.get(key) is not None:
                options[key] = parse_duration(options[key])
        return options

    # the whole file

    def check(self) -> Config | None:
        data = self.document.data
        if not isinstance(data, dict):
            return None
        systems = self.check_systems()
        self.check_settings()
        routes = []
        route_lines: dict[str, int] = {}
        raw_routes = data.get("routes") if isinstance(data.get("routes"), list) else []
        for index, block in enumerate(raw_routes):
            if not isinstance(block, dict):
                continue
            path = ("routes", index)
            name = block.get("name")
            if isinstance(name, str):
                if name in route_lines:
                    self.add((*path, "name"), f'route name "{name}" is used twice (first on line '
                                              f"{route_lines[name]}); route names name queues and URLs")
                else:
                    route_lines[name] = self.document.line(path)
            route = self.check_route(path, block)
            if route is not None:
                routes.append(route)
        settings = dict(self.settings_block)
        if isinstance(settings.get("data_dir"), str):
            settings["data_dir"] = self.resolve(settings["data_dir"])
        if self.document.problems or len(routes) != len(raw_routes):
            return None
        return Config(path=self.config_path, systems=systems, routes=tuple(routes), settings=settings)

    def check_systems(self) -> dict[str, System]:
        systems = {}
        for name, block in self.systems_block.items():
            path = ("systems", name)
            if not isinstance(block, dict) or self.is_broken(path):
                continue
            settings = {adapter: self.options(self.specs[adapter].system_schema, options)
                        for adapter, options in block.items()}
            systems[name] = System(name=name, settings=settings, line=self.document.line(path))
        return systems

    def check_settings(self) -> None:
        zone = self.settings_block.get("timezone")
        if isinstance(zone, str) and zone:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                self.add(("settings", "timezone"), f'unknown time zone "{zone}" (use an IANA name such as '
                                                   "Europe/Berlin or Asia/Shanghai)")

    # one route

    def check_route(self, path: JsonPath, block: dict) -> Route | None:
        source = self.check_endpoint((*path, "from"), block.get("from"), "source")
        canonical_type = block.get("validate") if isinstance(block.get("validate"), str) else None
        version = block.get("schema_version", 1)
        version = version if isinstance(version, int) and not isinstance(version, bool) else 1
        if canonical_type is not None:
            self.check_canonical_type((*path, "validate"), canonical_type, version)
        inbound_map = None
        if isinstance(block.get("map"), str):
            inbound_map, mapped_type = self.check_mapping((*path, "map"), block["map"], "in", canonical_type)
            canonical_type = canonical_type or mapped_type
        route_filter = self.check_filter((*path, "filter"), block.get("filter"))
        retry = self.check_retry((*path, "retry"), block.get("retry"))
        destinations = self.check_destinations(path, block.get("to"), canonical_type)
        if source is None or destinations is None or retry is None or self.is_broken(path):
            return None
        queue_type = block.get("queue_type") or self.settings_block.get("queue_type") or "classic"
        options = {"queue_type": queue_type}
        if "description" in block:
            options["description"] = block["description"]
        return Route(name=block["name"], source=source, destinations=destinations, map=inbound_map,
                     validate=block.get("validate"), schema_version=version, filter=route_filter,
                     retry=retry, options=options, line=self.document.line(path))

    def check_destinations(self, route_path: JsonPath, entries: Any,
                           canonical_type: str | None) -> tuple[Destination, ...] | None:
        if not isinstance(entries, list):
            return None
        destinations = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            path = (*route_path, "to", index)
            endpoint = self.check_endpoint(path, entry, "sink")
            if not isinstance(entry, dict) or len(entry) != 1:
                continue
            adapter, block = next(iter(entry.items()))
            block = block if isinstance(block, dict) else {}
            name = block.get("name") or block.get("system") or adapter
            if not isinstance(name, str):
                continue
            if name in seen:
                self.add(path, f'two destinations are named "{name}" (the first on line {seen[name]}); give '
                               "each a name: of its own (names pick the destination's queues)")
            else:
                seen[name] = self.document.line(path)
                unfit = (not _NAME.match(name) or len(name) > MAX_NAME_LENGTH
                         or name in RESERVED_DESTINATION_NAMES)
                if "name" not in block and unfit:
                    self.add(path, f'destination name "{name}" (from its system) cannot name a queue; add '
                                   "name: with lower-case letters, digits, - and _")
            map_path = None
            if isinstance(block.get("map"), str):
                map_path, _ = self.check_mapping((*path, adapter, "map"), block["map"], "out", canonical_type)
            destination_filter = self.check_filter((*path, adapter, "filter"), block.get("filter"))
            if endpoint is not None:
                destinations.append(Destination(name=name, endpoint=endpoint, map=map_path,
                                                filter=destination_filter, line=self.document.line(path)))
        if len(destinations) != len(entries):
            return None
        return tuple(destinations)

    def check_endpoint(self, path: JsonPath, entry: Any, role: str) -> Endpoint | None:
        named = [key for key in entry if key in self.specs] if isinstance(entry, dict) else []
        if len(named) != 1:
            return None  # no adapter, or several: the schema said so
        adapter = named[0]
        block = entry[adapter]
        spec = self.specs[adapter]
        if not isinstance(block, dict):
            return None
        path = (*path, adapter)
        if role == "source" and not spec.can_source:
            self.add(path, f"the {adapter} adapter cannot be a source (from:)")
        if role == "sink" and not spec.can_sink:
            self.add(path, f"the {adapter} adapter cannot be a destination (to:)")
        system_settings = self.check_system_reference(path, adapter, block.get("system"))
        if self.is_broken(path):
            return None
        schema = _role_schema(spec, role)
        # a destination's map, filter and name belong to the Destination, not to the adapter
        own = {key: value for key, value in block.items() if role == "source" or key not in DESTINATION_KEYS}
        options = self.options(schema, own)
        endpoint = Endpoint(adapter=adapter, options=options, line=self.document.line(path))
        if spec.check is not None:
            for sentence in spec.check(endpoint, system_settings, self.base_dir):
                self.add(path, sentence)
        return endpoint

    def check_system_reference(self, path: JsonPath, adapter: str, name: Any) -> dict | None:
        if not isinstance(name, str):
            return None
        if name not in self.systems_block:
            self.add((*path, "system"), unknown("system", name, self.systems_block))
            return None
        block = self.systems_block[name]
        if not isinstance(block, dict) or self.is_broken(("systems", name)):
            return None
        if adapter not in block:
            has = ", ".join(block) or "none"
            self.add((*path, "system"), f'system "{name}" has no {adapter} block (it has: {has}); add '
                                        f"systems.{name}.{adapter}")
            return None
        settings = block[adapter] if isinstance(block[adapter], dict) else {}
        return self.options(self.specs[adapter].system_schema, settings)

    # references to other files and names

    def check_mapping(self, path: JsonPath, value: str, direction: str,
                      canonical_type: str | None) -> tuple[str | None, str | None]:
        """The mapping file exists, loads, maps the right way and to the right type; (abs path, type)."""
        full = self.resolve(value)
        if not os.path.isfile(full):
            self.add(path, f"mapping file not found: {value} (looked for {full})")
            return None, None
        from esb.mapping import check_mapping, load_mapping

        # the mapping's own problems name it as the routes file was named: relative stays relative
        shown = full if os.path.isabs(self.document.file) else os.path.relpath(full)
        problems = check_mapping(shown)
        if problems:
            self.document.problems.extend(problems)
            return None, None
        try:
            mapping = load_mapping(shown)
        except Exception as error:  # check_mapping passed it: say what load_mapping found
            self.add(path, f"mapping {value} cannot be loaded: {error}")
            return None, None
        if mapping.direction != direction:
            place, purpose = (("a route's map:", "source format -> canonical type") if direction == "in"
                              else ("a destination's map:", "canonical type -> target format"))
            self.add(path, f'mapping {value} has direction "{mapping.direction}"; {place} needs direction '
                           f'"{direction}" ({purpose})')
        elif canonical_type and mapping.canonical_type and mapping.canonical_type != canonical_type:
            self.add(path, f'mapping {value} is for canonical type "{mapping.canonical_type}", '
                           f'but the route carries "{canonical_type}"')
        return full, mapping.canonical_type

    def check_canonical_type(self, path: JsonPath, name: str, version: int) -> None:
        if self._registry is None:
            from esb.schemas import SchemaRegistry

            self._registry = SchemaRegistry()
        if self._registry.has(name, version):
            return
        types = list(self._registry.types())
        if name in types:
            self.add(path, f'canonical type "{name}" has no schema version {version}')
        else:
            self.add(path, unknown("canonical type", name, types))

    def check_filter(self, path: JsonPath, expression: Any) -> str | None:
        if not isinstance(expression, str):
            return None
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(expression)
        except JMESPathError as error:
            self.add(path, f"not a valid JMESPath expression: {_jmespath_error(error)}")
            return None
        return expression

    def check_retry(self, path: JsonPath, block: Any) -> RetryPolicy | None:
        if block is None:
            return RetryPolicy()
        if not isinstance(block, dict) or self.is_broken(path):
            return None
        for index, delay in enumerate(block.get("backoff") or []):
            try:
                parse_duration(delay)
            except ValueError as error:
                self.add((*path, "backoff", index), str(error))
                return None
        try:
            return RetryPolicy.from_config(block)
        except (ValueError, TypeError) as error:
            self.add(path, str(error))
            return None


def _jmespath_error(error: Exception) -> str:
    """"the expression ends too early at column 13" rather than jmespath's several-line message."""
    from jmespath.exceptions import IncompleteExpressionError

    position = getattr(error, "lex_position", None)
    where = f" at column {position + 1}" if isinstance(position, int) else ""
    if isinstance(error, IncompleteExpressionError):
        return f"the expression ends too early{where}"
    detail = getattr(error, "message", None) or (
        f"unexpected {error.token_value!r}" if getattr(error, "token_value", None) else "syntax error")
    return f"{detail}{where}"


# --------------------------------------------------------------------------- the public functions

def _check(path: str | os.PathLike, environ: Mapping[str, str]) -> tuple[list[Problem], Config | None]:
    file = str(path)
    document = _Document(file=file)
    _read(document, Path(path), environ)
    if document.data is None:
        return document.problems, None
    broken = _schema_problems(document, build_routes_schema())
    config = _Checker(document, os.path.abspath(path), broken).check()
    problems = sorted(document.problems, key=lambda p: (p.file != file, p.file, p.line))
    return problems, (None if problems else config)


def check_config(path: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> list[Problem]:
    """Every problem of the routes file at `path` (empty when it is fine)."""
    return _check(path, environ)[0]


def load_config(path: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> Config:
    """The checked configuration; raises `ConfigError` listing every problem."""
    problems, config = _check(path, environ)
    if problems:
        raise ConfigError(problems)
    if config is None:  # no problem reported but nothing built: a checker bug, say so plainly
        raise ConfigError([Problem(str(path), 0, "the configuration could not be built")])
    return config
