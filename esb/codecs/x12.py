"""ANSI X12: interchanges (ISA/GS/ST ... SE/GE/IEA) -> one document per transaction set.

The separators are the ones the ISA declares (element: its 4th character; component: ISA16;
segment terminator: the character after ISA16), whatever they are; CR and LF around
terminators are ignored, a segment that ends at a line break without its terminator ends
there, and a UTF-8 BOM is dropped. A file may hold several interchanges (each with its own
separators); a file that starts at GS or ST (no envelope) is read with the ``separators``
option or a guess (``*``, ``~``, ``>``).

Each document (see `esb.codecs.edi` for segments and loops)::

    {"interchange": {"sender_qualifier", "sender", "receiver_qualifier", "receiver", "date",
                     "time", "control_number", "version", "usage", "acknowledgement_requested",
                     "separators": {...}, "problems": [...]},        # null without an ISA
     "group": {"functional_id", "sender", "receiver", "date", "time", "control_number",
               "agency", "version", "problems": [...]},               # null without a GS
     "transaction": {"set": "940", "control_number": "0001", "version", "problems": [...]},
     "segments": [{"tag": "W05", "position": 2, "W0501": "N", ...}, ...],   # ST and SE left out
     "W05": [...], "N1_loop": [...], ...}                             # grouped by the loops

Elements are text; an element holding the component separator is a list of its components.
Control numbers and counts (SE01/SE02, GE01/GE02, IEA01/IEA02) are checked: with
``control_numbers: check`` (the default) a mismatch is an error and nothing of that interchange
is yielded; with ``report`` it is listed under ``problems`` (``{"code", "text"}``, the codes of
the 997 and TA1) and `esb.codecs.x12_ack` acknowledges it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from esb.codecs.edi import EnvelopeParser, TextReader, build_loops, group_segments, syntax_error

MEDIA_TYPES = ("application/edi-x12",)
"""Content types of this format; the first is the one sent (see `esb.codecs.content_type`)."""

OPTIONS = {
    "encoding": "text encoding (default utf-8; a UTF-8 BOM is always understood)",
    "loops": "loop structure: {N1: [N2, N3, N4], LX: {segments: [W01], loops: {...}}} (default none)",
    "control_numbers": "check (a mismatch is an error, default) or report (listed under problems)",
    "transaction_sets": "the transaction sets the mapping reads, e.g. [940]; others are an error "
    "(default any)",
    "separators": "{element, segment, component}: for files without an ISA (default * ~ >)",
    "element_separator": "encode: default *",
    "segment_terminator": "encode: default ~",
    "component_separator": "encode: default >",
    "newlines": "encode: true writes a line break after each segment (default false)",
    "sender": "encode: {qualifier, id} of ISA05/06 and GS02 (default the document's interchange)",
    "receiver": "encode: {qualifier, id} of ISA07/08 and GS03",
    "usage": "encode: ISA15, P (production, default) or T (test)",
    "version": "encode: GS08 (default 004010) and ISA12 (default 00401)",
    "control_number": "encode: ISA13/GS06 (default the document's, else from the clock)",
}

FUNCTIONAL_IDS = {
    "940": "OW",
    "945": "SW",
    "943": "AR",
    "944": "RE",
    "846": "IB",
    "947": "AW",
    "856": "SH",
    "850": "PO",
    "855": "PR",
    "997": "FA",
    "810": "IN",
    "861": "RC",
}
"""GS01 of each transaction set (X12 data element 479)."""

_TAG = re.compile(r"^[A-Z][A-Z0-9]{1,2}$")
WHAT = "X12"


def option_problems(options: dict[str, Any]) -> list[str]:
    """Problems of the decode options, as sentences (for the mapping checker)."""
    try:
        build_loops(options.get("loops"))
    except ValueError as error:
        return [str(error)]
    if options.get("control_numbers", "check") not in ("check", "report"):
        return ['control_numbers must be "check" or "report"']
    return []


def decode(
    source: bytes | BinaryIO,
    *,
    encoding: str = "utf-8",
    loops: Any = None,
    control_numbers: str = "check",
    transaction_sets: list[str] | None = None,
    separators: dict[str, str] | None = None,
    **_encode_options: Any,
) -> Iterator[dict[str, Any]]:
    parser = _Parser(
        TextReader(source, encoding, WHAT),
        build_loops(loops),
        control_numbers == "report",
        {str(name) for name in transaction_sets or ()},
        separators or {},
    )
    yield from parser.documents()


class _Parser(EnvelopeParser):
    what = WHAT

    def __init__(
        self, reader: TextReader, structure: Any, report: bool, sets: set[str], separators: dict[str, str]
    ):
        super().__init__(reader, structure, report)
        self.sets = sets
        self.given = separators
        self.element = "*"
        self.terminator = "~"
        self.component = ">"

    # --- segments ----------------------------------------------------------------------------
    def next_segment(self) -> tuple[str, list[Any]] | None:
        if self.pending is not None:
            return self.take_pending()
        text = ""
        while not text.strip():
            self.reader.skip_blank()
            if self.reader.buffer.startswith("ISA"):
                self.read_separators()
            text = self.reader.read_segment(self.terminator)
            if text is None:
                return None
        self.number += 1
        return self.parse(text.replace("\r", "").replace("\n", ""))

    def push_back(self, segment: tuple[str, list[Any]]) -> None:
        self.pending = segment

    def parse(self, text: str) -> tuple[str, list[Any]]:
        values = text.split(self.element)
        tag = values[0].strip()
        if not _TAG.match(tag):
            raise syntax_error(
                WHAT,
                self.number,
                None,
                f"{text[:20]!r} does not start with a segment tag "
                f"(separators: element {self.element!r}, segment "
                f"{self.terminator!r})",
            )
        if tag == "ISA":
            return tag, values[1:]
        component = self.component
        return tag, [value.split(component) if component in value else value for value in values[1:]]

    def read_separators(self) -> None:
        reader = self.reader
        reader.fill(200)
        text = reader.buffer
        self.element = text[3]
        index = 3
        for _ in range(15):
            index = text.find(self.element, index + 1)
            if index < 0:
                raise syntax_error(
                    WHAT, self.number + 1, "ISA", "fewer than 16 elements: the separators cannot be read"
                )
        self.component = text[index + 1]
        terminator = text[index + 2 : index + 3]
        if not terminator:
            raise syntax_error(WHAT, self.number + 1, "ISA", "the input ends inside the ISA", "ISA16")
        self.terminator = "\n" if terminator in "\r\n" else terminator

    def guess_separators(self) -> None:
        """For input without an ISA: the ``separators`` option, else what the first segment shows."""
        self.reader.fill(512)
        head = self.reader.buffer
        self.element = self.given.get("element") or head[2:3] or "*"
        guessed = next((char for char in head if char in "~'\n\r|!" and char != self.element), "~")
        self.terminator = self.given.get("segment") or ("\n" if guessed in "\r\n" else guessed)
        self.component = self.given.get("component") or ">"

    # --- the envelope ------------------------------------------------------------------------
    def documents(self) -> Iterator[dict[str, Any]]:
        self.reader.skip_blank()
        if not self.reader.buffer.startswith("ISA"):
            self.guess_separators()
        while (segment := self.next_segment()) is not None:
            tag, elements = segment
            if tag == "ISA":
                yield from self.interchange(elements)
            elif tag == "GS":
                yield from self.group(elements, None)
            elif tag == "ST":
                yield self.transaction(elements, None, None)
            else:
                raise syntax_error(WHAT, self.number, tag, "expected ISA, GS or ST here")

    def interchange(self, isa: list[Any]) -> Iterator[dict[str, Any]]:
        if len(isa) < 16:
            raise syntax_error(WHAT, self.number, "ISA", f"{len(isa)} elements, ISA has 16")
        header = {
            "sender_qualifier": isa[4].strip(),
            "sender": isa[5].strip(),
            "receiver_qualifier": isa[6].strip(),
            "receiver": isa[7].strip(),
            "date": isa[8],
            "time": isa[9],
            "control_number": isa[12].strip(),
            "version": isa[11],
            "acknowledgement_requested": isa[13],
            "usage": isa[14],
            "separators": {
                "element": self.element,
                "component": self.component,
                "segment": self.terminator,
                "repetition": isa[10],
            },
            "problems": [],
        }
        start = self.number
        documents: list[dict[str, Any]] = []
        groups = 0
        while (segment := self.next_segment()) is not None:
            tag, elements = segment
            if tag == "GS":
                groups += 1
                documents.extend(self.group(elements, header))
            elif tag == "IEA":
                self.check(
                    header,
                    _element(elements, 0) != str(groups) and _number(elements, 0) != groups,
                    "021",
                    f"IEA01 says {_element(elements, 0)} groups, the interchange has {groups}",
                    "IEA",
                    "IEA01",
                )
                self.check(
                    header,
                    not _same(_element(elements, 1), header["control_number"]),
                    "001",
                    f"IEA02 {_element(elements, 1)} does not match ISA13 {header['control_number']}",
                    "IEA",
                    "IEA02",
                )
                break
            elif tag == "ST":
                documents.append(self.transaction(elements, header, None))
            else:
                raise syntax_error(
                    WHAT,
                    self.number,
                    tag,
                    f"expected GS or IEA in the interchange that starts at segment {start}",
                )
        else:
            self.check(
                header,
                True,
                "023",
                f"the input ends before the IEA of the interchange at segment {start}",
                None,
                None,
            )
        yield from documents

    def group(self, gs: list[Any], interchange: dict[str, Any] | None) -> list[dict[str, Any]]:
        header = {
            "functional_id": _element(gs, 0),
            "sender": _element(gs, 1),
            "receiver": _element(gs, 2),
            "date": _element(gs, 3),
            "time": _element(gs, 4),
            "control_number": _element(gs, 5),
            "agency": _element(gs, 6),
            "version": _element(gs, 7),
            "problems": [],
        }
        start = self.number
        documents = []
        while (segment := self.next_segment()) is not None:
            tag, elements = segment
            if tag == "ST":
                documents.append(self.transaction(elements, interchange, header))
            elif tag == "GE":
                count = len(documents)
                self.check(
                    header,
                    _number(elements, 0) != count,
                    "5",
                    f"GE01 says {_element(elements, 0)} transaction sets, the group has {count}",
                    "GE",
                    "GE01",
                )
                self.check(
                    header,
                    not _same(_element(elements, 1), header["control_number"]),
                    "4",
                    f"GE02 {_element(elements, 1)} does not match GS06 {header['control_number']}",
                    "GE",
                    "GE02",
                )
                return documents
            elif tag in ("IEA", "ISA"):
                self.push_back(segment)
                break
            else:
                raise syntax_error(
                    WHAT, self.number, tag, f"expected ST or GE in the group that starts at segment {start}"
                )
        self.check(header, True, "3", f"the group that starts at segment {start} has no GE", None, None)
        return documents

    def transaction(
        self, st: list[Any], interchange: dict[str, Any] | None, group: dict[str, Any] | None
    ) -> dict[str, Any]:
        set_id, control = _element(st, 0), _element(st, 1)
        if self.sets and set_id not in self.sets:
            raise syntax_error(
                WHAT,
                self.number,
                "ST",
                f"this is a {set_id} transaction set, the mapping reads {', '.join(sorted(self.sets))}",
                "ST01",
            )
        header = {
            "set": set_id,
            "control_number": control,
            "version": _element(st, 2) or (group or {}).get("version", ""),
            "problems": [],
        }
        def check_trailer(elements: list[Any], count: int) -> None:
            self.check(header, _number(elements, 0) != count, "4",
                       f"SE01 says {_element(elements, 0)} segments, the transaction set has {count}",
                       "SE", "SE01")
            self.check(header, _element(elements, 1) != control, "3",
                       f"SE02 {_element(elements, 1)} does not match ST02 {control}", "SE", "SE02")

        segments = self.read_body(header, unit=f"transaction set {set_id} {control}", trailer="SE",
                                  openers=("ST", "GE", "IEA", "ISA", "GS"), missing_code="2",
                                  check_trailer=check_trailer)
        return {
            "interchange": interchange,
            "group": group,
            "transaction": header,
            "segments": segments,
            **group_segments(segments, self.structure),
        }


def _element(elements: list[Any], index: int) -> str:
    if index >= len(elements):
        return ""
    value = elements[index]
    return (value if isinstance(value, str) else ":".join(value)).strip()


def _number(elements: list[Any], index: int) -> int | None:
    text = _element(elements, index)
    return int(text) if text.isdigit() else None


def _same(trailer: str, header: str) -> bool:
    if trailer.isdigit() and header.isdigit():
        return int(trailer) == int(header)
    return trailer == header


def encode(document: Any, **options: Any) -> bytes:
    from esb.codecs.x12_writer import write

    return write(document, **options)
