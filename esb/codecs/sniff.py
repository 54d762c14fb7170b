"""What format some bytes look like, to say so when they fail to decode as another one:
"this is X12, the mapping reads CSV" instead of a CSV error about field counts.

Only formats with a signature are recognised (X12's ISA/GS/ST, EDIFACT's UNA/UNB/UNH, XML,
JSON); CSV and fixed-width have none, so they are never claimed.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from esb.codecs import UTF8_BOM

HEAD_BYTES = 512
"""How much of the input is looked at."""

_SIGNATURES = (
    ("x12", re.compile(rb"^(ISA.{100,110}?GS|ISA[^A-Za-z0-9 ]|GS[*|^~]|ST[*|^](\d{3}))", re.S)),
    ("edifact", re.compile(rb"^(UNA.{6}|UNB\+UNO[A-Z]|UNH\+)", re.S)),
    ("xml", re.compile(rb"^(<\?xml|<[A-Za-z_][\w.:-]*[\s>/])")),
    ("json", re.compile(rb"^(\{\s*(\"|\})|\[\s*[\[{\"\d\-tfn\]])")),
)

NAMES = {
    "x12": "X12",
    "edifact": "EDIFACT",
    "xml": "XML",
    "json": "JSON",
    "csv": "CSV",
    "fixedwidth": "fixed-width",
}


def sniff(head: bytes) -> str | None:
    """The format name ``head`` (the first bytes of an input) looks like, or None."""
    head = head.removeprefix(UTF8_BOM).lstrip()
    for name, signature in _SIGNATURES:
        if signature.match(head):
            return name
    return None


def mismatch_hint(head: bytes, format_name: str) -> str:
    """'; this is X12, the mapping reads CSV' when ``head`` looks like another format, else ''."""
    found = sniff(head)
    if found is None or found == format_name:
        return ""
    return f"; this is {NAMES[found]}, the mapping reads {NAMES.get(format_name, format_name)}"


class RecordingStream:
    """A binary stream that keeps the first bytes read from it (``head``), to sniff them when
    decoding fails; everything else goes to the stream it wraps."""

    def __init__(self, stream: BinaryIO, size: int = HEAD_BYTES):
        self._stream = stream
        self._size = size
        self.head = b""

    def _keep(self, data: bytes) -> bytes:
        if len(self.head) < self._size and data:
            self.head += bytes(data[: self._size - len(self.head)])
        return data

    def read(self, size: int = -1) -> bytes:
        return self._keep(self._stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._keep(self._stream.readline(size))

    def __iter__(self) -> RecordingStream:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
