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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jmespath.functions

from esb.codecs import LINE_KEY
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

@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the bus knows of an input besides its bytes: the source metadata of the functions
    ``source_file()``, ``source_line()`` and ``received_at()``.

    ``line`` is the line of the file on which the input's first record is, when the input is a
    part of a file (a record or group that the file source sends alone): the records' own lines
    (``__line__``) are then moved by the same amount, so that they are lines of the file."""

    file: str | None = None
    line: int | None = None
    received_at: str | None = None  # RFC 3339; default: when the input's mapping began

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None, received_at: str | None = None) -> SourceInfo:
        """From a source's `RawMessage.metadata` (``file``, ``line``; see `esb.plugins`)."""
        metadata = metadata or {}
        line = metadata.get("line")
        file = metadata.get("file")
        return cls(file=str(file) if file is not None else None,
                   line=int(line) if isinstance(line, int | str) and str(line).isdigit() else None,
                   received_at=received_at)


NO_SOURCE = SourceInfo()


class InputScope:
    """The input being mapped, as the functions see it: ``with InputScope(document, source): ...``."""

    __slots__ = ("document", "source", "started_at", "_token")

    def __init__(self, document: Any, source: SourceInfo | None = None) -> None:
        self.document = document  # the whole input document: root()
        self.source = source or NO_SOURCE
        self.started_at = _now()  # now(): one instant for every field of the document

    def __enter__(self) -> InputScope:
        self._token = _CURRENT_SCOPE.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _CURRENT_SCOPE.reset(self._token)


_CURRENT_SCOPE: contextvars.ContextVar[InputScope | None] = contextvars.ContextVar("esb_mapping_scope",
                                                                                  default=None)


def _scope() -> InputScope:
    return _CURRENT_SCOPE.get() or InputScope(None)


def _now() -> str:
    """RFC 3339 in UTC with milliseconds, as the envelope's times are written."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# === the functions =========================================================================

_TEXT = ["string", "number", "null"]
"""What the text functions take: text, a number (as its text) or null."""

_OPTIONAL_NUMBER = {"types": ["number"], "optional": True}
_OPTIONAL_TEXT = {"types": ["string"], "optional": True}

_DOCUMENT = object()
"""source_line() without an argument: the line of the document being mapped."""


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


def _padding(function: str, width: Any, pad: Any) -> tuple[int, str]:
    if not isinstance(pad, str) or len(pad) != 1:
        raise ValueError(f"{function}: the pad is one character, not {pad!r}")
    return _whole_number(function, "width", width), pad


class MappingFunctions(jmespath.functions.Functions):
    """The functions mapping expressions may use besides JMESPath's own.

    A signature entry with ``"optional": True`` (the last ones only) is an argument that may be
    left out; the method then has a default for it."""

    def _validate_arguments(self, args: list, signature: tuple, function_name: str) -> None:
        required = len([entry for entry in signature if not entry.get("optional")])
        if required < len(signature) and required <= len(args) <= len(signature):
            return self._type_check(args, signature[:len(args)], function_name)
        return super()._validate_arguments(args, signature, function_name)

    @jmespath.functions.signature()
    def _func_root(self) -> Any:
        return _scope().document

    # --- source metadata (see SourceInfo) -------------------------------------------------

    @jmespath.functions.signature()
    def _func_source_file(self) -> str | None:
        """The name of the file the input came from (null when it came from no file)."""
        return _scope().source.file

    @jmespath.functions.signature({"types": [], "optional": True})
    def _func_source_line(self, record: Any = _DOCUMENT) -> int | None:
        """The line of the file a record starts on: ``source_line(@)`` for the record in hand;
        without an argument, the document's (a grouped document's first record's)."""
        scope = _scope()
        target = scope.document if record is _DOCUMENT else record
        line = target.get(LINE_KEY) if isinstance(target, dict) else None
        return scope.source.line if line is None and record is _DOCUMENT else line

    @jmespath.functions.signature()
    def _func_received_at(self) -> str:
        """When the bus received the input, RFC 3339 in UTC (the envelope's received_at)."""
        scope = _scope()
        return scope.source.received_at or scope.started_at

    @jmespath.functions.signature()
    def _func_now(self) -> str:
        """The time the document is mapped, RFC 3339 in UTC (one instant for all its fields)."""
        return _scope().started_at

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

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["number"]}, _OPTIONAL_NUMBER)
    def _func_substring(self, text: Any, start: Any, length: Any = None) -> str | None:
        """Characters from ``start`` (0-based; negative counts from the end), ``length`` of them
        (default: to the end)."""
        if text is None:
            return None
        value = _as_text(text)
        begin = _whole_number("substring", "start", start)
        begin = max(len(value) + begin, 0) if begin < 0 else begin
        if length is None:
            return value[begin:]
        return value[begin:begin + max(_whole_number("substring", "length", length), 0)]

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["number"]}, _OPTIONAL_TEXT)
    def _func_pad_left(self, text: Any, width: Any, pad: str = " ") -> str | None:
        """``text`` right-aligned in ``width`` characters, filled with ``pad`` (default a space);
        longer text is kept whole."""
        return None if text is None else _as_text(text).rjust(*_padding("pad_left", width, pad))

    @jmespath.functions.signature({"types": _TEXT}, {"types": ["number"]}, _OPTIONAL_TEXT)
    def _func_pad_right(self, text: Any, width: Any, pad: str = " ") -> str | None:
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
