"""Schema errors of routes.yaml as sentences: what was expected, what came, "did you mean"."""

from __future__ import annotations

from typing import Any

from esb.config.document import Document, JsonPath
from esb.config.schema import DESTINATION_KEYS, duration_schema
from esb.durations import DURATION_PATTERN
from esb.plugins import adapters
from esb.problems import did_you_mean, unknown

_TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string",
               "boolean": "true or false", "object": "a block of key: value pairs", "array": "a list",
               "null": "nothing"}


def _expected(schema: dict) -> str:
    """What a schema asks for, in words: "an integer >= 1", "one of classic, quorum"."""
    if "x-esb-expected" in schema:
        return schema["x-esb-expected"]
    if schema.get("pattern") == DURATION_PATTERN:
        return duration_schema()["x-esb-expected"]
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


def schema_problems(document: Document, schema: dict) -> set[JsonPath]:
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


def _sentences(document: Document, error, path: JsonPath) -> list[tuple[JsonPath, str]]:
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
    if kind == "oneOf" and "x-esb-expected" in schema:  # e.g. an alert rule with no kind, or two
        return [(path, f"expected {schema['x-esb-expected']}, got {_shown(instance)}")]
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

