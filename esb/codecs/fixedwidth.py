"""Fixed-width records, read lazily line by line, with the layout declared in the mapping.

Options (under the mapping's ``input:`` or ``output:``)::

    format: fixedwidth
    encoding: gbk               # default utf-8
    units: bytes                # positions count bytes (COBOL/ERP exports of GBK text) or
                                # characters (default)
    record_type: {start: 1, length: 1}   # where the record type is; omit for one layout
    records:                    # one layout per record type (with record_type)
      H: [{name: receipt_no, start: 2, length: 10}, ...]
      L: [{name: qty, start: 22, end: 30, type: decimal, decimals: 3}, ...]
    fields: [...]               # the one layout (without record_type)

A field has ``name``, ``start`` (1-based), ``length`` or ``end`` (inclusive), and optionally
``strip`` (true: trim spaces on both sides, default; false: keep), ``type`` (``string``
default, ``integer``, ``decimal``: a sign may lead or trail, ``decimals: n`` implies a decimal
point n digits from the right), ``align``/``pad`` for encoding (numbers: right and ``0``,
text: left and space).

Each record is a dict of its fields plus ``LINE_KEY`` (the line) and ``RECORD_TYPE_KEY``.
A line shorter than its layout (a truncated last line) is an error naming the line, unless
``allow_short_lines: true`` (then it is padded with spaces). Blank lines are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, BinaryIO

from esb.codecs import LINE_KEY, RECORD_TYPE_KEY, as_stream, encoding_hint
from esb.codecs.lines import LineReader
from esb.errors import DecodeError

MEDIA_TYPES = ("text/plain",)
"""Content types of this format; the first is the one sent (see `esb.codecs.content_type`)."""

OPTIONS = {
    "encoding": "text encoding (default utf-8)",
    "units": "bytes or characters: what start/length count (default characters)",
    "record_type": "{start, length}: where the record type is (omit for one layout)",
    "records": "record type -> list of fields (with record_type)",
    "fields": "list of fields (without record_type)",
    "allow_short_lines": "true: pad short lines with spaces instead of refusing them (default false)",
    "line_terminator": "encode: end of each written line (default \\n)",
    "records_key": "encode: the key of the document that holds the list of records (default: the "
                   "document itself when it is a list, else one record)",
}

FIELD_OPTIONS = ("name", "start", "length", "end", "strip", "type", "decimals", "align", "pad")
FIELD_TYPES = ("string", "integer", "decimal")
_NUMBER = re.compile(r"^\s*([+-]?)\s*(\d*)(?:[.,](\d*))?\s*([+-]?)\s*$")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    start: int  # 0-based offset
    length: int
    strip: bool = True
    type: str = "string"
    decimals: int = 0
    align: str = ""
    pad: str = ""

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True, slots=True)
class Layout:
    by_type: dict[str | None, tuple[Field, ...]]
    type_start: int = 0
    type_length: int = 0
    bytes_mode: bool = False

    def width(self, record_type: str | None) -> int:
        return max(field.end for field in self.by_type[record_type])


def layout_problems(options: dict[str, Any]) -> list[str]:
    """Every problem of a layout, as sentences (for the mapping checker)."""
    try:
        build_layout(options)
    except ValueError as error:
        return [str(error)]
    return []


def build_layout(options: dict[str, Any]) -> Layout:
    """The layout from the options; ValueError naming the first problem."""
    units = options.get("units", "characters")
    if units not in ("bytes", "characters"):
        raise ValueError(f'units must be "bytes" or "characters", not {units!r}')
    discriminator = options.get("record_type")
    if discriminator is not None:
        start, length = _position(discriminator, "record_type")
        records = options.get("records")
        if not isinstance(records, dict) or not records:
            raise ValueError("record_type needs records: {TYPE: [fields...]}")
        by_type = {str(name): _fields(fields, f"records.{name}") for name, fields in records.items()}
        return Layout(by_type, start, length, units == "bytes")
    if "fields" not in options:
        raise ValueError("a fixed-width layout needs fields: [...] (or record_type and records)")
    return Layout({None: _fields(options["fields"], "fields")}, bytes_mode=units == "bytes")


def _position(spec: Any, where: str) -> tuple[int, int]:
    if not isinstance(spec, dict) or "start" not in spec or ("length" not in spec) == ("end" not in spec):
        raise ValueError(f"{where}: needs start and either length or end")
    start = spec["start"]
    length = spec["length"] if "length" in spec else spec["end"] - start + 1
    if not isinstance(start, int) or start < 1 or not isinstance(length, int) or length < 1:
        raise ValueError(f"{where}: start must be >= 1 and the length >= 1 (got start {start!r}, "
                         f"length {length!r})")
    return start - 1, length


def _fields(specs: Any, where: str) -> tuple[Field, ...]:
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"{where}: must be a non-empty list of fields")
    fields = []
    for index, spec in enumerate(specs):
        here = f"{where}[{index}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError(f"{here}: a field needs a name")
        unknown = sorted(set(spec) - set(FIELD_OPTIONS))
        if unknown:
            raise ValueError(f"{here} ({spec['name']}): unknown option {unknown[0]!r}; known: "
                             f"{', '.join(FIELD_OPTIONS)}")
        kind = spec.get("type", "string")
        if kind not in FIELD_TYPES:
            raise ValueError(f"{here} ({spec['name']}): type must be one of {', '.join(FIELD_TYPES)}")
        start, length = _position(spec, f"{here} ({spec['name']})")
        numeric = kind != "string"
        fields.append(Field(spec["name"], start, length, bool(spec.get("strip", True)), kind,
                            int(spec.get("decimals", 0)), spec.get("align", "right" if numeric else "left"),
                            str(spec.get("pad", "0" if numeric else " "))))
    return tuple(fields)


# --- decoding ------------------------------------------------------------------------------

def decode(source: bytes | BinaryIO, *, encoding: str = "utf-8", allow_short_lines: bool = False,
           **layout_options: Any) -> Iterator[dict[str, Any]]:
    layout = build_layout(layout_options)
    lines = LineReader(as_stream(source), encoding, what="fixed-width")
    while raw := lines.read_line():
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        if not layout.bytes_mode:
            line = _decode_text(line, lines.encoding, lines.line, encoding)
        yield _record(layout, line, lines.line, lines.encoding, encoding, allow_short_lines)


def _decode_text(raw: bytes, text_encoding: str, number: int, declared: str, what: str = "") -> str:
    try:
        return raw.decode(text_encoding)
    except UnicodeDecodeError as error:
        hint = encoding_hint(raw, declared)
        raise DecodeError(f"fixed-width line {number}{what}: not valid {declared} "
                          f"(byte {raw[error.start]:#04x}){hint}") from None


def _record(layout: Layout, line: Any, number: int, text_encoding: str, declared: str,
            allow_short: bool) -> dict[str, Any]:
    record_type = None
    if layout.type_length:
        raw_type = line[layout.type_start:layout.type_start + layout.type_length]
        record_type = raw_type.decode(text_encoding) if layout.bytes_mode else raw_type
        record_type = record_type.strip()
        if record_type not in layout.by_type:
            known = ", ".join(str(name) for name in layout.by_type)
            raise DecodeError(f"fixed-width line {number}: unknown record type {record_type!r}; "
                              f"known: {known}")
    width = layout.width(record_type)
    if len(line) < width:
        if not allow_short:
            unit = "bytes" if layout.bytes_mode else "characters"
            kind = f"record type {record_type!r}" if record_type is not None else "the layout"
            raise DecodeError(f"fixed-width line {number}: {len(line)} {unit} long, but {kind} needs {width} "
                              f"(a short or truncated line)")
        line = line + (b" " if layout.bytes_mode else " ") * (width - len(line))
    record: dict[str, Any] = {}
    for field in layout.by_type[record_type]:
        value = line[field.start:field.end]
        if layout.bytes_mode:
            value = _decode_text(value, text_encoding, number, declared, f", field {field.name}")
        record[field.name] = _typed(field, value.strip() if field.strip else value, number)
    if record_type is not None:
        record[RECORD_TYPE_KEY] = record_type
    record[LINE_KEY] = number
    return record


def _typed(field: Field, text: str, number: int) -> Any:
    if field.type == "string":
        return text
    if not text.strip():
        return None
    match = _NUMBER.match(text)
    if not match or not (match[2] or match[3]) or (match[1] and match[4]):
        raise DecodeError(f"fixed-width line {number}, field {field.name}: {text!r} is not a number")
    sign = "-" if "-" in (match[1] + match[4]) else ""
    whole, fraction = match[2] or "0", match[3]
    value = Decimal(f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}")
    if field.decimals:
        value = value.scaleb(-field.decimals)
    if field.type == "integer":
        if value != value.to_integral_value():
            raise DecodeError(f"fixed-width line {number}, field {field.name}: {text!r} is not an integer")
        return int(value)
    return value


# --- encoding ------------------------------------------------------------------------------

def encode(document: Any, *, encoding: str = "utf-8", line_terminator: str = "\n",
           records_key: str | None = None, allow_short_lines: bool = False, **layout_options: Any) -> bytes:
    layout = build_layout(layout_options)
    if records_key is not None:
        document = document.get(records_key) or []
    records = [document] if isinstance(document, dict) else list(document)
    lines = []
    for index, record in enumerate(records):
        record_type = record.get(RECORD_TYPE_KEY) if layout.type_length else None
        if record_type not in layout.by_type:
            raise ValueError(f"record {index}: unknown record type {record_type!r} (set {RECORD_TYPE_KEY})")
        lines.append(_encode_record(layout, record_type, record, index, encoding))
    return b"".join(line + line_terminator.encode(encoding) for line in lines)


def _encode_record(layout: Layout, record_type: str | None, record: dict[str, Any], index: int,
                   encoding: str) -> bytes:
    width = layout.width(record_type)
    line = bytearray(b" " * width) if layout.bytes_mode else [" "] * width
    if record_type is not None:
        text = record_type.ljust(layout.type_length)
        _place(line, layout, layout.type_start, layout.type_length, text, encoding, index, "record type")
    for field in layout.by_type[record_type]:
        text = _field_text(field, record.get(field.name))
        if (len(text.encode(encoding)) if layout.bytes_mode else len(text)) > field.length:
            raise ValueError(f"record {index}, field {field.name}: {text!r} does not fit in {field.length}")
        size = field.length - (len(text.encode(encoding)) - len(text) if layout.bytes_mode else 0)
        if field.align != "right":
            text = text.ljust(size, field.pad)
        elif text.startswith("-") and field.pad == "0":
            text = "-" + text[1:].rjust(size - 1, "0")  # -00012, not 000-12
        else:
            text = text.rjust(size, field.pad)
        _place(line, layout, field.start, field.length, text, encoding, index, field.name)
    return bytes(line) if layout.bytes_mode else "".join(line).encode(encoding)


def _place(line: Any, layout: Layout, start: int, length: int, text: str, encoding: str, index: int,
           name: str) -> None:
    if layout.bytes_mode:
        line[start:start + length] = text.encode(encoding)
    else:
        line[start:start + length] = list(text)


def _field_text(field: Field, value: Any) -> str:
    if value is None:
        return ""
    if field.type == "string":
        return format(value, "f") if isinstance(value, Decimal) else str(value)
    number = Decimal(str(value))
    if field.decimals:
        number = number.scaleb(field.decimals)
    if number != number.to_integral_value():
        raise ValueError(f"field {field.name}: {value} has more decimals than the layout's {field.decimals}")
    digits = str(abs(int(number)))
    return f"-{digits}" if number < 0 else digits
