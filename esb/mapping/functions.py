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
        return "".join("" if value is None else to_text(value) for value in values)

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
