"""Durations in the configuration: a number of seconds or a string such as `500ms`, `5s`, `2m`, `1h`."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"
"""The same grammar as a JSON Schema pattern, for schemas/routes.schema.json."""


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`; raises ValueError with the accepted forms when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. 500ms, 5s, 2m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def duration_option(description: str, default: float | str | None, **extra) -> dict:
    """The JSON-Schema fragment of a duration option in an adapter's spec: seconds as a number,
    or a string such as 500ms, 10s, 2m; nullable when it has no default."""
    types = ["number", "string"] if default is not None else ["number", "string", "null"]
    return {"type": types, "minimum": 0, "pattern": DURATION_PATTERN,
            "description": description, "default": default, **extra}
