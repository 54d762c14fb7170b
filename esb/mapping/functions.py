"""What mapping expressions can call besides JMESPath's own, and what those functions know.

This is the one place for a new expression function or a new piece of source metadata:

- `MappingFunctions`: the added functions (``root()``, ``concat``, ...), one method each;
- `InputScope`: what the functions may know of the input as a whole while one document is
  mapped (the document itself, for ``root()``). Source metadata (file name, line number,
  received time) is a field here and a function in `MappingFunctions`.

`esb.mapping.expressions` builds the JMESPath interpreter with these functions. Importing this
module also makes `Decimal` a number to JMESPath's type checks.
"""

from __future__ import annotations

import contextvars
import functools
import re
from decimal import Decimal
from typing import Any

import jmespath.functions

from esb.conversions import ConversionError, to_decimal, to_text


def is_empty(value: Any) -> bool:
    """No value: null, blank text, [] or {} (an optional field with it is left out)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def truthy(value: Any) -> bool:
    """JMESPath truth: false, null, "", [] and {} are false; 0 is true."""
    return not (value is None or value is False or (isinstance(value, str | list | dict) and not value))


# === what the functions see of the input ===================================================

class InputScope:
    """The input being mapped, as the functions see it: ``with InputScope(document): ...``."""

    __slots__ = ("document", "_token")

    def __init__(self, document: Any) -> None:
        self.document = document  # the whole input document: root()

    def __enter__(self) -> InputScope:
        self._token = _CURRENT_SCOPE.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _CURRENT_SCOPE.reset(self._token)


_CURRENT_SCOPE: contextvars.ContextVar[InputScope | None] = contextvars.ContextVar("esb_mapping_scope",
                                                                                  default=None)


# === the functions =========================================================================

_TEXT = ["string", "number", "null"]
"""What the text functions take: text, a number (as its text) or null."""


@functools.lru_cache(maxsize=256)
def regex(pattern: str) -> re.Pattern:
    """A compiled regular expression of a mapping (cached); ValueError naming a bad one."""
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(f"bad regular expression {pattern!r}: {error}") from None


def _as_text(value: Any) -> str:
    """Text as it is (spaces kept), a number as its text."""
    return value if isinstance(value, str) else to_text(value)


def _whole_number(function: str, argument: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or value != int(value):
        raise ValueError(f"{function}: {argument} must be a whole number, not {value!r}")
    return int(value)


def _optional_whole_number(function: str, argument: str, extra: tuple, default: int | None) -> int | None:
    if len(extra) > 1:
        raise ValueError(f"{function}: too many arguments")
    return _whole_number(function, argument, extra[0]) if extra else default


def _padding(function: str, width: Any, extra: tuple) -> tuple[int, str]:
    if len(extra) > 1:
        raise ValueError(f"{function}: too many arguments")
    pad = extra[0] if extra else " "
    if not isinstance(pad, str) or len(pad) != 1:
        raise ValueError(f"{function}: the pad is one character, not {pad!r}")
    return _whole_number(function, "width", width), pad


class MappingFunctions(jmespath.functions.Functions):
    """The functions mapping expressions may use besides JMESPath's own."""

    @jmespath.functions.signature()
    def _func_root(self) -> Any:
        scope = _CURRENT_SCOPE.get()
        return None if scope is None else scope.document

    @jmespath.functions.signature({"types": []})
    def _func_as_list(self, value: Any) -> list:
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    @jmespath.functions.signature({"types": [], "variadic": True})
    def _func_concat(self, *values: Any) -> str:
        # text is joined as it is, so concat(a, ' ', b) keeps its space; null counts as ""
        return "".join(value if isinstance(value, str) else "" if value is None else to_text(value)
                       for value in values)

    @jmespath.functions.signature({"types": [], "variadic": True})
    def _func_coalesce(self, *values: Any) -> Any:
        return next((value for value in values if not is_empty(value)), None)

    @jmespath.functions.signature({"types": ["string", "null"]})
    def _func_lower(self, text: str | None) -> str | None:
        return None if text is None else text.lower()

    @jmespath.functions.signature({"types": ["string", "null"]})
    def _func_upper(self, text: str | None) -> str | None:
        return None if text is None else text.upper()

    @jmespath.functions.signature({"types": ["string", "null"]})
    def _func_trim(self, text: str | None) -> str | None:
        return None if text is None else text.strip()

    @jmespath.functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
    def _func_split(self, text: str | None, separator: str) -> list[str]:
        return [] if not text else text.split(separator)

    @jmespath.functions.signature({"types": ["string", "null"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, text: str | None, old: str, new: str) -> str | None:
        return None if text is None else text.replace(old, new)

    # --- text: null in, null out (a field whose source is missing stays missing) -----------

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["number"], "variadic": True})
    def _func_substring(self, text: Any, start: Any, *length: Any) -> str | None:
        """Characters from ``start`` (0-based; negative counts from the end), ``length`` of them
        (default: to the end)."""
        if text is None:
            return None
        count = _optional_whole_number("substring", "length", length, None)
        value = _as_text(text)
        begin = _whole_number("substring", "start", start)
        begin = max(len(value) + begin, 0) if begin < 0 else begin
        return value[begin:] if count is None else value[begin:begin + max(count, 0)]

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["number"], "variadic": True})
    def _func_pad_left(self, text: Any, width: Any, *pad: Any) -> str | None:
        """``text`` right-aligned in ``width`` characters, filled with ``pad`` (default a space);
        longer text is kept whole."""
        return None if text is None else _as_text(text).rjust(*_padding("pad_left", width, pad))

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["number"], "variadic": True})
    def _func_pad_right(self, text: Any, width: Any, *pad: Any) -> str | None:
        """``text`` left-aligned in ``width`` characters, filled with ``pad`` (default a space)."""
        return None if text is None else _as_text(text).ljust(*_padding("pad_right", width, pad))

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["string"]}, {"types": ["string"]})
    def _func_regex_replace(self, text: Any, pattern: str, replacement: str) -> str | None:
        """Every match of ``pattern`` (Python regular expression) replaced; ``\\1`` or
        ``\\g<name>`` in ``replacement`` insert a group."""
        if text is None:
            return None
        try:
            return regex(pattern).sub(replacement, _as_text(text))
        except re.error as error:
            raise ValueError(f"regex_replace: bad replacement {replacement!r}: {error}") from None

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["string"]})
    def _func_matches(self, text: Any, pattern: str) -> bool:
        """True when ``pattern`` (Python regular expression) is found in ``text`` (anchor it with
        ^ and $ to match the whole text); false for null."""
        return text is not None and regex(pattern).search(_as_text(text)) is not None

    @jmespath.functions.signature({"types": _TEXT})
    def _func_strip_zeros(self, code: Any) -> str | None:
        """Leading zeros removed from any code, letters and all: ``000A12`` -> ``A12``,
        ``0000`` -> ``0`` (the field option strip_leading_zeros touches digit-only codes only)."""
        if code is None:
            return None
        text = to_text(code)
        return text.lstrip("0") or ("0" if text else "")

    @jmespath.functions.signature({"types": []})
    def _func_to_number(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                number = to_decimal(value, ".")
            except ConversionError:
                return None
            return int(number) if number == number.to_integral_value() and "." not in value else number
        return super()._func_to_number(value)


# Decimal is a number to JMESPath's type checks (sum, max, sort_by, abs ...).
jmespath.functions.TYPES_MAP.setdefault("Decimal", "number")
if "Decimal" not in jmespath.functions.REVERSE_TYPES_MAP["number"]:
    jmespath.functions.REVERSE_TYPES_MAP["number"] += ("Decimal",)
