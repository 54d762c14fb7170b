"""The physical lines of a text file read from a binary stream, shared by the line-based codecs
(CSV, fixed-width) and the file adapter that cuts a file into records.

`LineReader` reads one line at a time (never the whole file), counts lines and bytes, and
either decodes each line strictly (undecodable bytes and NUL bytes are a `DecodeError` naming
the line: a text file never holds NUL, a binary or UTF-16 file does) or leniently (for a reader
that only looks at quotes and delimiters and leaves the bytes to the codec). With ``keep`` it
keeps the raw bytes read since the last `take()`, so a caller can send a record exactly as it
was in the file. `byte_order_mark` reads the byte order mark at the start of a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from esb.codecs import UTF8_BOM, decoding_for, encoding_hint
from esb.errors import DecodeError

MAX_LINE_BYTES = 1024 * 1024
"""Longest physical line accepted, in bytes (a file with no newlines is not a text file)."""

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class LinesTooLong(DecodeError):
    """A line (or, with ``keep``, the lines kept since the last take) over the byte limit."""


def byte_order_mark(head: bytes, encoding: str, what: str, codec: str | None = None) -> tuple[bytes, str]:
    """(the byte order mark `head` starts with, the Python codec to read the rest with).

    A UTF-8 mark wins over the declared `encoding` (as in the WHATWG Encoding Standard); the
    declared codec's own mark (GB18030's) is returned to be skipped; a UTF-16 mark is a
    `DecodeError` (the line readers need an ASCII-compatible encoding). `codec`: the declared
    encoding's Python codec, when the caller has it already."""
    if head.startswith(UTF8_BOM):
        return UTF8_BOM, "utf-8"
    if head.startswith(UTF16_BOMS):
        raise DecodeError(f"{what} line 1: the file is UTF-16 (byte order mark); save it as UTF-8")
    codec = codec or decoding_for(encoding)
    if head.decode(codec, errors="ignore").startswith("\ufeff"):
        return "\ufeff".encode(codec), codec
    return b"", codec


def nul_error(what: str, line: int, raw: bytes) -> DecodeError:
    """A NUL byte in a text line: no text encoding the bus reads has one (a binary or UTF-16 file)."""
    return DecodeError(f"{what} line {line}: a NUL byte at byte {raw.index(0) + 1} (a binary or UTF-16 "
                       f"file?)")


class LineReader:
    """Lines of `stream` from byte `offset` (line `line`); iterating gives them as text.

    Parameters: `encoding` (declared, e.g. gbk; a byte order mark at offset 0 is honoured),
    `what` (the format named in errors, e.g. "CSV"), `strict` (True: a line that does not decode
    or holds a NUL byte is a DecodeError; False: undecodable bytes are replaced), `keep` (keep the
    raw bytes until `take()`), `max_bytes` (the longest line, or with `keep` the most bytes kept,
    default `MAX_LINE_BYTES`; more is `LinesTooLong`), `limit_name` (the option that sets
    `max_bytes`, named in that error)."""

    def __init__(self, stream: BinaryIO, encoding: str = "utf-8", *, what: str = "CSV", strict: bool = True,
                 keep: bool = False, max_bytes: int = MAX_LINE_BYTES, limit_name: str = "max_bytes",
                 line: int = 0, offset: int = 0):
        self.stream = stream
        self.declared = encoding
        self.encoding = decoding_for(encoding)
        self.what = what
        self.strict = strict
        self.keep = keep
        self.max_bytes = max_bytes
        self.limit_name = limit_name
        self.line = line
        self.offset = offset
        self._kept: list[bytes] = []
        self._kept_bytes = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.read_line()
        if not raw:
            raise StopIteration
        return self.text(raw)

    def read_line(self) -> bytes:
        """The next physical line with its line end (b"" at the end), a first line's BOM removed."""
        at_start = self.offset == 0
        raw = self.stream.readline(self.max_bytes - self._kept_bytes + 1)
        if not raw:
            return b""
        self.line += 1
        self.offset += len(raw)
        if self.keep:
            self._kept.append(raw)
            self._kept_bytes += len(raw)
            if self._kept_bytes > self.max_bytes:
                raise self._too_long()
        elif len(raw) > self.max_bytes:
            raise self._too_long()
        if at_start:
            bom, self.encoding = byte_order_mark(raw[:4], self.declared, self.what, self.encoding)
            raw = raw[len(bom):]
        if self.strict and b"\x00" in raw:
            raise nul_error(self.what, self.line, raw)
        return raw

    def text(self, raw: bytes) -> str:
        """`raw` decoded (see `strict`)."""
        if not self.strict:
            return raw.decode(self.encoding, errors="replace")
        try:
            text = raw.decode(self.encoding)
        except UnicodeDecodeError as error:
            hint = encoding_hint(raw, self.declared)
            raise DecodeError(f"{self.what} line {self.line}: not valid {self.declared} "
                              f"(byte {raw[error.start]:#04x} at column {error.start + 1}){hint}") from None
        return text

    def take(self) -> bytes:
        """The raw bytes read since the last take (with `keep`)."""
        raw = b"".join(self._kept)
        self._kept.clear()
        self._kept_bytes = 0
        return raw

    def _too_long(self) -> LinesTooLong:
        if not self.keep:
            return LinesTooLong(f"{self.what} line {self.line}: longer than {self.max_bytes} bytes")
        first = self.line - len(self._kept) + 1
        return LinesTooLong(f"the record starting at line {first} is larger than {self.limit_name} "
                            f"({self.max_bytes} bytes); an unterminated quote?")
