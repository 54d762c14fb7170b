"""Decoders and encoders of the formats external systems speak, looked up by format name.

A codec is a module with:

- ``decode(source, **options) -> Iterator[Any]``: ``source`` is bytes or a binary stream; it
  yields documents (JSON, XML) or records (CSV, fixed-width: one dict per record, with the
  source line number under ``LINE_KEY``). Bad input raises `esb.errors.DecodeError`.
- ``encode(document, **options) -> bytes``.
- ``OPTIONS``: every option it accepts, name -> one line of documentation (unit, default).
  Mapping files are checked against it, so a misspelt option is a problem, not a surprise.
- ``MEDIA_TYPES``: the content types of the format, the one it is sent as first. Nothing else
  in the bus lists content types: ``content_type("csv")`` and ``format_of("text/csv; charset=gbk")``
  read them.

Registry: ``get_codec("csv")``, ``decode("csv", source, delimiter=";")``, ``encode(...)``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from importlib import import_module
from types import ModuleType
from typing import Any, BinaryIO

DEFAULT_MAX_DEPTH = 64
"""Deepest nesting a JSON or XML input may have (arrays and objects, or elements), option
`max_depth` of those codecs: a business document is a few levels deep, and a limit keeps a
hostile one from exhausting the stack (a 400 naming the limit, never a RecursionError)."""

LINE_KEY = "__line__"
"""Key of a CSV / fixed-width record that holds the (1-based) line the record starts on."""

RECORD_TYPE_KEY = "__type__"
"""Key of a fixed-width record that holds its record type (the discriminator's value)."""

_MODULES = {
    "json": "esb.codecs.json",
    "xml": "esb.codecs.xml",
    "csv": "esb.codecs.csv",
    "fixedwidth": "esb.codecs.fixedwidth",
}


def formats() -> list[str]:
    """The names of the known formats."""
    return sorted(_MODULES)


def get_codec(name: str) -> ModuleType:
    """The codec module of a format; `esb.errors.NotFound` with a "did you mean" sentence for an
    unknown one."""
    from esb.problems import UnknownName, unknown

    if name not in _MODULES:
        raise UnknownName(unknown("format", name, _MODULES))
    return import_module(_MODULES[name])


def content_type(format_name: str) -> str:
    """The content type a document of this format is sent as (its codec's first media type)."""
    return get_codec(format_name).MEDIA_TYPES[0]


def format_of(content_type: str | None) -> str | None:
    """The format of a content type (parameters and case ignored; a ``+json`` or ``+xml``
    suffix counts as json or xml, RFC 6839), or None when no codec declares it."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if not media_type:
        return None
    for name in _MODULES:
        if media_type in get_codec(name).MEDIA_TYPES:
            return name
    suffix = media_type.rpartition("+")[2] if "+" in media_type else ""
    return suffix if suffix in ("json", "xml") else None


def decode(format_name: str, source: bytes | BinaryIO, **options: Any) -> Iterator[Any]:
    return get_codec(format_name).decode(source, **options)


def encode(format_name: str, document: Any, **options: Any) -> bytes:
    return get_codec(format_name).encode(document, **options)


# --- helpers shared by the codecs ------------------------------------------------------------

def as_stream(source: bytes | bytearray | memoryview | BinaryIO) -> BinaryIO:
    """A binary stream over bytes, or the stream itself."""
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    if isinstance(source, str):
        raise TypeError("decoders take bytes or a binary stream, not str")
    return source


def read_limited(source: bytes | BinaryIO, max_bytes: int, what: str) -> bytes:
    """All of ``source`` as bytes; DecodeError when it is larger than ``max_bytes``."""
    from esb.errors import DecodeError

    in_memory = isinstance(source, bytes | bytearray | memoryview)
    data = bytes(source) if in_memory else source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DecodeError(f"{what} input is larger than the limit of {max_bytes} bytes (max_bytes)")
    return data


UTF8_BOM = b"\xef\xbb\xbf"

# WHATWG Encoding Standard: the labels gbk and gb2312 are decoded by the gb18030 decoder (a
# superset), because files labelled GBK routinely hold GB18030-only characters and its BOM.
_DECODE_AS = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "utf8": "utf-8"}


def decoding_for(declared: str) -> str:
    """The Python codec that decodes text declared as ``declared``; LookupError if unknown."""
    import codecs as std_codecs

    name = std_codecs.lookup(declared).name  # normalises "UTF8", "utf_8", "GBK" ...
    return _DECODE_AS.get(name, _DECODE_AS.get(declared.lower(), name))


def encoding_hint(raw: bytes, declared: str) -> str:
    """'; is the file gbk?' style hint for bytes that did not decode as ``declared``."""
    for candidate in ("utf-8", "gb18030", "shift_jis", "cp1252"):
        if candidate == decoding_for(declared):
            continue
        try:
            raw.decode(candidate)
        except UnicodeDecodeError:
            continue
        shown = "gbk" if candidate == "gb18030" else candidate
        return f"; is the file {shown}?"
    return ""
