"""JSON for the bus: non-integer numbers are `Decimal`, both ways, so `0.1 + 0.2` stays `0.3`.

simplejson (C speedups) is used because the standard library can read Decimals but cannot
write them as numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson

_dumps = simplejson.JSONEncoder(use_decimal=True, ensure_ascii=False, separators=(",", ":")).encode
_decoder = simplejson.JSONDecoder(parse_float=Decimal)


def dumps(value: Any) -> str:
    """Compact JSON text; Decimals are written as numbers."""
    return _dumps(value)


def dump_bytes(value: Any) -> bytes:
    """`dumps` as UTF-8 bytes."""
    return _dumps(value).encode("utf-8")


def loads(text: str | bytes) -> Any:
    """Parse JSON; numbers with a fraction or exponent become Decimal. Raises ValueError."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8")
    return _decoder.decode(text)


def pretty(value: Any) -> str:
    """Indented JSON for people (the CLI)."""
    return simplejson.dumps(value, use_decimal=True, ensure_ascii=False, indent=2)
