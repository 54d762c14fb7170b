"""The schema registry: the JSON Schemas of the canonical types, loaded once, validated fast.

Files are named `<type>.v<N>.json` (draft 2020-12). Files whose name is in `SHARED_SCHEMAS`
(`common.v1.json`) hold shared `$defs` that the others reference with
`"$ref": "common.v1.json#/$defs/quantity"`; they are not canonical types. Other files in the
directory (such as `routes.schema.json`) are left alone.

Each schema is checked against the draft 2020-12 metaschema with `jsonschema` when it is loaded;
payloads are validated with `jsonschema-rs` (compiled, many times faster), whose `$ref`s resolve
only among the loaded files: nothing is ever fetched over the network. Formats (`date`,
`date-time`, `email`, ...) are asserted, not just annotated.

A canonical schema names the payload fields the bus reads with top-level annotations (ignored by
validation): `"x-esb-document-number"` (the business document number: the default correlation id
and, with the source and revision, the idempotency key), `"x-esb-revision"` (the revision of that
document; 0 when the type has none) and `"x-esb-occurred-at"` (the date-time field that gives the
envelope's `occurred_at`). `SchemaRegistry.document_keys(type, version)` returns them; a file
whose annotation names a field it does not have is a problem when it is loaded.

A payload that fails gets a `ValidationError` listing every problem as a `FieldProblem` whose path
reads like `lines[3].quantity`, whose `expected` is a plain sentence and whose `got` is a short
JSON rendering of the value. For a pattern or format, the sentence is the `description` of the
schema holding it, so write those descriptions as what is expected ("a date YYYY-MM-DD, ...").
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

import jsonschema
import jsonschema_rs

from esb import jsonfmt
from esb.errors import ConfigError, FieldProblem, ValidationError
from esb.problems import Problem, UnknownName, did_you_mean, unknown

DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / "schemas"
"""Where `SchemaRegistry()` looks when given no directory: `schemas/` at the project root."""

SCHEMA_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.json$")
"""`<type>.v<N>.json`: lower-case snake_case type, version an integer >= 1."""

SHARED_SCHEMAS = frozenset({"common"})
"""Names of files that hold shared definitions only: loaded for `$ref`, not canonical types."""

BASE_URI = "https://esb.example/schemas/"
"""The `$id` prefix of the canonical schemas; a file without `$id` gets `BASE_URI + file name`."""

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

MAX_GOT_LENGTH = 60
"""Longest rendering of a wrong value in a `FieldProblem.got`, in characters."""

DOCUMENT_KEY_ANNOTATIONS = {
    "x-esb-document-number": "document_number",
    "x-esb-revision": "revision",
    "x-esb-occurred-at": "occurred_at",
}
"""The top-level annotations of a canonical schema -> the `DocumentKeys` field they fill."""

_META_VALIDATOR = jsonschema.Draft202012Validator(
    jsonschema.Draft202012Validator.META_SCHEMA,
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)  # what Draft202012Validator.check_schema uses, kept to list every problem instead of the best one


class UnknownSchemaError(UnknownName):
    """An unknown canonical type or version: a `NotFound` whose text is a plain sentence."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class DocumentKeys:
    """Which payload fields of a canonical type the bus reads (None: the type has no such field)."""

    document_number: str | None = None
    revision: str | None = None
    occurred_at: str | None = None


class SchemaRegistry:
    """Every `<type>.v<N>.json` of a directory, checked and compiled once; thread-safe to share.

    Parameters:
        directory (Path | str | None): the folder of schema files; default `DEFAULT_DIRECTORY`.

    Raises `ConfigError` listing a `Problem(file, line, what)` for every unreadable, invalid or
    unresolvable schema file, so an integrator sees them all at once.
    """

    def __init__(self, directory: Path | str | None = None):
        self.directory = Path(directory) if directory is not None else DEFAULT_DIRECTORY
        loaded, problems = _load_directory(self.directory)
        self._by_uri: dict[str, dict] = {uri: schema for uri, (_, _, schema) in loaded.items()}
        self._schemas: dict[tuple[str, int], dict] = {}
        self._validators: dict[tuple[str, int], Any] = {}
        self._document_keys: dict[tuple[str, int], DocumentKeys] = {}
        if not problems:
            problems = self._compile(loaded)
        if problems:
            raise ConfigError(problems)

    def _compile(self, loaded: dict[str, tuple[Path, tuple[str, int], dict]]) -> list[Problem]:
        """One jsonschema-rs validator per canonical file; `$ref`s to other files are served from
        the loaded ones by `_serve_loaded` (a prebuilt jsonschema_rs.Registry would fail as a whole
        on one bad `$ref`, without saying which file holds it)."""
        problems = []
        for uri, (path, key, schema) in loaded.items():
            if key[0] in SHARED_SCHEMAS:
                continue
            try:
                self._validators[key] = jsonschema_rs.Draft202012Validator(
                    schema, retriever=self._serve_loaded, validate_formats=True, base_uri=uri)
            except (ValueError, jsonschema_rs.ReferencingError) as error:
                first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
                problems.append(Problem(str(path), 0, f"cannot compile the schema: {first_line}"))
                continue
            self._schemas[key] = schema
            self._document_keys[key] = DocumentKeys(**{
                name: schema.get(annotation) for annotation, name in DOCUMENT_KEY_ANNOTATIONS.items()})
        return problems

    def _serve_loaded(self, uri: str) -> dict:
        """The retriever of jsonschema-rs: loaded files only, never the network."""
        schema = self._by_uri.get(urldefrag(uri)[0])
        if schema is None:
            raise ValueError(f"{uri} is not a loaded schema file (never fetched from the network)")
        return schema

    # --- what is known ------------------------------------------------------------------------
    def types(self) -> list[str]:
        """The canonical type names, sorted."""
        return sorted({name for name, _ in self._schemas})

    def versions(self, type: str) -> list[int]:
        """The schema versions of a type, ascending; `UnknownSchemaError` for an unknown type."""
        versions = sorted(version for name, version in self._schemas if name == type)
        if not versions:
            raise UnknownSchemaError(unknown("canonical type", type, self.types()))
        return versions

    def has(self, type: str, version: int = 1) -> bool:
        return (type, version) in self._schemas

    def document_keys(self, type: str, version: int = 1) -> DocumentKeys:
        """The payload fields of a type's document number, revision and business time (the
        schema's `x-esb-*` annotations); `UnknownSchemaError` for an unknown type or version."""
        self._check_known(type, version)
        return self._document_keys[(type, version)]

    def schema(self, type: str, version: int = 1) -> dict:
        """A copy of the schema document of a type and version."""
        self._check_known(type, version)
        return copy.deepcopy(self._schemas[(type, version)])

    # --- validation ---------------------------------------------------------------------------
    def validate(self, type: str, payload: Any, version: int = 1) -> None:
        """Return when `payload` is valid; else raise `ValidationError` listing every problem."""
        validator = self._validator(type, version)
        if validator.is_valid(payload):  # the hot path: no error objects built
            return
        problems = list(_unique(self._problem(error, payload) for error in validator.iter_errors(payload)))
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ValidationError(f"not a valid {type} (schema v{version}): {count}", problems)

    def is_valid(self, type: str, payload: Any, version: int = 1) -> bool:
        return self._validator(type, version).is_valid(payload)

    def _validator(self, type: str, version: int) -> Any:
        validator = self._validators.get((type, version))
        if validator is None:
            self._check_known(type, version)
        return validator

    def _check_known(self, type: str, version: int) -> None:
        if (type, version) in self._schemas:
            return
        versions = self.versions(type)  # raises for an unknown type
        raise UnknownSchemaError(unknown(f"schema version of {type}", str(version), map(str, versions)))

    # --- error reports ------------------------------------------------------------------------
    def _problem(self, error: Any, payload: Any) -> Iterator[FieldProblem]:
        """The `FieldProblem`s of one jsonschema-rs error (several for a list of unexpected fields)."""
        where = list(error.instance_path)
        kind, details = error.kind.name, error.kind.as_dict()
        subschema = self._subschema(error.absolute_keyword_location)
        if kind == "required":
            yield FieldProblem(field_path([*where, details["property"]]), "a required field")
        elif kind in ("additionalProperties", "unevaluatedProperties"):
            allowed = sorted(self._property_names(subschema, error.absolute_keyword_location or ""))
            parent = _value_at(payload, where, error.instance)
            for name in details["unexpected"]:
                value = parent.get(name) if isinstance(parent, dict) else None
                yield FieldProblem(field_path([*where, name]), "no such field" + did_you_mean(name, allowed),
                                   short_repr(value))
        else:
            yield FieldProblem(field_path(where), _expected(kind, details, subschema, error.message),
                               short_repr(_value_at(payload, where, error.instance)))

    def _subschema(self, location: str | None) -> dict:
        """The schema object holding the failing keyword, from the keyword's absolute location."""
        if not location:
            return {}
        return self._node_at(location.rsplit("/", 1)[0] if "#/" in location else location)

    def _node_at(self, uri: str) -> dict:
        """The schema object at `document-uri#/json/pointer` among the loaded files, or {}."""
        document, fragment = urldefrag(uri)
        node: Any = self._by_uri.get(document, {})
        for token in fragment.split("/")[1:]:
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict):
                node = node.get(token, {})
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return {}
        return node if isinstance(node, dict) else {}

    def _property_names(self, schema: dict, uri: str, depth: int = 0) -> set[str]:
        """Properties a schema declares itself or through `$ref`/`allOf` (at `uri`): names to suggest."""
        names = set(schema.get("properties", {}))
        if depth > 8:  # a cycle of $refs
            return names
        target = schema.get("$ref")
        if isinstance(target, str):
            resolved = urljoin(urldefrag(uri)[0], target)
            names |= self._property_names(self._node_at(resolved), resolved, depth + 1)
        for part in schema.get("allOf", []):
            if isinstance(part, dict):
                names |= self._property_names(part, uri, depth + 1)
        return names


@functools.cache
def default_registry() -> SchemaRegistry:
    """The registry of `DEFAULT_DIRECTORY`, loaded on first use and shared."""
    return SchemaRegistry()


# --- loading --------------------------------------------------------------------------------------
def _load_directory(directory: Path) -> tuple[dict[str, tuple[Path, tuple[str, int], dict]], list[Problem]]:
    """{uri: (path, (type, version), schema)} of every schema file, and the problems found."""
    if not directory.is_dir():
        return {}, [Problem(str(directory), 0, "no such schema directory")]
    loaded, problems = {}, []
    for path in sorted(directory.iterdir()):
        match = SCHEMA_FILE_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        schema, file_problems = _load_file(path)
        problems.extend(file_problems)
        if schema is not None and not file_problems:
            uri = schema.get("$id", BASE_URI + path.name)
            loaded[uri] = (path, (match["name"], int(match["version"])), schema)
    return loaded, problems


def _load_file(path: Path) -> tuple[dict | None, list[Problem]]:
    file = str(path)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        return None, [Problem(file, error.lineno, f"not valid JSON: {error.msg} (column {error.colno})")]
    except (OSError, UnicodeDecodeError) as error:
        return None, [Problem(file, 0, f"cannot read the file: {error}")]
    if not isinstance(schema, dict):
        return None, [Problem(file, 1, "a schema file must hold a JSON object")]
    problems = [
        Problem(file, 0, f"not a valid draft 2020-12 schema at {_json_path(e.absolute_path)}: {e.message}")
        for e in _META_VALIDATOR.iter_errors(schema)
    ]
    declared = schema.get("$schema", DRAFT_2020_12)
    if isinstance(declared, str) and declared.rstrip("#") != DRAFT_2020_12:
        problems.append(Problem(file, 0, f'"$schema" must be {DRAFT_2020_12}, not {declared}'))
    schema_id = schema.get("$id")
    if isinstance(schema_id, str) and urldefrag(schema_id)[0].rsplit("/", 1)[-1] != path.name:
        problems.append(Problem(file, 0, f'"$id" {schema_id} does not end with the file name {path.name}, '
                                         'so "$ref"s between files would not find it'))
    return schema, problems + _annotation_problems(file, schema)


def _annotation_problems(file: str, schema: dict) -> list[Problem]:
    """Each `x-esb-*` document-key annotation must name one of the schema's own properties."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    problems = []
    for annotation in DOCUMENT_KEY_ANNOTATIONS:
        if annotation not in schema:
            continue
        value = schema[annotation]
        if not isinstance(value, str) or value not in properties:
            problems.append(Problem(file, 0, f'"{annotation}" must name a property of the schema, not '
                                             f"{short_repr(value)}{did_you_mean(str(value), properties)}"))
    return problems


# --- rendering ----------------------------------------------------------------------------------
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_NAMES = {"number": "a number", "integer": "an integer", "string": "a string", "object": "an object",
               "array": "an array", "boolean": "true or false", "null": "null"}
_COMPARISONS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def field_path(parts: Iterable[str | int]) -> str:
    """`lines[3].quantity` from `["lines", 3, "quantity"]`; odd keys as `["a key"]`; '' for the root."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def short_repr(value: Any, limit: int = MAX_GOT_LENGTH) -> str:
    """The value as compact JSON (Decimals exact), cut to `limit` characters with '…'."""
    try:
        text = jsonfmt.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _expected(kind: str, details: dict, subschema: dict, message: str) -> str:
    """A plain sentence for what the schema wanted."""
    if kind == "type":
        return " or ".join(_TYPE_NAMES.get(name, name) for name in details["types"])
    if kind in _COMPARISONS:
        noun = "an integer" if subschema.get("type") == "integer" else "a number"
        return f"{noun} {_COMPARISONS[kind]} {_number(details['limit'])}"
    if kind == "multipleOf":
        return _multiple_of(details["multiple_of"])
    if kind == "enum":
        return "one of " + ", ".join(str(option) for option in details["options"])
    if kind == "const":
        return f"exactly {short_repr(details.get('expected_value'))}"
    if kind in ("pattern", "format"):
        described = subschema.get("description")
        if described:
            return described
        if kind == "pattern":
            return f"text matching {details.get('pattern', subschema.get('pattern'))}"
        return f"a valid {details.get('format', subschema.get('format'))}"
    if kind == "minLength":
        limit = details["limit"]
        return "a non-empty text" if limit == 1 else f"text of at least {limit} characters"
    if kind == "maxLength":
        return f"text of at most {details['limit']} characters"
    if kind == "minItems":
        return f"at least {details['limit']} item{'s' if details['limit'] != 1 else ''}"
    if kind == "maxItems":
        return f"at most {details['limit']} item{'s' if details['limit'] != 1 else ''}"
    if kind == "uniqueItems":
        return "items without duplicates"
    if kind == "falseSchema":
        return "no value here"
    return message


def _multiple_of(step: Any) -> str:
    """"a number with at most 3 decimal places" for 0.001; "a multiple of 5" otherwise."""
    _, digits, exponent = Decimal(repr(step)).normalize().as_tuple()
    if digits == (1,) and isinstance(exponent, int) and exponent < 0:
        return f"a number with at most {-exponent} decimal place{'s' if exponent != -1 else ''}"
    return f"a multiple of {_number(step)}"


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _value_at(payload: Any, parts: list[str | int], fallback: Any) -> Any:
    """The value at a path in the original payload (so Decimals show exactly), else `fallback`."""
    node = payload
    for part in parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return fallback
    return node


def _unique(groups: Iterable[Iterable[FieldProblem]]) -> Iterator[FieldProblem]:
    """Every problem once: a value failing both the pattern and the format is reported once."""
    seen = set()
    for group in groups:
        for problem in group:
            key = (problem.path, problem.expected)
            if key not in seen:
                seen.add(key)
                yield problem


def _json_path(parts: Iterable[str | int]) -> str:
    return field_path(parts) or "the top"

