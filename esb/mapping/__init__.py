"""Declarative mapping files: a source format to a canonical document ("in"), or back ("out").

The file (YAML)::

    direction: in                 # in: source format -> canonical; out: canonical -> target format
    canonical_type: purchase_order   # produced (in) or consumed (out); a type of the schema registry
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

The package, one concern a module:

- `esb.mapping.functions`: the added functions (`MappingFunctions`) and `InputScope`;
- `esb.mapping.expressions`: JMESPath compiled to closures;
- `esb.mapping.nodes`: the compiled fields (value, object, each) and the conversion steps;
- `esb.mapping.yamlfile`: the YAML reader that keeps lines; `esb.mapping.compiler`: YAML -> nodes,
  every problem with its line;
- `esb.mapping.grouping`: CSV / fixed-width records into documents;
- `esb.mapping.loader`: the `Mapping` object, `load_mapping` (cached) and `check_mapping`.

A new expression function is a method of `MappingFunctions`; what the functions may know about
the input besides the document (its file name, line, received time) is a field of `InputScope`,
which `Mapping.apply` and `Mapping.decode` open around every evaluation: both in
`esb.mapping.functions`.
"""

from esb.mapping.compiler import (
    DEFAULT_TIMEZONE,
    FIELD_KEYS,
    INPUT_KEYS,
    TABLE_KEYS,
    TOP_LEVEL_KEYS,
    CompiledMapping,
    compile_file,
)
from esb.mapping.expressions import Expression
from esb.mapping.functions import InputScope, MappingFunctions, SourceInfo
from esb.mapping.loader import Mapping, check_mapping, load_mapping
from esb.mapping.nodes import TYPES

__all__ = [
    "DEFAULT_TIMEZONE", "FIELD_KEYS", "INPUT_KEYS", "TABLE_KEYS", "TOP_LEVEL_KEYS",
    "TYPES", "CompiledMapping", "Expression", "InputScope", "Mapping", "MappingFunctions", "SourceInfo",
    "check_mapping", "compile_file", "load_mapping",
]
