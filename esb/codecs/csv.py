"""CSV with a header row, read lazily: a 2 GB file is never held in memory.

Each record is a dict ``{column: text, LINE_KEY: line}`` where ``line`` is the (1-based) line the
record starts on, so later errors can name it. Quoted fields may hold delimiters and newlines;
CRLF and LF both work; blank lines are skipped.

Encodings: any ASCII-compatible one (``utf-8``, ``utf-8-sig``, ``gbk``, ``gb18030``, ``gb2312``,
``cp1252``, ...). A UTF-8 byte order mark wins over the declared encoding (as in the WHATWG
Encoding Standard); ``gbk`` and ``gb2312`` are read with the ``gb18030`` decoder (a superset),
so a GB18030 BOM works too. UTF-16 is refused with a clear error.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, BinaryIO

from esb.codecs import LINE_KEY, as_stream
from esb.codecs.lines import LineReader
from esb.errors import DecodeError

MEDIA_TYPES = ("text/csv",)
"""Content types of this format; the first is the one sent (see `esb.codecs.content_type`)."""

OPTIONS = {
    "encoding": "text encoding of the file (default utf-8; a UTF-8 BOM is always understood)",
    "delimiter": "field separator, one character (default ,)",
    "quotechar": 'quote character, one character (default ")',
    "header": "true: the first record names the columns (default true)",
    "columns": "the column names, when the file has no header row (or to override it)",
    "line_terminator": "encode: end of each written line (default CRLF, as RFC 4180 says)",
    "records": "encode: the key of the document that holds the list of rows (default: the "
               "document itself when it is a list, else one row)",
}


def decode(source: bytes | BinaryIO, *, encoding: str = "utf-8", delimiter: str = ",", quotechar: str = '"',
           header: bool = True, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    if not header and not columns:
        raise ValueError("a CSV file without a header row needs 'columns'")
    lines = LineReader(as_stream(source), encoding, what="CSV")
    reader = csv.reader(lines, delimiter=delimiter, quotechar=quotechar, strict=True)
    names = list(columns) if columns else None
    skip_header = header
    for row, line in _rows(reader, lines):
        if skip_header:
            skip_header = False
            names = names or _header(row, line)
            continue
        if len(row) != len(names):
            raise DecodeError(f"CSV line {line}: {len(row)} fields, but the header has {len(names)} "
                              f"({delimiter!r} is the delimiter)")
        record = dict(zip(names, row, strict=True))
        record[LINE_KEY] = line
        yield record


def _rows(reader: Any, lines: LineReader) -> Iterator[tuple[list[str], int]]:
    """(fields, first line) for each non-blank record."""
    while True:
        start = lines.line + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DecodeError(f"CSV line {start}: {error}") from None
        if row:  # a blank line reads as []
            yield row, start


def _header(row: list[str], line: int) -> list[str]:
    names = [name.strip() for name in row]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DecodeError(f"CSV line {line}: the header names {', '.join(duplicates)} more than once")
    return names


# --- encoding ------------------------------------------------------------------------------

def encode(document: Any, *, encoding: str = "utf-8", delimiter: str = ",", quotechar: str = '"',
           header: bool = True, columns: list[str] | None = None, line_terminator: str = "\r\n",
           records: str | None = None) -> bytes:
    rows = _records_of(document, records)
    names = list(columns) if columns else _column_names(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, delimiter=delimiter, quotechar=quotechar,
                            lineterminator=line_terminator, extrasaction="raise")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({key: _text(value) for key, value in row.items() if key != LINE_KEY})
    return out.getvalue().encode(encoding)


def _records_of(document: Any, key: str | None) -> list[dict[str, Any]]:
    if key is not None:
        document = document.get(key) or []
    if isinstance(document, dict):
        return [document]
    return list(document)


def _column_names(rows: Iterable[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for row in rows:
        names.update((key, None) for key in row if key != LINE_KEY)
    return list(names)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)
