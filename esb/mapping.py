"""Declarative mapping files: a source format to a canonical document ("in"), or back ("out").

The file (YAML)::

    direction: in                 # in: source format -> canonical; out: canonical -> target format
    canonical_type: purchase_order   # produced (in) or consumed (out); one of CANONICAL_TYPES
    timezone: Asia/Shanghai       # zone of local times without an offset (default UTC)
    input:                        # "in": the source format and its codec options (esb/codecs)
      format: xml                 # json | xml | csv | fixedwidth
      repeat: [E1EDP01]           # (codec option) elements that are always lists
      split: ORDERS05.IDOC        # JMESPath: one document per item it finds
      group_by: receipt_no        # CSV/fixed-width: one document per run of rows with this value
      group_starts_with: H        # fixed-width: a record of this type starts a document
    output: {format: json}        # "out": the target format and its codec options
    tables:                       # code tables: text code -> value
      plants: {"1000": WH1}                         # short form: unknown code = error
      units: {values: {ST: EA}, default: EA, reverse: {EA: ST}}   # long form
    unit_factors:                 # quantity conversion: 1 <unit> = factor <target unit>
      to_each: {CT: 12, EA: 1}
    fields: {...}                 # the output document, field by field

A grouped document is ``{"key", "header": first record, "records": [...]}``; each record keeps
its source line under ``__line__`` (and its record type under ``__type__``).

A field is a JMESPath expression (``order_number: E1EDK01.BELNR``) or a mapping of:

- ``from`` (expression) or ``value`` (a constant; YAML numbers with a fraction are Decimal);
- ``fields: {...}``: a nested object (with ``from``: evaluated in that context);
- ``each: <expression>`` with ``fields: {...}`` or ``item: <field>``: a list, one output item per
  source item (a single non-list item counts as a list of one); ``when`` then filters items;
- ``required`` (default true, false when a ``default`` is given): a required field with no value
  is an error; an optional one is left out when empty (null, blank text, [] or {});
- ``default``: the output value when the source is missing or empty (not converted);
- ``when: <expression>``: keep the field only when the expression is true (JMESPath truth);
- conversions, applied in this order: ``strip_leading_zeros`` (SAP ALPHA: digits only),
  ``table`` / ``reverse_table``, ``type`` (``string``, ``decimal``, ``integer``, ``date``,
  ``datetime``, ``boolean``; with ``format`` (strptime, one or a list), ``timezone``,
  ``decimal_separator`` (auto, ".", ",")), ``convert_unit: {factors, unit: <expression>,
  divide: false}``, ``scale`` (round half up; with type string: exactly that many decimals),
  ``zero_pad: <width>`` (SAP ALPHA input: digits only).

Decimals are exact (``12,5`` and SAP's ``13-`` understood; 12.000 becomes 12); dates are
``YYYY-MM-DD`` (``00000000`` is no date; a time with an offset gives its date in the mapping's
zone); datetimes are RFC 3339 with the offset (a local time gets the mapping's zone).

Expressions are JMESPath, compiled once when the file is loaded (the common node types into
Python closures). Added functions: ``root()`` (the whole input document, to reach the header
from inside ``each``), ``as_list(x)``, ``concat(a, b, ...)`` (null counts as ""),
``coalesce(a, b, ...)`` (first non-empty), ``lower``, ``upper``, ``trim``, ``split(text, sep)``,
``replace(text, old, new)``; ``to_number`` gives a Decimal for text with a fraction. JMESPath
literals in backquotes are floats: write exact constants with ``value:``.

A failure raises `MappingError` naming the mapping file and, for every field that failed, the
target path (``lines[2].quantity``: the index is the source item's), the value, the expression
and, for CSV/fixed-width, the source line. A bad file raises `ConfigError` listing every problem
with its YAML line (`check_mapping` returns them).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath
import jmespath.exceptions
import jmespath.functions
import jmespath.visitor
import yaml

from esb import codecs, jsonfmt
from esb.codecs import LINE_KEY, RECORD_TYPE_KEY
from esb.conversions import (
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
from esb.errors import ConfigError, DecodeError, FieldProblem, MappingError
from esb.problems import Problem, did_you_mean, unknown

CANONICAL_TYPES = ("item", "purchase_order", "inbound_notice", "goods_receipt", "shipment_order",
                   "shipment_confirmation", "inventory_snapshot", "inventory_adjustment", "stock_count",
                   "inventory_discrepancy", "alert")
"""The canonical types of CANONICAL.md; a mapping naming another type is a problem."""

DEFAULT_TIMEZONE = "UTC"
"""Zone of local times without an offset when the mapping declares no ``timezone``."""

TOP_LEVEL_KEYS = ("direction", "canonical_type", "description", "source", "timezone", "input", "output",
                  "tables", "unit_factors", "fields")
INPUT_KEYS = ("format", "split", "group_by", "group_starts_with")  # plus the codec's own options
FIELD_KEYS = ("from", "value", "default", "required", "when", "type", "format", "timezone",
              "strip_leading_zeros", "zero_pad", "decimal_separator", "table", "reverse_table",
              "convert_unit", "scale", "fields", "each", "item", "description")
TABLE_KEYS = ("values", "default", "reverse")
TYPES = ("string", "decimal", "integer", "date", "datetime", "boolean")


# === JMESPath ==============================================================================

_ROOT: contextvars.ContextVar[Any] = contextvars.ContextVar("esb_mapping_root", default=None)


class MappingFunctions(jmespath.functions.Functions):
    """The functions mapping expressions may use besides JMESPath's own."""

    @jmespath.functions.signature()
    def _func_root(self) -> Any:
        return _ROOT.get()

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
        return next((value for value in values if not _is_empty(value)), None)

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


class _Expression:
    """A compiled JMESPath expression, turned into Python closures once (see `_compile_node`)."""

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


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _truthy(value: Any) -> bool:
    """JMESPath truth: false, null, "", [] and {} are false; 0 is true."""
    return not (value is None or value is False or (isinstance(value, str | list | dict) and not value))


# === compiled mapping nodes ================================================================

_OMIT = object()  # a field with no value: left out of the output
_UNSET = object()  # no `value` / `default` declared


class _Run:
    """The state of one `apply`: the problems found so far."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def problem(self, path: str, expected: str, got: str) -> None:
        self.problems.append(FieldProblem(path, expected, got))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _show(value: Any) -> str:
    text = jsonfmt.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 80 else text[:77] + "..."


def _source_of(expression: _Expression | None, value: Any, context: Any) -> str:
    where = f" from {expression.text}" if expression is not None else ""
    line = context.get(LINE_KEY) if isinstance(context, dict) else None
    return f"{_show(value)}{where}" + (f", source line {line}" if line else "")


class _Value:
    """A field with one value: taken from an expression or a constant, then converted."""

    __slots__ = ("name", "source", "constant", "default", "required", "when", "steps")

    def __init__(self, name: str, source: _Expression | None, constant: Any, default: Any, required: bool,
                 when: _Expression | None, steps: list[Callable[[Any, Any], Any]]):
        self.name, self.source, self.constant, self.default = name, source, constant, default
        self.required, self.when, self.steps = required, when, steps

    def evaluate(self, context: Any, run: _Run, prefix: str) -> Any:
        raw = _UNSET
        try:
            if self.when is not None and not _truthy(self.when.search(context)):
                return _OMIT
            value = raw = self.constant if self.source is None else self.source.search(context)
            if not _is_empty(value):
                for step in self.steps:
                    value = step(value, context)
        except ConversionError as error:
            got = "" if raw is _UNSET else _source_of(self.source, raw, context)
            run.problem(_join(prefix, self.name), str(error), got)
            return _OMIT
        if not _is_empty(value):
            return value
        if self.default is not _UNSET:
            return self.default
        if self.required:
            got = f"nothing at {self.source.text}" if self.source is not None else "nothing"
            line = context.get(LINE_KEY) if isinstance(context, dict) else None
            run.problem(_join(prefix, self.name), "a value (the field is required)",
                        got + (f", source line {line}" if line else ""))
        return _OMIT


class _Object:
    """A field that is an object of fields, evaluated in the context of ``source`` if given."""

    __slots__ = ("name", "source", "fields", "required", "when")

    def __init__(self, name: str, source: _Expression | None, fields: list[tuple[str, Any]], required: bool,
                 when: _Expression | None):
        self.name, self.source, self.fields, self.required, self.when = name, source, fields, required, when

    def evaluate(self, context: Any, run: _Run, prefix: str) -> Any:
        path = _join(prefix, self.name)
        try:
            if self.when is not None and not _truthy(self.when.search(context)):
                return _OMIT
            if self.source is not None:
                context = self.source.search(context)
        except ConversionError as error:
            run.problem(path, str(error), "")
            return _OMIT
        if self.source is not None and _is_empty(context):
            if self.required:
                run.problem(path, "a value (the field is required)", f"nothing at {self.source.text}")
            return _OMIT
        return self.build(context, run, path)

    def build(self, context: Any, run: _Run, path: str) -> Any:
        result = {}
        problems_before = len(run.problems)
        for name, node in self.fields:
            value = node.evaluate(context, run, path)
            if value is not _OMIT:
                result[name] = value
        if result:
            return result
        if self.required and len(run.problems) == problems_before:
            run.problem(path, "a value (the field is required)", "no field of it had a value")
        return _OMIT


class _Each:
    """A list: one output item per item of ``source`` (kept when ``when`` is true for it)."""

    __slots__ = ("name", "source", "item", "required", "when")

    def __init__(self, name: str, source: _Expression, item: _Object | _Value, required: bool,
                 when: _Expression | None):
        self.name, self.source, self.item, self.required, self.when = name, source, item, required, when

    def evaluate(self, context: Any, run: _Run, prefix: str) -> Any:
        path = _join(prefix, self.name)
        try:
            items = self.source.search(context)
        except ConversionError as error:
            run.problem(path, str(error), "")
            return _OMIT
        if items is None:
            items = []
        elif not isinstance(items, list):
            items = [items]  # an element that occurred once (XML) is a list of one
        result = []
        is_object = isinstance(self.item, _Object)
        for index, item in enumerate(items):
            here = f"{path}[{index}]"
            try:
                if self.when is not None and not _truthy(self.when.search(item)):
                    continue
            except ConversionError as error:
                run.problem(here, str(error), "")
                continue
            value = self.item.build(item, run, here) if is_object else self.item.evaluate(item, run, here)
            if value is not _OMIT:
                result.append(value)
        if result:
            return result
        if self.required and not items:
            run.problem(path, "at least one item (the field is required)", f"nothing at {self.source.text}")
        return _OMIT


# === loading: YAML with line numbers, then compile and check ==============================

class _YamlMap(dict):
    """A YAML mapping that remembers where it and each key are, and the keys' literal text."""

    line: int = 0
    key_lines: dict[Any, int]
    key_text: dict[Any, str]
    plain_text: dict[Any, str]  # the text of unquoted scalar values (`no` that YAML made False)


class _Loader(yaml.SafeLoader):
    """Safe YAML; mappings remember lines; numbers with a fraction are Decimal, never float."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[_YamlMap]:
    data = _YamlMap()
    data.line = node.start_mark.line + 1
    data.key_lines, data.key_text, data.plain_text = {}, {}, {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1
        if isinstance(key_node, yaml.ScalarNode):
            data.key_text[key] = key_node.value
        if isinstance(value_node, yaml.ScalarNode) and not value_node.style:
            data.plain_text[key] = value_node.value


def _construct_decimal(loader: _Loader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node).replace("_", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return loader.construct_yaml_float(node)
    return number if number.is_finite() else loader.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _plain(value: Any) -> Any:
    """A YAML value without the line bookkeeping (for constants that end up in documents)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class _Table:
    values: dict[str, Any]
    default: Any = _UNSET
    reverse: dict[str, Any] | None = None  # from an explicit `reverse:`, or None if not invertible


class _Compiler:
    """Builds the nodes of a mapping file and collects every problem with its line."""

    def __init__(self, path: str, spec: _YamlMap):
        self.path = path
        self.spec = spec
        self.problems: list[Problem] = []
        self.tables: dict[str, _Table] = {}
        self.unit_factors: dict[str, dict[str, Decimal]] = {}
        self.zone = ZoneInfo(DEFAULT_TIMEZONE)

    def problem(self, line: int, what: str) -> None:
        self.problems.append(Problem(self.path, line, what))

    def line_of(self, where: Any, key: Any = None) -> int:
        if isinstance(where, _YamlMap):
            return where.key_lines.get(key, where.line) if key is not None else where.line
        return 0

    def expression(self, text: Any, where: Any, key: str, label: str) -> _Expression | None:
        if not isinstance(text, str) or not text.strip():
            self.problem(self.line_of(where, key), f"{label}: a JMESPath expression (text) is needed, "
                                                   f"not {_show(text)}")
            return None
        try:
            return _Expression(text)
        except jmespath.exceptions.JMESPathError as error:
            detail = " ".join(str(error).split())
            self.problem(self.line_of(where, key), f"{label}: bad JMESPath expression {text!r}: {detail}")
            return None

    # --- the top level ---------------------------------------------------------------------
    def compile(self) -> dict[str, Any]:
        spec = self.spec
        for key in spec:
            if key not in TOP_LEVEL_KEYS:
                self.problem(self.line_of(spec, key), unknown("top-level key", str(key), TOP_LEVEL_KEYS))
        direction = spec.get("direction")
        if direction not in ("in", "out"):
            self.problem(self.line_of(spec, "direction" if "direction" in spec else None),
                         f'direction must be "in" (source format -> canonical) or "out" (canonical -> '
                         f'target format), not {_show(direction)}')
        canonical_type = spec.get("canonical_type")
        if canonical_type is not None and canonical_type not in CANONICAL_TYPES:
            self.problem(self.line_of(spec, "canonical_type"),
                         unknown("canonical type", str(canonical_type), CANONICAL_TYPES))
        elif canonical_type is None and direction == "in":
            self.problem(spec.line, "canonical_type is missing: the canonical type this mapping produces")
        zone_name = spec.get("timezone", DEFAULT_TIMEZONE)
        self.zone = self.timezone(zone_name, spec, "timezone") or self.zone
        self.compile_tables(spec.get("tables") or {})
        self.compile_unit_factors(spec.get("unit_factors") or {})
        input_options = self.format_options(spec, "input", required=direction == "in",
                                            mapping_keys=INPUT_KEYS)
        output_options = self.format_options(spec, "output", required=direction == "out", mapping_keys=())
        split = group_by = group_starts_with = None
        if input_options:
            where = spec["input"]
            if "split" in input_options:
                split = self.expression(input_options.pop("split"), where, "split", "input.split")
            group_by = input_options.pop("group_by", None)
            group_starts_with = input_options.pop("group_starts_with", None)
            if group_by is not None and group_starts_with is not None:
                self.problem(self.line_of(where, "group_by"), "use group_by or group_starts_with, not both")
        fields = spec.get("fields")
        root = _Object("", None, [], False, None)
        if not isinstance(fields, dict) or not fields:
            self.problem(self.line_of(spec, "fields" if "fields" in spec else None),
                         "fields: a mapping of output field names to their sources is needed")
        else:
            root.fields = self.compile_fields(fields, "")
        return {
            "direction": direction, "canonical_type": canonical_type, "root": root,
            "input": input_options or {"format": "json"}, "output": output_options or {"format": "json"},
            "split": split, "group_by": group_by, "group_starts_with": group_starts_with,
        }

    def timezone(self, name: Any, where: Any, key: str) -> ZoneInfo | None:
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(self.line_of(where, key), f'unknown time zone {_show(name)} (an IANA name such as '
                                                   f'"Asia/Shanghai" or "Europe/Berlin")')
            return None

    def format_options(self, spec: _YamlMap, key: str, *, required: bool,
                       mapping_keys: tuple[str, ...]) -> dict[str, Any] | None:
        options = spec.get(key)
        known_formats = ", ".join(codecs.formats())
        if options is None:
            if required:
                self.problem(spec.line, f"{key}: {{format: ...}} is missing (one of {known_formats})")
            return None
        if not isinstance(options, dict) or "format" not in options:
            self.problem(self.line_of(spec, key), f"{key}: needs format (one of {known_formats})")
            return None
        name = options["format"]
        try:
            codec = codecs.get_codec(str(name))
        except KeyError as error:
            self.problem(self.line_of(options, "format"), f"{key}.format: {error.args[0]}")
            return None
        known = ("format", *mapping_keys, *codec.OPTIONS)
        for option in options:
            if option not in known:
                self.problem(self.line_of(options, option),
                             f"{key}: {unknown(f'option of format {name}', str(option), known)}")
        if name == "fixedwidth":
            for sentence in codec.layout_problems(options):
                self.problem(self.line_of(options), f"{key}: fixed-width layout: {sentence}")
        return _plain(options)

    def compile_tables(self, tables: Any) -> None:
        if not isinstance(tables, dict):
            self.problem(self.line_of(self.spec, "tables"), "tables: a mapping of table names to code tables")
            return
        for name, table in tables.items():
            line = self.line_of(tables, name)
            if not isinstance(table, dict):
                self.problem(line, f"table {name}: a mapping of codes to values is needed")
                continue
            long_form = isinstance(table.get("values"), dict)
            values_node = table["values"] if long_form else table
            values = {values_node.key_text.get(code, str(code)): _plain(value)
                      for code, value in values_node.items()}
            default = table.get("default", _UNSET) if long_form else _UNSET
            reverse = None
            if long_form:
                for key in table:
                    if key not in (*TABLE_KEYS, "description"):
                        self.problem(self.line_of(table, key),
                                     f"table {name}: {unknown('key', str(key), TABLE_KEYS)}")
                if isinstance(table.get("reverse"), dict):
                    reverse_node = table["reverse"]
                    reverse = {reverse_node.key_text.get(code, str(code)): _plain(value)
                               for code, value in reverse_node.items()}
            if reverse is None:
                inverted: dict[str, Any] = {}
                for code, value in values.items():
                    if value is not None:
                        target = to_text(value)
                        inverted[target] = _UNSET if target in inverted else code
                if _UNSET not in inverted.values():
                    reverse = inverted
            self.tables[str(name)] = _Table(values, _plain(default), reverse)

    def compile_unit_factors(self, factor_tables: Any) -> None:
        if not isinstance(factor_tables, dict):
            self.problem(self.line_of(self.spec, "unit_factors"),
                         "unit_factors: a mapping of names to factor tables")
            return
        for name, table in factor_tables.items():
            factors = {}
            for unit, factor in (table.items() if isinstance(table, dict) else []):
                try:
                    factors[table.key_text.get(unit, str(unit))] = to_decimal(factor)
                except ConversionError:
                    self.problem(self.line_of(table, unit), f"unit_factors.{name}.{unit}: a number is needed")
            if not isinstance(table, dict) or not factors:
                self.problem(self.line_of(factor_tables, name),
                             f"unit_factors.{name}: a mapping of units to factors is needed "
                             f"({{CT: 12, EA: 1}})")
            self.unit_factors[str(name)] = factors

    # --- fields ----------------------------------------------------------------------------
    def compile_fields(self, fields: _YamlMap, prefix: str) -> list[tuple[str, Any]]:
        compiled = []
        for name, spec in fields.items():
            node = self.compile_field(str(name), spec, fields, _join(prefix, str(name)))
            if node is not None:
                compiled.append((str(name), node))
        return compiled

    def compile_field(self, name: str, spec: Any, parent: _YamlMap, path: str) -> Any:
        if isinstance(spec, str):
            source = self.expression(spec, parent, name, path)
            return _Value(name, source, None, _UNSET, True, None, []) if source else None
        if not isinstance(spec, dict):
            text = parent.plain_text.get(name) if isinstance(parent, _YamlMap) else None
            quoted = f'; to read the field {text} write it quoted: "{text}"' if text and spec is not None \
                else ""
            self.problem(self.line_of(parent, name),
                         f"{path}: a JMESPath expression or {{from: ..., ...}} is needed (YAML read "
                         f"{_show(_plain(spec))}){quoted}; for a constant write {{value: ...}}")
            return None
        for key in spec:
            if key not in FIELD_KEYS:
                self.problem(self.line_of(spec, key), f"{path}: {unknown('option', str(key), FIELD_KEYS)}")
        kinds = [key for key in ("value", "fields", "each") if key in spec]
        if len(kinds) > 1 and kinds != ["fields", "each"] or (not kinds and "from" not in spec):
            self.problem(spec.line, f"{path}: give exactly one of from, value, fields or each "
                                    f"(each may have fields)")
            return None
        required = spec.get("required", "default" not in spec)
        if not isinstance(required, bool):
            self.problem(self.line_of(spec, "required"), f"{path}: required must be true or false")
        when = self.expression(spec["when"], spec, "when", f"{path}.when") if "when" in spec else None
        source = self.expression(spec["from"], spec, "from", path) if "from" in spec else None
        if "each" in spec:
            return self.compile_each(name, spec, path, bool(required), when)
        if "fields" in spec:
            if not isinstance(spec["fields"], dict) or not spec["fields"]:
                self.problem(self.line_of(spec, "fields"), f"{path}.fields: a mapping of fields is needed")
                return None
            return _Object(name, source, self.compile_fields(spec["fields"], path), bool(required), when)
        constant = _plain(spec["value"]) if "value" in spec else None
        default = _plain(spec["default"]) if "default" in spec else _UNSET
        return _Value(name, source, constant, default, bool(required), when, self.steps(spec, path))

    def compile_each(self, name: str, spec: _YamlMap, path: str, required: bool,
                     when: _Expression | None) -> _Each | None:
        source = self.expression(spec["each"], spec, "each", f"{path}.each")
        item_path = f"{path}[]"
        if "fields" in spec and "item" not in spec and isinstance(spec["fields"], dict) and spec["fields"]:
            item: Any = _Object("", None, self.compile_fields(spec["fields"], item_path), False, None)
        elif "item" in spec and "fields" not in spec:
            item = self.compile_field("", spec["item"], spec, item_path)
        else:
            self.problem(spec.line, f"{path}: each needs fields: {{...}} (an object per item) or item: ... "
                                    f"(one value per item)")
            return None
        if source is None or item is None:
            return None
        return _Each(name, source, item, required, when)

    def steps(self, spec: _YamlMap, path: str) -> list[Callable[[Any, Any], Any]]:
        """The conversions of a value field, in their fixed order (see MAPPING_FORMAT)."""
        steps: list[Callable[[Any, Any], Any]] = []
        if spec.get("strip_leading_zeros"):
            steps.append(lambda value, context: strip_leading_zeros(to_text(value)))
        for key in ("table", "reverse_table"):
            if key in spec:
                step = self.table_step(spec, key, path)
                if step:
                    steps.append(step)
        kind = spec.get("type")
        if kind is not None:
            step = self.type_step(spec, str(kind), path)
            if step:
                steps.append(step)
        if "convert_unit" in spec:
            step = self.unit_step(spec, path)
            if step:
                steps.append(step)
        if "scale" in spec:
            scale = spec["scale"]
            if not isinstance(scale, int) or isinstance(scale, bool) or scale < 0:
                self.problem(self.line_of(spec, "scale"), f"{path}: scale must be a whole number >= 0")
            else:
                steps.append(_scale_step(scale, as_text=kind == "string"))
        if "zero_pad" in spec:
            width = spec["zero_pad"]
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                self.problem(self.line_of(spec, "zero_pad"), f"{path}: zero_pad must be a width >= 1")
            else:
                steps.append(lambda value, context: pad_with_zeros(to_text(value), width))
        return steps

    def table_step(self, spec: _YamlMap, key: str, path: str) -> Callable[[Any, Any], Any] | None:
        name = spec[key]
        table = self.tables.get(str(name))
        if table is None:
            self.problem(self.line_of(spec, key), f"{path}: {unknown('table', str(name), self.tables)}")
            return None
        if key == "reverse_table":
            if table.reverse is None:
                self.problem(self.line_of(spec, key), f"{path}: table {name} maps several codes to one "
                                                      f"value, so it cannot be reversed; give it a reverse: "
                                                      f"section")
                return None
            values, default = table.reverse, _UNSET
        else:
            values, default = table.values, table.default
        known = ", ".join(list(values)[:12]) + (", ..." if len(values) > 12 else "")
        label = f"{'reverse of ' if key == 'reverse_table' else ''}table {name}"

        def look_up(value: Any, context: Any) -> Any:
            code = to_text(value)
            if code in values:
                return values[code]
            if default is not _UNSET:
                return default
            raise ConversionError(f"a code of {label}{did_you_mean(code, values)} (known: {known})")

        return look_up

    def type_step(self, spec: _YamlMap, kind: str, path: str) -> Callable[[Any, Any], Any] | None:
        formats = spec.get("format", ())
        formats = (formats,) if isinstance(formats, str) else tuple(formats)
        if kind == "string":
            return lambda value, context: to_text(value)
        if kind == "decimal":
            separator = spec.get("decimal_separator", "auto")
            if separator not in ("auto", ".", ","):
                self.problem(self.line_of(spec, "decimal_separator"), f'{path}: decimal_separator is "auto", '
                                                                      f'"." or ","')
            return lambda value, context: to_decimal(value, separator)
        if kind == "integer":
            return lambda value, context: to_integer(value)
        if kind == "boolean":
            return lambda value, context: to_boolean(value)
        zone = self.zone
        if "timezone" in spec:
            zone = self.timezone(spec["timezone"], spec, "timezone") or zone
        if kind == "date":
            return lambda value, context: to_date(value, formats, zone)
        if kind == "datetime":
            return lambda value, context: to_datetime(value, zone, formats)
        self.problem(self.line_of(spec, "type"), f"{path}: {unknown('type', kind, TYPES)}")
        return None

    def unit_step(self, spec: _YamlMap, path: str) -> Callable[[Any, Any], Any] | None:
        options = spec["convert_unit"]
        line = self.line_of(spec, "convert_unit")
        if not isinstance(options, dict) or "factors" not in options or "unit" not in options:
            self.problem(line, f"{path}: convert_unit needs factors (a unit_factors name) and unit (an "
                               f"expression giving the source unit), optionally divide: true")
            return None
        name = str(options["factors"])
        factors = self.unit_factors.get(name)
        if factors is None:
            self.problem(self.line_of(options, "factors"),
                         f"{path}: {unknown('unit_factors table', name, self.unit_factors)}")
            return None
        unit_expression = self.expression(options["unit"], options, "unit", f"{path}.convert_unit.unit")
        divide = bool(options.get("divide", False))
        if unit_expression is None:
            return None

        def convert(value: Any, context: Any) -> Any:
            unit = unit_expression.search(context)
            factor = factors.get(to_text(unit) if unit is not None else "")
            if factor is None:
                raise ConversionError(f"a unit of unit_factors {name} (known: {', '.join(factors)}), "
                                      f"but the unit is {_show(unit)}")
            number = to_decimal(value)
            return normalized(number / factor if divide else number * factor)

        return convert


def _scale_step(scale: int, *, as_text: bool) -> Callable[[Any, Any], Any]:
    exponent = Decimal(1).scaleb(-scale)

    def rounded(value: Any, context: Any) -> Any:
        number = to_decimal(value).quantize(exponent, rounding=ROUND_HALF_UP)
        return format(number, "f") if as_text else number

    return rounded


# === the Mapping ===========================================================================

class Mapping:
    """A loaded, checked, compiled mapping file. Build it with `load_mapping`."""

    def __init__(self, path: str, compiled: dict[str, Any]):
        self.path = path
        self.direction: str = compiled["direction"]
        self.canonical_type: str | None = compiled["canonical_type"]
        self._root: _Object = compiled["root"]
        self._input = dict(compiled["input"])
        self._input_format = self._input.pop("format")
        self._output = dict(compiled["output"])
        self._output_format = self._output.pop("format")
        self._split: _Expression | None = compiled["split"]
        self._group_by: str | None = compiled["group_by"]
        self._group_starts_with: str | None = compiled["group_starts_with"]

    def __repr__(self) -> str:
        return f"<Mapping {self.path} {self.direction} {self.canonical_type}>"

    @property
    def input_format(self) -> str:
        return self._input_format

    @property
    def output_format(self) -> str:
        return self._output_format

    def decode(self, raw: bytes | BinaryIO) -> Iterator[Any]:
        """The input documents in ``raw`` (lazily): split, or grouped from records, as declared."""
        items = codecs.decode(self._input_format, raw, **self._input)
        if self._group_by is not None:
            items = _group_by_key(items, self._group_by)
        elif self._group_starts_with is not None:
            items = _group_by_header(items, self._group_starts_with)
        if self._split is None:
            yield from items
            return
        for document in items:
            token = _ROOT.set(document)
            try:
                parts = self._split.search(document)
            except ConversionError as error:
                raise DecodeError(f"input.split: {error}") from None
            finally:
                _ROOT.reset(token)
            if _is_empty(parts):
                raise DecodeError(f"the input holds no document at {self._split.text} (input.split)")
            yield from parts if isinstance(parts, list) else [parts]

    def apply(self, document: Any) -> dict:
        """One input document -> one output document; MappingError listing every field problem."""
        run = _Run()
        token = _ROOT.set(document)
        try:
            result = self._root.build(document, run, "")
        finally:
            _ROOT.reset(token)
        if run.problems:
            count = len(run.problems)
            raise MappingError(f"mapping {self.path}: {count} field{'s' if count > 1 else ''} could not be "
                               f"mapped", run.problems)
        return {} if result is _OMIT else result

    def run(self, raw: bytes | BinaryIO) -> Iterator[dict]:
        """decode + apply: every output document of one input (file, request body)."""
        for document in self.decode(raw):
            yield self.apply(document)

    def encode(self, document: dict) -> bytes:
        """The output document as bytes: the target format ("out"), canonical JSON ("in")."""
        try:
            return codecs.encode(self._output_format, document, **self._output)
        except (ValueError, TypeError, LookupError) as error:
            raise MappingError(f"mapping {self.path}: the result cannot be written as {self._output_format}: "
                               f"{error}") from None


def _group_by_key(records: Iterable[dict], key: str) -> Iterator[dict]:
    """One document per run of records with the same ``key``; a key seen again later is an error."""
    seen: set[str] = set()
    group: dict | None = None
    for record in records:
        if key not in record:
            columns = [name for name in record if name not in (LINE_KEY, RECORD_TYPE_KEY)]
            raise DecodeError(f"line {record.get(LINE_KEY)}: no field {key!r} to group by"
                              f"{did_you_mean(key, columns)}; fields: {', '.join(columns)}")
        value = record[key]
        if _is_empty(value):
            raise DecodeError(f"line {record.get(LINE_KEY)}: {key} is empty, so the record belongs to no "
                              f"document")
        if group is not None and value == group["key"]:
            group["records"].append(record)
            continue
        if group is not None:
            yield group
        if value in seen:
            raise DecodeError(f"line {record.get(LINE_KEY)}: {key} {value} appears again after other "
                              f"documents; keep each document's records together")
        seen.add(value)
        group = {"key": value, "header": record, "records": [record], LINE_KEY: record.get(LINE_KEY)}
    if group is not None:
        yield group


def _group_by_header(records: Iterable[dict], header_type: str) -> Iterator[dict]:
    """One document per header record (of type ``header_type``) and the records after it."""
    group: dict | None = None
    for record in records:
        if record.get(RECORD_TYPE_KEY) == header_type:
            if group is not None:
                yield group
            group = {"header": record, "records": [], LINE_KEY: record.get(LINE_KEY)}
        elif group is None:
            raise DecodeError(f"line {record.get(LINE_KEY)}: a {record.get(RECORD_TYPE_KEY)} record before "
                              f"the first {header_type} record")
        else:
            group["records"].append(record)
    if group is not None:
        yield group


# === load, check, cache ====================================================================

_CACHE: dict[str, tuple[tuple[int, int], Mapping]] = {}
_CACHE_LOCK = threading.Lock()


def _compile_file(path: str | Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(shown, 0, "mapping file not found")]
    except (OSError, UnicodeDecodeError) as error:
        return None, [Problem(shown, 0, f"cannot read the mapping file: {error}")]
    try:
        spec = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return None, [Problem(shown, mark.line + 1 if mark else 0, f"not valid YAML: {error}")]
    if not isinstance(spec, _YamlMap):
        return None, [Problem(shown, 1, "a mapping file is a YAML mapping (direction, input, fields ...)")]
    compiler = _Compiler(shown, spec)
    compiled = compiler.compile()
    return compiled, compiler.problems


def check_mapping(path: str | Path) -> list[Problem]:
    """Every problem of a mapping file (empty when it is fine), each with its YAML line."""
    return _compile_file(path)[1]


def load_mapping(path: str | Path) -> Mapping:
    """The compiled mapping, cached by path and modification time; ConfigError listing every problem."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    key = str(resolved)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    compiled, problems = _compile_file(path)
    if problems or compiled is None:
        raise ConfigError(problems)
    mapping = Mapping(str(path), compiled)
    if stamp is not None:
        with _CACHE_LOCK:
            _CACHE[key] = (stamp, mapping)
    return mapping
