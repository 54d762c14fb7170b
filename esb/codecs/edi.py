"""What X12 and EDIFACT share: the reading of segments from a stream, the decoded shape of a
segment, loops declared in the mapping, and the walk the writers make over a document.

A decoded segment is a dict: ``{"tag": "W01", "position": 14, "W0101": "12", "W0102": "CA"}``
(element keys are the tag and the element's number in two digits, as the standards name them;
``position`` counts segments from the transaction's or message's header, which is 1).

Loops (``loops:`` in the codec options) group the segments of a document the way the standard
nests them, so that mappings navigate by qualifier, never by position::

    loops:
      N1: [N2, N3, N4, PER]        # a loop starts at each N1 and holds the N2..PER after it
      LX:                          # with loops inside it
        segments: [W01, G69, N9]
        loops: {W12: [N9]}

The document (and every loop instance) then holds each segment tag as a list of its segments
(``W05: [{...}]``) and each loop as ``<TAG>_loop: [{number: 1, N1: [...], N3: [...]}, ...]``
(``number`` counts the instances from 1: a line number where the standard has none). A segment
belongs to the innermost open loop that lists it; one that no open loop lists closes them and
goes to the document. The flat ``segments`` list keeps every segment in its order.
"""

from __future__ import annotations

import codecs as std_codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from esb.codecs import UTF8_BOM, as_stream, decoding_for
from esb.errors import DecodeError

CHUNK_CHARS = 64 * 1024
LOOP_SUFFIX = "_loop"
_ELEMENT_KEY = re.compile(r"^([A-Z][A-Z0-9]{1,2})(\d{2})$")


def element_key(tag: str, number: int) -> str:
    """``("W01", 3)`` -> ``"W0103"``."""
    return f"{tag}{number:02d}"


def make_segment(tag: str, elements: list[Any], position: int) -> dict[str, Any]:
    segment: dict[str, Any] = {"tag": tag, "position": position}
    for number, value in enumerate(elements, start=1):
        segment[element_key(tag, number)] = value
    return segment


def elements_of(segment: dict[str, Any], where: str) -> tuple[str, list[Any]]:
    """(tag, [element values, gaps as ""]) of a segment dict, for the writers."""
    tag = segment.get("tag")
    if not isinstance(tag, str) or not re.fullmatch(r"[A-Z][A-Z0-9]{1,2}", tag):
        raise ValueError(f"{where}: a segment needs a tag of 2 or 3 capitals or digits, not {tag!r}")
    if isinstance(segment.get("elements"), list):
        return tag, list(segment["elements"])
    values: dict[int, Any] = {}
    for key, value in segment.items():
        match = _ELEMENT_KEY.match(key)
        if match and match[1] == tag:
            values[int(match[2])] = value
        elif key not in ("tag", "position"):
            raise ValueError(
                f"{where} ({tag}): {key!r} is not an element of {tag} (write {tag}01, {tag}02 ...)"
            )
    if not values:
        return tag, []
    return tag, [values.get(number, "") for number in range(1, max(values) + 1)]


def walk_segments(document: dict[str, Any], where: str = "document") -> Iterator[dict[str, Any]]:
    """The segments of a document in writing order: its ``segments`` list when it has one, else
    its tag and ``_loop`` keys in their order (the shape the decoder groups into)."""
    if isinstance(document.get("segments"), list):
        yield from document["segments"]
        return
    for key, value in document.items():
        if key.endswith(LOOP_SUFFIX):
            for index, instance in enumerate(_as_list(value)):
                yield from walk_segments(instance, f"{where}.{key}[{index}]")
        elif re.fullmatch(r"[A-Z][A-Z0-9]{1,2}", key):
            for segment in _as_list(value):
                if isinstance(segment, dict):
                    yield {"tag": key, **segment}
                else:
                    raise ValueError(f"{where}.{key}: a segment is an object of elements, not {segment!r}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --- loops ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loop:
    segments: frozenset[str] = frozenset()
    loops: dict[str, Loop] = field(default_factory=dict)


def build_loops(spec: Any, where: str = "loops") -> Loop:
    """The loop structure of the ``loops`` option; ValueError naming the first problem."""
    if spec is None:
        return Loop()
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a mapping of starting tags to their segments, e.g. {{N1: [N3, N4]}}")
    loops = {}
    for tag, body in spec.items():
        here = f"{where}.{tag}"
        if not re.fullmatch(r"[A-Z][A-Z0-9]{1,2}", str(tag)):
            raise ValueError(f"{here}: a loop is named by its first segment's tag (2 or 3 capitals)")
        if isinstance(body, list):
            body = {"segments": body}
        if not isinstance(body, dict) or set(body) - {"segments", "loops"}:
            raise ValueError(f"{here}: a list of segment tags, or {{segments: [...], loops: {{...}}}}")
        segments = body.get("segments") or []
        if not isinstance(segments, list) or not all(isinstance(name, str) for name in segments):
            raise ValueError(f"{here}.segments: a list of segment tags")
        loops[str(tag)] = Loop(frozenset(segments), build_loops(body.get("loops"), f"{here}.loops").loops)
    return Loop(frozenset(), loops)


def group_segments(segments: list[dict[str, Any]], structure: Loop) -> dict[str, Any]:
    """The document's tag lists and loops (see the module docstring)."""
    root: dict[str, Any] = {}
    stack: list[tuple[Loop, dict[str, Any]]] = [(structure, root)]
    for segment in segments:
        tag = segment["tag"]
        while True:
            loop, holder = stack[-1]
            if tag in loop.loops:
                siblings = holder.setdefault(tag + LOOP_SUFFIX, [])
                instance: dict[str, Any] = {"number": len(siblings) + 1, tag: [segment]}
                siblings.append(instance)
                stack.append((loop.loops[tag], instance))
                break
            if tag in loop.segments or len(stack) == 1:
                holder.setdefault(tag, []).append(segment)
                break
            stack.pop()
    return root


# --- reading segments ----------------------------------------------------------------------


class TextReader:
    """The text of a binary stream, decoded in chunks, with a UTF-8 BOM dropped."""

    def __init__(self, source: bytes | BinaryIO, encoding: str, what: str, prefix: bytes = b""):
        self.stream = as_stream(source)
        self.prefix = prefix  # bytes already read from the stream (to sniff the character set)
        self.what = what
        self.declared = encoding
        self.decoder = std_codecs.getincrementaldecoder(decoding_for(encoding))("strict")
        self.buffer = ""
        self.eof = False
        self.started = False

    def fill(self, at_least: int = 1) -> bool:
        """Read until the buffer holds ``at_least`` characters or the stream ends; False when it
        holds fewer."""
        while len(self.buffer) < at_least and not self.eof:
            raw, self.prefix = (self.prefix, b"") if self.prefix else (self.stream.read(CHUNK_CHARS), b"")
            if not self.started:
                self.started = True
                if raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM) :]
                    self.decoder = std_codecs.getincrementaldecoder("utf-8")("strict")
            try:
                self.buffer += self.decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as error:
                raise DecodeError(
                    f"{self.what}: not valid {self.declared} text (byte {error.object[error.start]:#04x})"
                ) from None
            self.eof = not raw
        return len(self.buffer) >= at_least

    def skip_blank(self) -> None:
        """Drop the blank text before the next segment, and have its first 3 characters at hand."""
        while self.fill() and not self.buffer.lstrip():
            self.buffer = ""
        self.buffer = self.buffer.lstrip()
        self.fill(3)

    def read_segment(self, terminator: str, release: str | None = None) -> str | None:
        """The next segment's text without its terminator (None at the end of the input); the last
        segment may lack its terminator."""
        start = 0
        while True:
            index = self.buffer.find(terminator, start)
            while release and index > 0 and _released(self.buffer, index, release):
                index = self.buffer.find(terminator, index + 1)
            if index >= 0:
                text, self.buffer = self.buffer[:index], self.buffer[index + len(terminator) :]
                return text
            start = max(0, len(self.buffer) - 1)
            if not self.fill(len(self.buffer) + 1):
                text, self.buffer = self.buffer, ""
                return text if text.strip() else None


def _released(text: str, index: int, release: str) -> bool:
    """Is the character at ``index`` escaped (preceded by an odd number of release characters)?"""
    count = 0
    while index - count - 1 >= 0 and text[index - count - 1] == release:
        count += 1
    return count % 2 == 1


def syntax_error(
    what: str, number: int, tag: str | None, sentence: str, element: str | None = None
) -> DecodeError:
    """ "X12 segment 14 (W01), element W0103: ..." -- the error every EDI syntax problem raises."""
    place = f"{what} segment {number}" + (f" ({tag})" if tag else "")
    if element:
        place += f", element {element}"
    return DecodeError(f"{place}: {sentence}")


class EnvelopeParser:
    """What the X12 and EDIFACT parsers share: the segment put back for the next read, the count
    of segments read, and the check of control numbers and counts (an error, or with
    ``control_numbers: report`` a problem listed in the header)."""

    what = "EDI"

    def __init__(self, reader: TextReader, structure: Any, report: bool):
        self.reader = reader
        self.structure = structure
        self.report = report
        self.number = 0  # segments read in the file
        self.pending: tuple[str, list[Any]] | None = None

    def push_back(self, segment: tuple[str, list[Any]]) -> None:
        self.pending = segment

    def take_pending(self) -> tuple[str, list[Any]] | None:
        segment, self.pending = self.pending, None
        return segment

    def read_body(self, header: dict[str, Any], *, unit: str, trailer: str, openers: tuple[str, ...],
                  missing_code: str, check_trailer: Any) -> list[dict[str, Any]]:
        """The segments of one transaction set or message (``unit`` names it in sentences) up to its
        ``trailer``, which ``check_trailer(elements, count)`` checks. The header of another one, or
        the end of the input, before the trailer is a missing trailer (``missing_code``)."""
        start, segments = self.number, []
        while (segment := self.next_segment()) is not None:
            tag, elements = segment
            if tag == trailer:
                check_trailer(elements, len(segments) + 2)
                return segments
            if tag in openers:
                self.push_back(segment)
                self.check(header, True, missing_code,
                           f"the {unit} that starts at segment {start} has no {trailer}", None, None)
                return segments
            segments.append(make_segment(tag, elements, len(segments) + 2))
        self.check(header, True, missing_code, f"the input ends inside {unit} (no {trailer})", None, None)
        return segments

    def check(self, header: dict[str, Any], failed: bool, code: str, sentence: str,
              tag: str | None, element: str | None) -> None:
        if not failed:
            return
        if not self.report:
            raise syntax_error(self.what, self.number, tag,
                               sentence + " (control_numbers: report accepts it)", element)
        header["problems"].append({"code": code, "text": sentence, "segment": self.number})
