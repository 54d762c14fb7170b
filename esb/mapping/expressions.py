"""Mapping expressions: JMESPath with the mapping's own functions, compiled once into closures.

This is the one place for what an expression can do:

- `MappingFunctions`: the functions added to JMESPath's own (``root()``, ``concat``, ...);
- `InputScope`: what those functions may know of the input as a whole while one document is
  mapped (today the document itself, for ``root()``). Source metadata (file name, line number,
  received time) is a field here and a function in `MappingFunctions`;
- `Expression`: an expression compiled into Python closures (the common node types) with the
  tree interpreter's exact semantics; the other node types run in the interpreter.

Importing this module also makes `Decimal` a number to JMESPath's type checks.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.visitor

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

_INTERPRETER = jmespath.visitor.TreeInterpreter(jmespath.Options(custom_functions=MappingFunctions()))


# === compiled expressions ==================================================================

class Expression:
    """A JMESPath expression, parsed and turned into Python closures once.

    ``search(data)`` gives JMESPath's result; a failure at run time raises `ConversionError`
    naming the expression. Parsing raises `jmespath.exceptions.JMESPathError`.
    """

    __slots__ = ("text", "_compiled", "search")

    def __init__(self, text: str):
        self.text = text
        ast = jmespath.compile(text).parsed  # raises jmespath.exceptions.ParseError
        self._compiled = _compile_node(ast)
        self.search: Callable[[Any], Any] = self._compiled if _is_plain_path(ast) else self._guarded

    def _guarded(self, data: Any) -> Any:
        try:
            return self._compiled(data)
        except (jmespath.exceptions.JMESPathError, TypeError, ValueError, ArithmeticError) as error:
            # TypeError: JMESPath orders a string against a number by Python's rules ("a" > 0)
            raise ConversionError(f"expression {self.text!r} to work ({error})") from None


def _is_plain_path(ast: dict) -> bool:
    """``a``, ``a.b.c``, ``@`` or a literal: nothing in it can raise."""
    kind = ast["type"]
    if kind in ("field", "current", "literal"):
        return True
    return kind == "subexpression" and all(child["type"] == "field" for child in ast["children"])


# The mapping hot path spends its time in JMESPath's tree interpreter, which dispatches on every
# node of every expression at every call. The common node types are compiled here into closures
# with the interpreter's exact semantics (same helpers); the others are run by the interpreter.
_equals = jmespath.visitor._equals
_interpreter_is_false = _INTERPRETER._is_false


def _compile_node(node: dict) -> Callable[[Any], Any]:
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        name = node["value"]
        return lambda data: data.get(name) if isinstance(data, dict) else None
    if kind in ("current", "identity"):
        return lambda data: data
    if kind == "literal":
        value = node["value"]
        return lambda data: value
    if kind in ("subexpression", "index_expression", "pipe"):
        return _chain([_compile_node(child) for child in children])
    if kind == "index":
        position = node["value"]
        return lambda data: _at(data, position)
    if kind == "comparator" and node["value"] in ("eq", "ne"):
        left, right = _compile_node(children[0]), _compile_node(children[1])
        if node["value"] == "eq":
            return lambda data: _equals(left(data), right(data))
        return lambda data: not _equals(left(data), right(data))
    if kind == "filter_projection":
        return _filter_projection(*(_compile_node(child) for child in children))
    if kind == "and_expression":
        left, right = _compile_node(children[0]), _compile_node(children[1])
        return lambda data: matched if _interpreter_is_false(matched := left(data)) else right(data)
    if kind == "or_expression":
        left, right = _compile_node(children[0]), _compile_node(children[1])
        return lambda data: right(data) if _interpreter_is_false(matched := left(data)) else matched
    if kind == "multi_select_list":
        parts = [_compile_node(child) for child in children]
        return lambda data: None if data is None else [part(data) for part in parts]
    if kind == "function_expression":
        name, arguments = node["value"], [_compile_node(child) for child in children]
        call = _INTERPRETER._functions.call_function
        return lambda data: call(name, [argument(data) for argument in arguments])
    return lambda data: _INTERPRETER.visit(node, data)


def _chain(steps: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    if len(steps) == 2:
        first, second = steps
        return lambda data: second(first(data))

    def chained(data: Any) -> Any:
        for step in steps:
            data = step(data)
        return data

    return chained


def _at(data: Any, position: int) -> Any:
    if not isinstance(data, list):
        return None
    try:
        return data[position]
    except IndexError:
        return None


def _filter_projection(base: Callable, project: Callable, condition: Callable) -> Callable[[Any], Any]:
    def filtered(data: Any) -> Any:
        items = base(data)
        if not isinstance(items, list):
            return None
        collected = []
        for item in items:
            if not _interpreter_is_false(condition(item)):
                value = project(item)
                if value is not None:
                    collected.append(value)
        return collected

    return filtered
