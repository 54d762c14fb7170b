"""The mapping compiler: a mapping file's YAML -> the nodes of `esb.mapping.nodes`.

It checks as it builds, and never stops at the first problem: every one is collected as a
`Problem(file, line, what)` with its YAML line, and unknown names get "did you mean".
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath.exceptions

from esb import codecs
from esb.conversions import ConversionError, to_decimal, to_text
from esb.errors import ConfigError
from esb.mapping import nodes
from esb.mapping.expressions import Expression
from esb.mapping.grouping import PER_VALUES, Grouping
from esb.mapping.nodes import UNSET, CodeTable, EachNode, ObjectNode, Step, ValueNode, join_path, show
from esb.mapping.yamlfile import YamlMap, line_of, plain, read_mapping_file
from esb.problems import Problem, unknown

DEFAULT_TIMEZONE = "UTC"
"""Zone of local times without an offset when the mapping declares no ``timezone``."""

TOP_LEVEL_KEYS = ("direction", "canonical_type", "description", "source", "timezone", "input", "output",
                  "tables", "unit_factors", "fields")
INPUT_KEYS = ("format", "split", "per", "group_by", "group_starts_with", "group_sorted")  # + the codec's
RECORD_FORMATS = ("csv", "fixedwidth")
FIELD_KEYS = ("from", "value", "default", "required", "when", "type", "format", "timezone",
              "strip_leading_zeros", "zero_pad", "decimal_separator", "table", "reverse_table",
              "convert_unit", "scale", "fields", "each", "item", "description")
TABLE_KEYS = ("values", "default", "reverse")


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    """What a mapping file compiles to; `esb.mapping.Mapping` runs it."""

    direction: str
    canonical_type: str | None
    root: ObjectNode
    input: dict[str, Any]  # format and the codec's options
    output: dict[str, Any]
    split: Expression | None
    grouping: Grouping


def compile_file(path: str | Path, *,
                 timezone: str | None = None) -> tuple[CompiledMapping | None, list[Problem]]:
    """The compiled mapping file and every problem found (compiled is None when it cannot be read).

    ``timezone``: the zone of local times when the file declares none (``settings.timezone``);
    default `DEFAULT_TIMEZONE`."""
    spec, problems = read_mapping_file(path)
    if spec is None:
        return None, problems
    compiler = _Compiler(str(path), spec, timezone or DEFAULT_TIMEZONE)
    compiled = compiler.compile()
    return compiled, compiler.problems


class _Compiler:
    """Builds the nodes of a mapping file and collects every problem with its line."""

    def __init__(self, path: str, spec: YamlMap, default_timezone: str):
        self.path = path
        self.spec = spec
        self.problems: list[Problem] = []
        self.tables: dict[str, CodeTable] = {}
        self.unit_factors: dict[str, dict[str, Decimal]] = {}
        self.default_timezone = default_timezone
        self.zone = ZoneInfo(DEFAULT_TIMEZONE)

    def problem(self, line: int, what: str) -> None:
        self.problems.append(Problem(self.path, line, what))

    def expression(self, text: Any, where: Any, key: str, label: str) -> Expression | None:
        if not isinstance(text, str) or not text.strip():
            self.problem(line_of(where, key), f"{label}: a JMESPath expression (text) is needed, "
                                              f"not {show(text)}")
            return None
        try:
            expression = Expression(text)
        except jmespath.exceptions.JMESPathError as error:
            detail = " ".join(str(error).split())
            self.problem(line_of(where, key), f"{label}: bad JMESPath expression {text!r}: {detail}")
            return None
        problems = expression.problems()
        for sentence in problems:
            self.problem(line_of(where, key), f"{label}: {sentence} (in {text!r})")
        return None if problems else expression

    # --- the top level ---------------------------------------------------------------------
    def compile(self) -> CompiledMapping:
        spec = self.spec
        for key in spec:
            if key not in TOP_LEVEL_KEYS:
                self.problem(line_of(spec, key), unknown("top-level key", str(key), TOP_LEVEL_KEYS))
        direction = spec.get("direction")
        if direction not in ("in", "out"):
            self.problem(line_of(spec, "direction" if "direction" in spec else None),
                         f'direction must be "in" (source format -> canonical) or "out" (canonical -> '
                         f'target format), not {show(direction)}')
        canonical_type = spec.get("canonical_type")
        if canonical_type is not None:
            unknown_type = _canonical_type_problem(canonical_type)
            if unknown_type:
                self.problem(line_of(spec, "canonical_type"), unknown_type)
        elif direction == "in":
            self.problem(spec.line, "canonical_type is missing: the canonical type this mapping produces")
        if "timezone" in spec:
            self.zone = self.timezone(spec["timezone"], spec, "timezone") or self.zone
        else:
            self.zone = self.timezone(self.default_timezone, spec, None) or self.zone
        self.compile_tables(spec.get("tables") or {})
        self.compile_unit_factors(spec.get("unit_factors") or {})
        input_options = self.format_options(spec, "input", required=direction == "in",
                                            mapping_keys=INPUT_KEYS)
        output_options = self.format_options(spec, "output", required=direction == "out", mapping_keys=())
        split, grouping = None, Grouping()
        if input_options:
            where = spec["input"]
            if "split" in input_options:
                split = self.expression(input_options.pop("split"), where, "split", "input.split")
            grouping = self.grouping(input_options, where)
        fields = spec.get("fields")
        root = ObjectNode("", None, [], False, None)
        if not isinstance(fields, dict) or not fields:
            self.problem(line_of(spec, "fields" if "fields" in spec else None),
                         "fields: a mapping of output field names to their sources is needed")
        else:
            root.fields = self.compile_fields(fields, "")
        return CompiledMapping(direction, canonical_type, root, input_options or {"format": "json"},
                               output_options or {"format": "json"}, split, grouping)

    def grouping(self, options: dict[str, Any], where: YamlMap) -> Grouping:
        """``per``, ``group_by``, ``group_starts_with``, ``group_sorted`` (taken out of ``options``)."""
        group_by = options.pop("group_by", None)
        starts_with = options.pop("group_starts_with", None)
        sorted_input = options.pop("group_sorted", True)
        per = options.pop("per", "group" if group_by is not None or starts_with is not None else "record")
        if per not in PER_VALUES:
            self.problem(line_of(where, "per"), f"input.per: {unknown('value', str(per), PER_VALUES)}")
            return Grouping()
        if options.get("format") not in RECORD_FORMATS and "per" in where:
            self.problem(line_of(where, "per"), f"input.per: the records of {' and '.join(RECORD_FORMATS)} "
                                                f"make documents; {options.get('format')} is read whole")
        if group_by is not None and starts_with is not None:
            self.problem(line_of(where, "group_by"), "use group_by or group_starts_with, not both")
        elif per == "group" and group_by is None and starts_with is None:
            self.problem(line_of(where, "per"), "per: group needs group_by (a field whose value groups the "
                                                "records) or group_starts_with (the record type of a header)")
        elif per != "group" and (group_by is not None or starts_with is not None):
            key = "group_by" if group_by is not None else "group_starts_with"
            self.problem(line_of(where, key), f"{key} makes one document per group, per: {per} one per "
                                              f"{per}: use one")
        if not isinstance(sorted_input, bool):
            self.problem(line_of(where, "group_sorted"), "group_sorted must be true or false")
        elif not sorted_input and group_by is None:
            self.problem(line_of(where, "group_sorted"), "group_sorted applies to group_by")
        return Grouping(per, group_by, starts_with, sorted_input is not False)

    def timezone(self, name: Any, where: Any, key: str | None) -> ZoneInfo | None:
        """The zone of ``where[key]``; ``key`` None: the default zone given to the compiler."""
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            given = "" if key is not None else " (the default of mappings without a timezone: " \
                                               "settings.timezone or --timezone)"
            self.problem(line_of(where, key) if key else 0,
                         f'unknown time zone {show(name)}{given} (an IANA name such as "Asia/Shanghai" or '
                         f'"Europe/Berlin")')
            return None

    def format_options(self, spec: YamlMap, key: str, *, required: bool,
                       mapping_keys: tuple[str, ...]) -> dict[str, Any] | None:
        options = spec.get(key)
        known_formats = ", ".join(codecs.formats())
        if options is None:
            if required:
                self.problem(spec.line, f"{key}: {{format: ...}} is missing (one of {known_formats})")
            return None
        if not isinstance(options, dict) or "format" not in options:
            self.problem(line_of(spec, key), f"{key}: needs format (one of {known_formats})")
            return None
        name = options["format"]
        try:
            codec = codecs.get_codec(str(name))
        except LookupError as error:  # KeyError today, esb.errors.NotFound once the codecs raise it
            self.problem(line_of(options, "format"), f"{key}.format: {error.args[0]}")
            return None
        known = ("format", *mapping_keys, *codec.OPTIONS)
        for option in options:
            if option not in known:
                self.problem(line_of(options, option),
                             f"{key}: {unknown(f'option of format {name}', str(option), known)}")
        if name == "fixedwidth":
            for sentence in codec.layout_problems(options):
                self.problem(line_of(options), f"{key}: fixed-width layout: {sentence}")
        for sentence in getattr(codec, "option_problems", lambda options: [])(plain(options)):
            self.problem(line_of(options), f"{key}: {sentence}")
        return plain(options)

    def compile_tables(self, tables: Any) -> None:
        if not isinstance(tables, dict):
            self.problem(line_of(self.spec, "tables"), "tables: a mapping of table names to code tables")
            return
        for name, table in tables.items():
            line = line_of(tables, name)
            if not isinstance(table, dict):
                self.problem(line, f"table {name}: a mapping of codes to values is needed")
                continue
            long_form = isinstance(table.get("values"), dict)
            values_node = table["values"] if long_form else table
            values = {values_node.key_text.get(code, str(code)): plain(value)
                      for code, value in values_node.items()}
            default = table.get("default", UNSET) if long_form else UNSET
            reverse = None
            if long_form:
                for key in table:
                    if key not in (*TABLE_KEYS, "description"):
                        self.problem(line_of(table, key),
                                     f"table {name}: {unknown('key', str(key), TABLE_KEYS)}")
                if isinstance(table.get("reverse"), dict):
                    reverse_node = table["reverse"]
                    reverse = {reverse_node.key_text.get(code, str(code)): plain(value)
                               for code, value in reverse_node.items()}
            if reverse is None:
                reverse = _inverted(values)
            self.tables[str(name)] = CodeTable(values, plain(default), reverse)

    def compile_unit_factors(self, factor_tables: Any) -> None:
        if not isinstance(factor_tables, dict):
            self.problem(line_of(self.spec, "unit_factors"),
                         "unit_factors: a mapping of names to factor tables")
            return
        for name, table in factor_tables.items():
            factors = {}
            for unit, factor in (table.items() if isinstance(table, dict) else []):
                try:
                    factors[table.key_text.get(unit, str(unit))] = to_decimal(factor)
                except ConversionError:
                    self.problem(line_of(table, unit), f"unit_factors.{name}.{unit}: a number is needed")
            if not isinstance(table, dict) or not factors:
                self.problem(line_of(factor_tables, name),
                             f"unit_factors.{name}: a mapping of units to factors is needed "
                             f"({{CT: 12, EA: 1}})")
            self.unit_factors[str(name)] = factors

    # --- fields ----------------------------------------------------------------------------
    def compile_fields(self, fields: YamlMap, prefix: str) -> list[tuple[str, Any]]:
        compiled = []
        for name, spec in fields.items():
            node = self.compile_field(str(name), spec, fields, join_path(prefix, str(name)))
            if node is not None:
                compiled.append((str(name), node))
        return compiled

    def compile_field(self, name: str, spec: Any, parent: YamlMap, path: str) -> Any:
        if isinstance(spec, str):
            source = self.expression(spec, parent, name, path)
            return ValueNode(name, source, None, UNSET, True, None, []) if source else None
        if not isinstance(spec, dict):
            text = parent.plain_text.get(name) if isinstance(parent, YamlMap) else None
            quoted = f'; to read the field {text} write it quoted: "{text}"' if text and spec is not None \
                else ""
            self.problem(line_of(parent, name),
                         f"{path}: a JMESPath expression or {{from: ..., ...}} is needed (YAML read "
                         f"{show(plain(spec))}){quoted}; for a constant write {{value: ...}}")
            return None
        for key in spec:
            if key not in FIELD_KEYS:
                self.problem(line_of(spec, key), f"{path}: {unknown('option', str(key), FIELD_KEYS)}")
        kinds = [key for key in ("value", "fields", "each") if key in spec]
        if len(kinds) > 1 and kinds != ["fields", "each"] or (not kinds and "from" not in spec):
            self.problem(spec.line, f"{path}: give exactly one of from, value, fields or each "
                                    f"(each may have fields)")
            return None
        required = spec.get("required", "default" not in spec)
        if not isinstance(required, bool):
            self.problem(line_of(spec, "required"), f"{path}: required must be true or false")
        when = self.expression(spec["when"], spec, "when", f"{path}.when") if "when" in spec else None
        source = self.expression(spec["from"], spec, "from", path) if "from" in spec else None
        if "each" in spec:
            return self.compile_each(name, spec, path, bool(required), when)
        if "fields" in spec:
            if not isinstance(spec["fields"], dict) or not spec["fields"]:
                self.problem(line_of(spec, "fields"), f"{path}.fields: a mapping of fields is needed")
                return None
            return ObjectNode(name, source, self.compile_fields(spec["fields"], path), bool(required), when)
        constant = plain(spec["value"]) if "value" in spec else None
        default = plain(spec["default"]) if "default" in spec else UNSET
        return ValueNode(name, source, constant, default, bool(required), when, self.steps(spec, path))

    def compile_each(self, name: str, spec: YamlMap, path: str, required: bool,
                     when: Expression | None) -> EachNode | None:
        source = self.expression(spec["each"], spec, "each", f"{path}.each")
        item_path = f"{path}[]"
        if "fields" in spec and "item" not in spec and isinstance(spec["fields"], dict) and spec["fields"]:
            item: Any = ObjectNode("", None, self.compile_fields(spec["fields"], item_path), False, None)
        elif "item" in spec and "fields" not in spec:
            item = self.compile_field("", spec["item"], spec, item_path)
        else:
            self.problem(spec.line, f"{path}: each needs fields: {{...}} (an object per item) or item: ... "
                                    f"(one value per item)")
            return None
        if source is None or item is None:
            return None
        return EachNode(name, source, item, required, when)

    # --- the conversions of a value field --------------------------------------------------
    def steps(self, spec: YamlMap, path: str) -> list[Step]:
        """The conversions of a value field, in their fixed order (see the package docstring)."""
        steps: list[Step | None] = []
        if spec.get("strip_leading_zeros"):
            steps.append(nodes.leading_zeros_stripped())
        for key in ("table", "reverse_table"):
            if key in spec:
                steps.append(self.table_step(spec, key, path))
        kind = spec.get("type")
        if kind is not None:
            steps.append(self.type_step(spec, str(kind), path))
        if "convert_unit" in spec:
            steps.append(self.unit_step(spec, path))
        if "scale" in spec:
            scale = spec["scale"]
            if not isinstance(scale, int) or isinstance(scale, bool) or scale < 0:
                self.problem(line_of(spec, "scale"), f"{path}: scale must be a whole number >= 0")
            else:
                steps.append(nodes.rounding(scale, as_text=kind == "string"))
        if "zero_pad" in spec:
            width = spec["zero_pad"]
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                self.problem(line_of(spec, "zero_pad"), f"{path}: zero_pad must be a width >= 1")
            else:
                steps.append(nodes.zero_padding(width))
        return [step for step in steps if step is not None]

    def table_step(self, spec: YamlMap, key: str, path: str) -> Step | None:
        name = spec[key]
        table = self.tables.get(str(name))
        if table is None:
            self.problem(line_of(spec, key), f"{path}: {unknown('table', str(name), self.tables)}")
            return None
        if key == "table":
            return nodes.table_lookup(f"table {name}", table.values, table.default)
        if table.reverse is None:
            self.problem(line_of(spec, key), f"{path}: table {name} maps several codes to one value, so it "
                                             f"cannot be reversed; give it a reverse: section")
            return None
        return nodes.table_lookup(f"reverse of table {name}", table.reverse, UNSET)

    def type_step(self, spec: YamlMap, kind: str, path: str) -> Step | None:
        formats = spec.get("format", ())
        formats = (formats,) if isinstance(formats, str) else formats
        if not isinstance(formats, list | tuple) or not all(isinstance(form, str) for form in formats):
            self.problem(line_of(spec, "format"), f"{path}: format is a strptime format (\"%d.%m.%Y\") or a "
                                                  f"list of them, not {show(plain(spec['format']))}")
            return None
        separator = spec.get("decimal_separator", "auto")
        if kind == "decimal" and separator not in ("auto", ".", ","):
            self.problem(line_of(spec, "decimal_separator"),
                         f'{path}: decimal_separator is "auto", "." or ","')
        zone = self.zone
        if kind not in ("string", "decimal", "integer", "boolean") and "timezone" in spec:
            zone = self.timezone(spec["timezone"], spec, "timezone") or zone
        if kind not in nodes.TYPES:
            self.problem(line_of(spec, "type"), f"{path}: {unknown('type', kind, nodes.TYPES)}")
            return None
        return nodes.type_conversion(kind, tuple(formats), zone, separator)

    def unit_step(self, spec: YamlMap, path: str) -> Step | None:
        options = spec["convert_unit"]
        if not isinstance(options, dict) or "factors" not in options or "unit" not in options:
            self.problem(line_of(spec, "convert_unit"), f"{path}: convert_unit needs factors (a unit_factors "
                                                        f"name) and unit (an expression giving the source "
                                                        f"unit), optionally divide: true")
            return None
        name = str(options["factors"])
        factors = self.unit_factors.get(name)
        if factors is None:
            self.problem(line_of(options, "factors"),
                         f"{path}: {unknown('unit_factors table', name, self.unit_factors)}")
            return None
        unit = self.expression(options["unit"], options, "unit", f"{path}.convert_unit.unit")
        if unit is None:
            return None
        return nodes.unit_conversion(name, factors, unit, bool(options.get("divide", False)))


def _canonical_type_problem(name: Any) -> str | None:
    """None when the schema registry (``schemas/``) has the type, else the problem's sentence.

    The registry is the one list of canonical types; it is loaded once per process."""
    from esb.schemas import default_registry  # here: `esb map` without a canonical type never loads it

    try:
        known = default_registry().types()
    except ConfigError as error:
        count = len(error.problems)
        return (f'canonical_type "{name}" cannot be checked: the schemas have {count} problem'
                f'{"s" if count != 1 else ""} (esb check lists them), the first: {error.problems[0]}')
    return None if name in known else unknown("canonical type", str(name), known)


def _inverted(values: dict[str, Any]) -> dict[str, Any] | None:
    """The reverse of a code table, or None when two codes map to one value."""
    inverted: dict[str, Any] = {}
    for code, value in values.items():
        if value is not None:
            target = to_text(value)
            inverted[target] = UNSET if target in inverted else code
    return None if UNSET in inverted.values() else inverted
