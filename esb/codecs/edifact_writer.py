"""Writing EDIFACT: documents in the decoded shape (`esb.codecs.edifact`) -> one interchange.

The document (or a list of them, one message each) needs ``message.type`` (and ``version``,
``release``, ``agency``, default D, 96A, UN); its segments are its ``segments`` list, or else
its tag and ``_loop`` keys in order (what an "out" mapping builds). An element is a list of
components or one value. Service characters and the UNB come from the options, else from the
document's ``interchange``, else the defaults (``:+.? '``, UNOC:3). Data characters that are
service characters are escaped with the release character; Decimal values are written with the
declared decimal mark (a decimal comma when the UNA says so). A character the syntax's
character set cannot encode is a ValueError naming the segment and element.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from esb.codecs.edi import elements_of, walk_segments
from esb.codecs.edifact import CHARACTER_SETS, DEFAULT_SERVICE


def write(
    document: Any,
    *,
    syntax: str | None = None,
    service_characters: dict[str, str] | None = None,
    una: bool = True,
    newlines: bool = False,
    sender: dict[str, str] | None = None,
    recipient: dict[str, str] | None = None,
    control_reference: str | int | None = None,
    encoding: str | None = None,
    **_decode_options: Any,
) -> bytes:
    documents = document if isinstance(document, list) else [document]
    if not documents:
        raise ValueError("nothing to write: no message")
    interchange = documents[0].get("interchange") or {}
    service = {
        **DEFAULT_SERVICE,
        **(interchange.get("service_characters") or {}),
        **(service_characters or {}),
    }
    identifier, _, version = (
        syntax or f"{interchange.get('syntax') or 'UNOC'}:{interchange.get('syntax_version') or '3'}"
    ).partition(":")
    sender = sender or {"id": interchange.get("sender"), "qualifier": interchange.get("sender_qualifier")}
    recipient = recipient or {
        "id": interchange.get("recipient"),
        "qualifier": interchange.get("recipient_qualifier"),
    }
    for role, party in (("sender", sender), ("recipient", recipient)):
        if not party.get("id"):
            raise ValueError(f"the interchange needs a {role}: {{id, qualifier}} (option {role})")
    reference = str(control_reference or interchange.get("control_reference") or int(time.time()) % 10**9)
    now = datetime.now(UTC)
    writer = _Writer(service, newlines)
    writer.segment(
        "UNB",
        [
            [identifier, version or "3"],
            [sender["id"], sender.get("qualifier")],
            [recipient["id"], recipient.get("qualifier")],
            [
                interchange.get("date") or now.strftime("%y%m%d"),
                interchange.get("time") or now.strftime("%H%M"),
            ],
            reference,
        ],
    )
    for index, one in enumerate(documents, start=1):
        writer.message(one, index)
    writer.segment("UNZ", [str(len(documents)), reference])
    head = "UNA" + "".join(service[name] for name in DEFAULT_SERVICE) + ("\n" if newlines else "")
    text = (head if una else "") + writer.text()
    charset = encoding or CHARACTER_SETS.get(identifier, "iso8859-1")
    try:
        return text.encode(charset)
    except UnicodeEncodeError as error:
        raise ValueError(
            f"EDIFACT: {text[error.start]!r} cannot be written in {identifier} ({charset}); "
            f"{writer.where(error.start)}"
        ) from None


class _Writer:
    def __init__(self, service: dict[str, str], newlines: bool):
        self.service = service
        self.terminator = service["segment"] + ("\n" if newlines else "")
        self.special = {service[name] for name in ("component", "element", "release", "segment")}
        self.parts: list[str] = []
        self.places: list[tuple[int, str]] = []  # (offset, segment) to name a place in the text
        self.length = 0
        self.count = 0

    def text(self) -> str:
        return "".join(self.parts)

    def where(self, offset: int) -> str:
        offset -= 9  # the UNA
        place = next((name for start, name in reversed(self.places) if start <= offset), "")
        return f"in {place}" if place else ""

    def message(self, document: dict[str, Any], index: int) -> None:
        header = document.get("message") or {}
        if not header.get("type"):
            raise ValueError(f"document {index}: message.type (e.g. ORDERS) is needed")
        reference = str(header.get("reference") or index)
        identifier = [
            header["type"],
            header.get("version") or "D",
            header.get("release") or "96A",
            header.get("agency") or "UN",
        ] + ([header["association"]] if header.get("association") else [])
        self.count = 0
        self.segment("UNH", [reference, identifier])
        for segment in walk_segments(document):
            tag, values = elements_of(segment, f"segment {self.count + 1}")
            if tag not in ("UNH", "UNT"):
                self.segment(tag, values)
        self.segment("UNT", [str(self.count + 1), reference])

    def segment(self, tag: str, values: list[Any]) -> None:
        self.count += 1
        texts = [self.element(value) for value in values]
        while texts and not texts[-1]:
            texts.pop()
        self.places.append((self.length, f"segment {self.count} ({tag})"))
        text = self.service["element"].join([tag, *texts]) + self.terminator
        self.parts.append(text)
        self.length += len(text)

    def element(self, value: Any) -> str:
        components = [self.text_of(part) for part in (value if isinstance(value, list) else [value])]
        while components and not components[-1]:
            components.pop()
        return self.service["component"].join(components)

    def text_of(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, Decimal):
            text = format(value, "f").replace(".", self.service["decimal_mark"])
        else:
            text = str(value)
        if any(char in self.special for char in text):
            release = self.service["release"]
            text = "".join(release + char if char in self.special else char for char in text)
        return text
