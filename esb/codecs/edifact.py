"""UN/EDIFACT: interchanges (UNA? UNB (UNG) UNH ... UNT (UNE) UNZ) -> one document per message.

Service characters come from the UNA when there is one (component, element, decimal mark,
release, repetition, terminator: any characters, a decimal comma included), else the
defaults ``:+.? '``. The release character is taken out (``?+`` is a ``+`` of the data).
Line breaks after terminators are ignored and a UTF-8 BOM is dropped. The text is decoded
by the character set UNB names (UNOA/UNOB ASCII, UNOC ISO 8859-1, UNOD 8859-2, UNOE 8859-5,
UNOF 8859-7, UNOW/UNOY UTF-8) unless ``encoding`` says otherwise; UNOA and UNOB data are
checked for characters those sets do not have (``strict_character_set: false`` accepts them).

Each document (see `esb.codecs.edi` for segments and loops)::

    {"interchange": {"syntax", "syntax_version", "sender", "sender_qualifier", "recipient",
                     "recipient_qualifier", "date", "time", "control_reference",
                     "service_characters": {...}, "problems": [...]},
     "group": {...} or null,                                   # UNG, rarely used
     "message": {"reference", "type", "version", "release", "agency", "association",
                 "problems": [...]},
     "segments": [{"tag": "BGM", "position": 2, "BGM01": ["220"], "BGM02": ["PO123456"]}, ...],
     "BGM": [...], "SG2_loop"...}                               # grouped by the loops

Every element is the list of its components (``QTY01[1]`` is the quantity of ``QTY+21:10``),
whether or not it has several. Numbers keep their text: a mapping's ``type: decimal`` reads a
decimal comma. Counts and references (UNT01/UNT02, UNZ01/UNZ02) are checked as the X12 codec
checks them (``control_numbers: check`` or ``report``; the codes are those of CONTRL, 0085).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from esb.codecs import UTF8_BOM, as_stream
from esb.codecs.edi import EnvelopeParser, TextReader, build_loops, group_segments, syntax_error
from esb.codecs.x12 import option_problems  # the same options are checked the same way

MEDIA_TYPES = ("application/edifact",)
"""Content types of this format; the first is the one sent (see `esb.codecs.content_type`)."""

OPTIONS = {
    "encoding": "text encoding (default: from UNB's syntax identifier, UNOC = ISO 8859-1)",
    "loops": "segment groups: {NAD: [CTA, COM], LIN: {segments: [QTY], loops: {...}}} (default none)",
    "control_numbers": "check (a mismatch is an error, default) or report (listed under problems)",
    "message_types": "the message types the mapping reads, e.g. [ORDERS]; others are an error (default any)",
    "strict_character_set": "false: accept UNOA/UNOB data with characters those sets lack (default true)",
    "syntax": "encode: UNB syntax identifier and version (default UNOC:3)",
    "service_characters": "encode: {component, element, decimal_mark, release, repetition, segment}",
    "una": "encode: write the UNA segment (default true)",
    "newlines": "encode: true writes a line break after each segment (default false)",
    "sender": "encode: {id, qualifier} of UNB02 (default the document's interchange)",
    "recipient": "encode: {id, qualifier} of UNB03",
    "control_reference": "encode: UNB05 (default the document's, else from the clock)",
}

DEFAULT_SERVICE = {
    "component": ":",
    "element": "+",
    "decimal_mark": ".",
    "release": "?",
    "repetition": " ",
    "segment": "'",
}
CHARACTER_SETS = {
    "UNOA": "ascii",
    "UNOB": "ascii",
    "UNOC": "iso8859-1",
    "UNOD": "iso8859-2",
    "UNOE": "iso8859-5",
    "UNOF": "iso8859-7",
    "UNOW": "utf-8",
    "UNOY": "utf-8",
}
_NOT_IN_SET = {
    "UNOA": re.compile(r"[^A-Z0-9 .,\-()/='+:?!\"%&*;<>]"),
    "UNOB": re.compile(r"[^A-Za-z0-9 .,\-()/='+:?!\"%&*;<>@\[\]_{}\\|~#$`^]"),
}
_SYNTAX = re.compile(rb"UNB.(UNO[A-Z])")
WHAT = "EDIFACT"

__all__ = ["MEDIA_TYPES", "OPTIONS", "decode", "encode", "option_problems"]


def decode(
    source: bytes | BinaryIO,
    *,
    encoding: str | None = None,
    loops: Any = None,
    control_numbers: str = "check",
    message_types: list[str] | None = None,
    strict_character_set: bool = True,
    **_encode_options: Any,
) -> Iterator[dict[str, Any]]:
    stream = as_stream(source)
    head = stream.read(1024)
    syntax = _SYNTAX.search(head)
    declared = syntax[1].decode() if syntax else "UNOC"
    if encoding is None:  # UNOA/UNOB are read as ISO 8859-1 so that a stray byte is named where it is
        text_sets = {**CHARACTER_SETS, "UNOA": "iso8859-1", "UNOB": "iso8859-1"}
        encoding = "utf-8" if head.startswith(UTF8_BOM) else text_sets.get(declared, "iso8859-1")
    reader = TextReader(stream, encoding, WHAT, prefix=head)
    parser = _Parser(
        reader,
        build_loops(loops),
        control_numbers == "report",
        set(message_types or ()),
        declared if strict_character_set else "",
    )
    yield from parser.documents()


class _Parser(EnvelopeParser):
    what = WHAT

    def __init__(self, reader: TextReader, structure: Any, report: bool, types: set[str], checked_set: str):
        super().__init__(reader, structure, report)
        self.types = types
        self.not_in_set = _NOT_IN_SET.get(checked_set)
        self.checked_set = checked_set
        self.service = dict(DEFAULT_SERVICE)

    def next_segment(self) -> tuple[str, list[list[str]]] | None:
        if self.pending is not None:
            return self.take_pending()
        text = ""
        while not text.strip():
            self.reader.skip_blank()
            if self.reader.buffer.startswith("UNA"):
                self.read_una()
            text = self.reader.read_segment(self.service["segment"], self.service["release"])
            if text is None:
                return None
        self.number += 1
        return self.parse(text.strip("\r\n"))

    def read_una(self) -> None:
        self.reader.fill(9)
        una = self.reader.buffer[:9]
        if len(una) < 9:
            raise syntax_error(WHAT, self.number + 1, "UNA", "the UNA needs 6 service characters")
        self.number += 1
        self.service = dict(
            zip(
                ("component", "element", "decimal_mark", "release", "repetition", "segment"),
                una[3:],
                strict=True,
            )
        )
        self.reader.buffer = self.reader.buffer[9:]

    def parse(self, text: str) -> tuple[str, list[list[str]]]:
        release, element, component = (
            self.service["release"],
            self.service["element"],
            self.service["component"],
        )
        values = _split(text, element, release)
        tag = values[0].strip("\r\n ")
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", tag):
            raise syntax_error(
                WHAT,
                self.number,
                None,
                f"{text[:20]!r} does not start with a segment tag (terminator {self.service['segment']!r})",
            )
        elements = []
        for number, value in enumerate(values[1:], start=1):
            components = [_unescape(part, release) for part in _split(value, component, release)]
            if self.not_in_set is not None:
                for part in components:
                    bad = self.not_in_set.search(part)
                    if bad:
                        raise syntax_error(
                            WHAT,
                            self.number,
                            tag,
                            f"{part!r} holds {bad[0]!r}, which "
                            f"{self.checked_set} does not have (UNB says {self.checked_set}; "
                            f"strict_character_set: false accepts it)",
                            f"{tag}{number:02d}",
                        )
            elements.append(components)
        return tag, elements

    # --- the envelope ------------------------------------------------------------------------
    def documents(self) -> Iterator[dict[str, Any]]:
        while (segment := self.next_segment()) is not None:
            tag, elements = segment
            if tag == "UNB":
                yield from self.interchange(elements)
            elif tag == "UNH":
                yield self.message(elements, None, None)
            else:
                raise syntax_error(WHAT, self.number, tag, "expected UNA, UNB or UNH here")

    def interchange(self, unb: list[list[str]]) -> list[dict[str, Any]]:
        syntax, sender, recipient, stamp = (_part(unb, index) for index in range(4))
        header = {
            "syntax": syntax[0],
            "syntax_version": syntax[1],
            "sender": sender[0],
            "sender_qualifier": sender[1],
            "recipient": recipient[0],
            "recipient_qualifier": recipient[1],
            "date": stamp[0],
            "time": stamp[1],
            "control_reference": _part(unb, 4)[0],
            "service_characters": dict(self.service),
            "problems": [],
        }
        start, documents, count, group = self.number, [], 0, None
        while (segment := self.next_segment()) is not None:
            tag, elements = segment
            if tag == "UNH":
                count += group is None
                documents.append(self.message(elements, header, group))
            elif tag == "UNG":
                count += 1
                group = {"type": _part(elements, 0)[0], "control_reference": _part(elements, 4)[0]}
            elif tag == "UNE":
                group = None
            elif tag == "UNZ":
                self.check(
                    header,
                    _part(elements, 0)[0] != str(count),
                    "29",
                    f"UNZ01 says {_part(elements, 0)[0]} messages, the interchange has {count}",
                    "UNZ",
                    "UNZ01",
                )
                self.check(
                    header,
                    _part(elements, 1)[0] != header["control_reference"],
                    "28",
                    f"UNZ02 {_part(elements, 1)[0]} does not match UNB05 {header['control_reference']}",
                    "UNZ",
                    "UNZ02",
                )
                return documents
            else:
                raise syntax_error(
                    WHAT,
                    self.number,
                    tag,
                    f"expected UNH or UNZ in the interchange that starts at segment {start}",
                )
        self.check(
            header,
            True,
            "13",
            f"the input ends before the UNZ of the interchange at segment {start}",
            None,
            None,
        )
        return documents

    def message(
        self, unh: list[list[str]], interchange: dict[str, Any] | None, group: dict[str, Any] | None
    ) -> dict[str, Any]:
        identifier = _part(unh, 1, 6)
        header = {
            "reference": _part(unh, 0)[0],
            "type": identifier[0],
            "version": identifier[1],
            "release": identifier[2],
            "agency": identifier[3],
            "association": identifier[4],
            "problems": [],
        }
        if self.types and header["type"] not in self.types:
            raise syntax_error(
                WHAT,
                self.number,
                "UNH",
                f"this is a {header['type']} message, the mapping reads {', '.join(sorted(self.types))}",
                "UNH02",
            )
        def check_trailer(elements: list[list[str]], count: int) -> None:
            self.check(header, _part(elements, 0)[0] != str(count), "29",
                       f"UNT01 says {_part(elements, 0)[0]} segments, the message has {count}",
                       "UNT", "UNT01")
            self.check(header, _part(elements, 1)[0] != header["reference"], "28",
                       f"UNT02 {_part(elements, 1)[0]} does not match UNH01 {header['reference']}",
                       "UNT", "UNT02")

        segments = self.read_body(header, unit=f"message {header['reference']}", trailer="UNT",
                                  openers=("UNH", "UNZ", "UNB", "UNE"), missing_code="13",
                                  check_trailer=check_trailer)
        return {
            "interchange": interchange,
            "group": group,
            "message": header,
            "segments": segments,
            **group_segments(segments, self.structure),
        }


def _split(text: str, separator: str, release: str) -> list[str]:
    """``text`` cut at each ``separator`` that the release character does not escape."""
    if release not in text:
        return text.split(separator)
    parts, current, index = [], [], 0
    while index < len(text):
        char = text[index]
        if char == release and index + 1 < len(text):
            current.append(text[index : index + 2])
            index += 2
            continue
        if char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str, release: str) -> str:
    return re.sub(re.escape(release) + "(.)", r"\1", text, flags=re.S) if release in text else text


def _part(elements: list[list[str]], index: int, size: int = 2) -> list[str]:
    """Element ``index`` as ``size`` components at least (missing ones are "")."""
    value = elements[index] if index < len(elements) else []
    return list(value) + [""] * (size - len(value))


def encode(document: Any, **options: Any) -> bytes:
    from esb.codecs.edifact_writer import write

    return write(document, **options)
