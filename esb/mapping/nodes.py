"""The compiled fields of a mapping, and the conversion steps of a value field.

`esb.mapping.compiler` builds these from the YAML file once; `Mapping.apply` walks them for
every document. A node's ``evaluate(context, run, prefix)`` gives its output value, or `OMIT`
when the field has none, and records every failure in the `Run` instead of raising, so one
apply reports every field that failed.

A value field's conversions are `Step`s, ``(value, context) -> value``, run in the order the
compiler puts them in (strip_leading_zeros, table, type, convert_unit, scale, zero_pad); a step
raises `ConversionError` saying what was expected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from esb import jsonfmt
from esb.codecs import LINE_KEY
from esb.conversions import (
    MAX_DIGITS,
    ConversionError,
    normalized,
    pad_with_zeros,
    strip_leading_zeros,
    to_boolean,
    to_date,
    to_datetime,
    to_decimal,
    to_integer,
    to_text,
)
from esb.errors import FieldProblem
from esb.mapping.expressions import Expression, NullInput
from esb.mapping.functions import is_empty, truthy
from esb.problems import did_you_mean

OMIT = object()
"""The value of a field that has none: it is left out of the output."""

UNSET = object()
"""No `value` / `default` declared (None is a value a mapping may declare)."""

TYPES = ("string", "decimal", "integer", "date", "datetime", "boolean")
"""The values of a field's ``type``."""

Step = Callable[[Any, Any], Any]
"""One conversion of a field's value: ``(value, context) -> value``; raises `ConversionError`."""


class Run:
    """The state of one `apply`: the problems found so far."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def problem(self, path: str, expected: str, got: str) -> None:
        self.problems.append(FieldProblem(path, expected, got))


def join_path(prefix: str, name: str) -> str:
    """``lines[2]`` + ``quantity`` -> ``lines[2].quantity``."""
    return f"{prefix}.{name}" if prefix else name


def show(value: Any) -> str:
    """A value as a problem shows it: JSON (text in double quotes), cut at 80 characters."""
    text = jsonfmt.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 80 else text[:77] + "..."


def _source_of(expression: Expression | None, value: Any, context: Any) -> str:
    where = f" from {expression.text}" if expression is not None else ""
    return f"{show(value)}{where}{_line_of(context)}"


def _line_of(context: Any) -> str:
    """``, source line 4`` for a CSV / fixed-width record, else ''."""
    line = context.get(LINE_KEY) if isinstance(context, dict) else None
    return f", source line {line}" if line else ""


# === the nodes =============================================================================

class ValueNode:
    """A field with one value: taken from an expression or a constant, then converted."""

    __slots__ = ("name", "source", "constant", "default", "required", "when", "steps")

    def __init__(self, name: str, source: Expression | None, constant: Any, default: Any, required: bool,
                 when: Expression | None, steps: list[Step]):
        self.name, self.source, self.constant, self.default = name, source, constant, default
        self.required, self.when, self.steps = required, when, steps

    def evaluate(self, context: Any, run: Run, prefix: str) -> Any:
        raw = UNSET
        try:
            if self.when is not None and not _holds(self.when, context):
                return OMIT
            value = raw = self.constant if self.source is None else self._search(context)
            if not is_empty(value):
                for step in self.steps:
                    value = step(value, context)
        except ConversionError as error:
            got = "" if raw is UNSET else _source_of(self.source, raw, context)
            run.problem(join_path(prefix, self.name), str(error), got)
            return OMIT
        if not is_empty(value):
            return value
        if self.default is not UNSET:
            return self.default
        if self.required:
            got = f"nothing at {self.source.text}" if self.source is not None else "nothing"
            run.problem(join_path(prefix, self.name), "a value (the field is required)",
                        got + _line_of(context))
        return OMIT

    def _search(self, context: Any) -> Any:
        """The source's value; None when it met null and the field may be left out."""
        try:
            return self.source.search(context)
        except NullInput:
            if self.required and self.default is UNSET:
                raise
            return None


def _holds(condition: Expression, context: Any) -> bool:
    """A ``when`` is true (JMESPath truth); one that met null is false."""
    try:
        return truthy(condition.search(context))
    except NullInput:
        return False


class ObjectNode:
    """A field that is an object of fields, evaluated in the context of ``source`` if given."""

    __slots__ = ("name", "source", "fields", "required", "when")

    def __init__(self, name: str, source: Expression | None, fields: list[tuple[str, Any]], required: bool,
                 when: Expression | None):
        self.name, self.source, self.fields, self.required, self.when = name, source, fields, required, when

    def evaluate(self, context: Any, run: Run, prefix: str) -> Any:
        path = join_path(prefix, self.name)
        try:
            if self.when is not None and not _holds(self.when, context):
                return OMIT
            if self.source is not None:
                context = self.source.search(context)
        except NullInput as error:
            if self.required:
                run.problem(path, str(error), "")
            return OMIT
        except ConversionError as error:
            run.problem(path, str(error), "")
            return OMIT
        if self.source is not None and is_empty(context):
            if self.required:
                run.problem(path, "a value (the field is required)", f"nothing at {self.source.text}")
            return OMIT
        return self.build(context, run, path)

    def build(self, context: Any, run: Run, path: str) -> Any:
        """The object of this node's fields in ``context`` (already the source's), or `OMIT`."""
        result = {}
        problems_before = len(run.problems)
        for name, node in self.fields:
            value = node.evaluate(context, run, path)
            if value is not OMIT:
                result[name] = value
        if result:
            return result
        if self.required and len(run.problems) == problems_before:
            run.problem(path, "a value (the field is required)", "no field of it had a value")
        return OMIT


class EachNode:
    """A list: one output item per item of ``source`` (kept when ``when`` is true for it)."""

    __slots__ = ("name", "source", "item", "required", "when")

    def __init__(self, name: str, source: Expression, item: ObjectNode | ValueNode, required: bool,
                 when: Expression | None):
        self.name, self.source, self.item, self.required, self.when = name, source, item, required, when

    def evaluate(self, context: Any, run: Run, prefix: str) -> Any:
        path = join_path(prefix, self.name)
        try:
            items = self.source.search(context)
        except ConversionError as error:
            if self.required or not isinstance(error, NullInput):
                run.problem(path, str(error), "")
            return OMIT
        if items is None:
            items = []
        elif not isinstance(items, list):
            items = [items]  # an element that occurred once (XML) is a list of one
        result = []
        is_object = isinstance(self.item, ObjectNode)
        for index, item in enumerate(items):
            here = f"{path}[{index}]"
            try:
                if self.when is not None and not _holds(self.when, item):
                    continue
            except ConversionError as error:
                run.problem(here, str(error), "")
                continue
            value = self.item.build(item, run, here) if is_object else self.item.evaluate(item, run, here)
            if value is not OMIT:
                result.append(value)
        if result:
            return result
        if self.required and not items:
            run.problem(path, "at least one item (the field is required)", f"nothing at {self.source.text}")
        return OMIT


# === the conversion steps ==================================================================

@dataclass(frozen=True, slots=True)
class CodeTable:
    """A code table of the mapping file: text code -> value."""

    values: dict[str, Any]
    default: Any = UNSET
    reverse: dict[str, Any] | None = None  # from an explicit `reverse:`, or None if not invertible


def leading_zeros_stripped() -> Step:
    """SAP's ALPHA output conversion (digits only)."""
    return lambda value, context: strip_leading_zeros(to_text(value))


def table_lookup(label: str, values: dict[str, Any], default: Any) -> Step:
    """The value of a code in ``values``; ``default`` (unless `UNSET`) for an unknown code."""
    known = ", ".join(list(values)[:12]) + (", ..." if len(values) > 12 else "")

    def look_up(value: Any, context: Any) -> Any:
        code = to_text(value)
        if code in values:
            return values[code]
        if default is not UNSET:
            return default
        raise ConversionError(f"a code of {label}{did_you_mean(code, values)} (known: {known})")

    return look_up


def type_conversion(kind: str, formats: tuple[str, ...], zone: ZoneInfo, separator: str) -> Step:
    """The conversion of a ``type`` (one of `TYPES`); ``formats`` and ``zone`` for dates and times,
    ``separator`` (auto, ".", ",") for decimals."""
    if kind == "string":
        return lambda value, context: to_text(value)
    if kind == "decimal":
        return lambda value, context: to_decimal(value, separator)
    if kind == "integer":
        return lambda value, context: to_integer(value)
    if kind == "boolean":
        return lambda value, context: to_boolean(value)
    if kind == "date":
        return lambda value, context: to_date(value, formats, zone)
    if kind == "datetime":
        return lambda value, context: to_datetime(value, zone, formats)
    raise ValueError(f"not a type of {TYPES}: {kind!r}")


def unit_conversion(name: str, factors: dict[str, Decimal], unit: Expression, divide: bool) -> Step:
    """Quantity times (or, with ``divide``, divided by) the factor of the unit that ``unit`` gives."""

    def convert(value: Any, context: Any) -> Any:
        found = unit.search(context)
        factor = factors.get(to_text(found) if found is not None else "")
        if factor is None:
            raise ConversionError(f"a unit of unit_factors {name} (known: {', '.join(factors)}), "
                                  f"but the unit is {show(found)}")
        number = to_decimal(value)
        return normalized(number / factor if divide else number * factor)

    return convert


def rounding(scale: int, *, as_text: bool) -> Step:
    """Round half up to ``scale`` decimals; ``as_text``: exactly that many decimals, as text."""
    exponent = Decimal(1).scaleb(-scale)

    def rounded(value: Any, context: Any) -> Any:
        try:
            number = to_decimal(value).quantize(exponent, rounding=ROUND_HALF_UP)
        except InvalidOperation:  # more digits than Decimal's precision once the scale is added
            raise ConversionError(f"a decimal number of at most {MAX_DIGITS - scale} digits before the "
                                  f"point (rounded to {scale} decimals)") from None
        return format(number, "f") if as_text else number

    return rounded


def zero_padding(width: int) -> Step:
    """SAP's ALPHA input conversion to ``width`` digits (digits only)."""
    return lambda value, context: pad_with_zeros(to_text(value), width)
