"""JSON, with exact decimals (via `esb.jsonfmt`): numbers with a fraction become `Decimal`.

Decoding yields one document; with ``lines: true`` the input is JSON Lines (one document per
non-blank line, read lazily from the stream).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from esb import jsonfmt
from esb.codecs import DEFAULT_MAX_DEPTH, UTF8_BOM, as_stream, read_limited
from esb.errors import DecodeError

MEDIA_TYPES = ("application/json", "text/json")
"""Content types of this format; the first is the one sent (see `esb.codecs.content_type`)."""

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

OPTIONS = {
    "lines": "true: JSON Lines, one document per line, read lazily (default false)",
    "max_bytes": f"largest accepted input in bytes when lines is false (default {DEFAULT_MAX_BYTES})",
    "max_depth": f"deepest nesting of arrays and objects accepted (default {DEFAULT_MAX_DEPTH})",
    "pretty": "encode: indent the output for people (default false)",
}


def decode(source: bytes | BinaryIO, *, lines: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
           max_depth: int = DEFAULT_MAX_DEPTH) -> Iterator[Any]:
    if lines:
        yield from _decode_lines(as_stream(source), max_depth)
        return
    data = read_limited(source, max_bytes, "JSON")
    yield _parse(data.removeprefix(UTF8_BOM), line_offset=0, max_depth=max_depth)


def _decode_lines(stream: BinaryIO, max_depth: int) -> Iterator[Any]:
    for number, raw in enumerate(stream, start=1):
        if number == 1:
            raw = raw.removeprefix(UTF8_BOM)
        if raw.strip():
            yield _parse(raw.rstrip(b"\r\n"), line_offset=number - 1, max_depth=max_depth)


def _parse(data: bytes, *, line_offset: int, max_depth: int) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1 + line_offset
        raise DecodeError(f"JSON line {line}: not valid utf-8 (byte {data[error.start]:#04x})") from None
    try:
        return jsonfmt.loads(text, max_depth=max_depth)
    except jsonfmt.TooDeep as error:
        raise DecodeError(f"JSON {error.msg} (max_depth)") from None
    except jsonfmt.JSONError as error:
        line = error.lineno + line_offset
        raise DecodeError(f"malformed JSON at line {line}, column {error.colno}: {error.msg}") from None


def encode(document: Any, *, pretty: bool = False) -> bytes:
    if pretty:
        return jsonfmt.pretty(document).encode("utf-8") + b"\n"
    return jsonfmt.dump_bytes(document)
