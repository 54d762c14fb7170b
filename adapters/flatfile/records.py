"""Reading a claimed file as a stream of records (per: record) or groups (per: group): one record or
group in memory at a time, each with its raw bytes, its lines and the offset after it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from esb.codecs import UTF8_BOM
from esb.codecs.lines import LineReader, LinesTooLong, byte_order_mark, nul_error
from esb.errors import InputError

FORMAT_NAMES = {"csv": "CSV", "fixedwidth": "fixed-width"}
"""How errors name the formats read line by line."""

MessageTooLarge = LinesTooLong
"""A record or group larger than max_file_bytes (often an unterminated quote)."""


@dataclass(slots=True)
class Record:
    """One record of a file: its raw bytes, where it is, and its group key (None: joins the group)."""

    raw: bytes
    first_line: int
    last_line: int
    end_offset: int  # byte offset just after it
    key: Any = None


@dataclass(slots=True)
class FileReader:
    """Opens a claimed file for per: record / per: group: the prefix every message starts with
    (the byte order mark and the CSV header line), then the records from an offset."""

    options: dict[str, Any]
    prefix: bytes = b""
    data_start: int = 0  # offset of the first record
    data_start_line: int = 0
    encoding: str = "utf-8"
    _group_column: int | None = field(default=None)

    def open(self, stream: BinaryIO) -> None:
        """Read the byte order mark and (CSV) the header."""
        what = FORMAT_NAMES[self.options["format"]]
        bom, self.encoding = byte_order_mark(stream.read(4), self.options["encoding"], what)
        if bom == UTF8_BOM:
            self.prefix = UTF8_BOM  # repeated in every message, so each decodes as the file does
        stream.seek(len(bom))  # another (GB18030's) is dropped: the declared codec reads the rest
        self.data_start = len(bom)
        if self.options["format"] == "csv" and self.options["header"]:
            lines = self._lines(stream, 0, len(bom))
            try:
                for row in self._csv_reader(lines):
                    if row:
                        self._group_column = self._column_of(row)
                        break
            except csv.Error as error:
                raise InputError(f"CSV line {lines.line}: the header cannot be read: {error}") from None
            header = lines.take()
            if b"\x00" in header:
                raise nul_error("CSV", lines.line, header)
            self.prefix += header
            self.data_start, self.data_start_line = lines.offset, lines.line

    def _lines(self, stream: BinaryIO, line: int, offset: int) -> LineReader:
        # undecodable bytes are the mapping's to report (with the rest of its error); here only the
        # quotes and delimiters matter
        lines = LineReader(stream, self.options["encoding"], what=FORMAT_NAMES[self.options["format"]],
                           strict=False, keep=True, max_bytes=self.options["max_file_bytes"],
                           limit_name="max_file_bytes", line=line, offset=offset)
        lines.encoding = self.encoding  # the byte order mark's, read by open()
        return lines

    def _csv_reader(self, lines: LineReader):
        return csv.reader(lines, delimiter=self.options["delimiter"], quotechar='"', strict=True)

    def _column_of(self, header: list[str]) -> int | None:
        column = self.options.get("group_by")
        if not column:
            return None
        names = [name.strip().lstrip("\ufeff") for name in header]
        if column not in names:
            raise InputError(f"the header has no column {column!r} to group by; columns: {', '.join(names)}")
        return names.index(column)

    def records(self, stream: BinaryIO, offset: int, line: int) -> Iterator[Record]:
        stream.seek(offset)
        lines = self._lines(stream, line, offset)
        if self.options["format"] == "csv":
            yield from self._csv_records(lines)
        else:
            yield from self._fixed_records(lines)

    def _csv_records(self, lines: LineReader) -> Iterator[Record]:
        reader = self._csv_reader(lines)
        while True:
            first = lines.line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                # a malformed record still goes to the mapping, whose error names it; its lines
                # travel with the current group
                yield Record(lines.take(), first, lines.line, lines.offset)
                continue
            raw = lines.take()
            if not row:
                continue  # a blank line
            column = self._group_column
            key = row[column] if column is not None and column < len(row) else None
            yield Record(raw, first, lines.line, lines.offset, key)

    def _fixed_records(self, lines: LineReader) -> Iterator[Record]:
        starts = self.options.get("group_starts_with")
        marker = starts.encode(self.encoding) if starts else None
        for _ in lines:
            raw = lines.take()
            if not raw.strip():
                continue
            key = object() if marker is not None and raw.startswith(marker) else None
            yield Record(raw, lines.line, lines.line, lines.offset, key)


def group_records(records: Iterator[Record], per: str, group_by: str | None,
                  limit: int) -> Iterator[list[Record]]:
    """per: record: each record alone; per: group: runs of records that belong together (the same
    group_by value, or from one group_starts_with line to the next)."""
    if per == "record":
        for record in records:
            yield [record]
        return
    group: list[Record] = []
    size = 0
    current: Any = None
    for record in records:
        starts_new = record.key is not None and (group_by is None or record.key != current)
        if starts_new and group:
            yield group
            group, size = [], 0
        if record.key is not None:
            current = record.key
        group.append(record)
        size += len(record.raw)
        if size > limit:
            raise MessageTooLarge(f"the group starting at line {group[0].first_line} is larger than "
                                  f"max_file_bytes ({limit} bytes)")
    if group:
        yield group


def part_body(prefix: bytes, group: list[Record]) -> bytes:
    """The message of a record or group: the prefix, then its records, with an empty line for
    each blank line of the file between them, so that the mapping, told the first record's line
    (metadata ``line``), counts every record's line in the file."""
    parts = [prefix]
    for index, record in enumerate(group):
        if index:
            parts.append(b"\n" * max(record.first_line - group[index - 1].last_line - 1, 0))
        parts.append(record.raw)
    return b"".join(parts)
