"""Mapping expressions: JMESPath with the mapping's own functions, compiled once into closures.

`Expression` is an expression compiled into Python closures (the common node types) with the
tree interpreter's exact semantics; the other node types run in the interpreter. What the
expressions can call besides JMESPath's own functions is in `esb.mapping.functions`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.visitor

from esb.conversions import ConversionError
from esb.mapping.functions import MappingFunctions, regex
from esb.problems import unknown

_INTERPRETER = jmespath.visitor.TreeInterpreter(jmespath.Options(custom_functions=MappingFunctions()))


# === compiled expressions ==================================================================

class NullInput(ConversionError):
    """An expression that failed because a function met null (``join(', ', missing)``): to an
    optional field, no value; to a required one, an error."""


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
        except jmespath.exceptions.JMESPathTypeError as error:
            kind = NullInput if error.actual_type == "null" else ConversionError
            raise kind(f"expression {self.text!r} to work ({error})") from None
        except (jmespath.exceptions.JMESPathError, TypeError, ValueError, ArithmeticError) as error:
            # TypeError: JMESPath orders a string against a number by Python's rules ("a" > 0)
            raise ConversionError(f"expression {self.text!r} to work ({error})") from None

    def problems(self) -> list[str]:
        """What is wrong with the expression's function calls, found without running it: an
        unknown function (with "did you mean"), a wrong number of arguments, a bad literal regular
        expression."""
        return list(_call_problems(jmespath.compile(self.text).parsed))


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


def _call_problems(node: dict) -> Iterator[str]:
    for child in node.get("children", []):
        yield from _call_problems(child)
    if node["type"] != "function_expression":
        return
    name, arguments = node["value"], node["children"]
    table = _INTERPRETER._functions.FUNCTION_TABLE
    if name not in table:
        yield unknown("function", f"{name}()", [f"{known}()" for known in table])
        return
    signature = table[name]["signature"]
    variadic = bool(signature) and signature[-1].get("variadic", False)
    least = len([entry for entry in signature if not entry.get("optional")])
    most = None if variadic else len(signature)
    if len(arguments) < least or most is not None and len(arguments) > most:
        wanted = (f"at least {least}" if most is None else str(least) if least == most
                  else f"{least} to {most}")
        yield f"{name}() takes {wanted} argument{'s' if wanted != '1' else ''}, not {len(arguments)}"
        return
    if name in ("matches", "regex_replace") and len(arguments) > 1 and arguments[1]["type"] == "literal":
        try:
            regex(str(arguments[1]["value"]))
        except ValueError as error:
            yield f"{name}(): {error}"
