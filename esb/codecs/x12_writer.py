"""Writing X12: documents in the decoded shape (`esb.codecs.x12`) -> one interchange.

The document (or a list of them, one transaction set each) needs ``transaction.set``; its
segments are its ``segments`` list, or else its tag and ``_loop`` keys in order (what an "out"
mapping builds). The envelope comes from the options, else from the document's own
``interchange`` and ``group`` (so a decoded document is written back as it came), else from
defaults: ISA12 00401, GS08 004010, usage P, the clock for dates and the control number,
separators ``*``, ``~`` and ``>``.
Sets of one functional group (GS01, from ``FUNCTIONAL_IDS``) share one GS.

A value holding a separator cannot be written (X12 has no release character): ValueError
naming the segment, its number and the element.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from esb.codecs.edi import element_key, elements_of, walk_segments
from esb.codecs.x12 import FUNCTIONAL_IDS

DEFAULT_INTERCHANGE_VERSION = "00401"
DEFAULT_GROUP_VERSION = "004010"


def write(
    document: Any,
    *,
    element_separator: str | None = None,
    segment_terminator: str | None = None,
    component_separator: str | None = None,
    newlines: bool = False,
    sender: dict[str, str] | None = None,
    receiver: dict[str, str] | None = None,
    usage: str | None = None,
    version: str | None = None,
    control_number: str | int | None = None,
    encoding: str = "utf-8",
    **_decode_options: Any,
) -> bytes:
    documents = document if isinstance(document, list) else [document]
    if not documents:
        raise ValueError("nothing to write: no transaction set")
    first = documents[0]
    interchange = first.get("interchange") or {}
    declared = interchange.get("separators") or {}
    terminator = segment_terminator or declared.get("segment") or "~"
    component_separator = component_separator or declared.get("component") or ">"
    writer = _Writer(
        element_separator or declared.get("element") or "*",
        terminator + ("\n" if newlines and terminator != "\n" else ""),
        component_separator,
    )
    group = first.get("group") or {}
    now = datetime.now(UTC)
    number = str(control_number or interchange.get("control_number") or int(time.time()) % 10**9)
    if not number.isdigit() or len(number) > 9:
        raise ValueError(f"control_number {number!r}: ISA13 is at most 9 digits")
    sender = sender or {
        "qualifier": interchange.get("sender_qualifier", "ZZ"),
        "id": interchange.get("sender", ""),
    }
    receiver = receiver or {
        "qualifier": interchange.get("receiver_qualifier", "ZZ"),
        "id": interchange.get("receiver", ""),
    }
    for role, party in (("sender", sender), ("receiver", receiver)):
        if not party.get("id"):
            raise ValueError(f"the interchange needs a {role}: {{qualifier, id}} (option {role})")
    group_version = version or group.get("version") or DEFAULT_GROUP_VERSION
    date = interchange.get("date") or now.strftime("%y%m%d")
    clock = interchange.get("time") or now.strftime("%H%M")
    writer.segment(
        "ISA",
        [
            "00",
            " " * 10,
            "00",
            " " * 10,
            sender.get("qualifier", "ZZ"),
            str(sender["id"]).ljust(15),
            receiver.get("qualifier", "ZZ"),
            str(receiver["id"]).ljust(15),
            date,
            clock,
            interchange.get("separators", {}).get("repetition", "U"),
            interchange.get("version") or DEFAULT_INTERCHANGE_VERSION,
            number.zfill(9),
            interchange.get("acknowledgement_requested", "0"),
            usage or interchange.get("usage") or "P",
            component_separator,
        ],
        raw=True,
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for index, one in enumerate(documents):
        set_id = str((one.get("transaction") or {}).get("set") or "")
        if not set_id:
            raise ValueError(f"document {index}: transaction.set (e.g. 940) is needed")
        functional_id = (one.get("group") or {}).get("functional_id") or FUNCTIONAL_IDS.get(set_id)
        if not functional_id:
            raise ValueError(
                f"document {index}: no functional group is known for {set_id}: set group.functional_id"
            )
        groups.setdefault(functional_id, []).append(one)
    for offset, (functional_id, members) in enumerate(groups.items()):
        group_number = str(int(group.get("control_number") or number) + offset)
        writer.segment(
            "GS",
            [
                functional_id,
                group.get("sender") or sender["id"],
                group.get("receiver") or receiver["id"],
                group.get("date") or now.strftime("%Y%m%d"),
                group.get("time") or clock,
                group_number,
                group.get("agency") or "X",
                group_version,
            ],
        )
        for index, one in enumerate(members, start=1):
            writer.transaction(one, index)
        writer.segment("GE", [str(len(members)), group_number])
    writer.segment("IEA", [str(len(groups)), number.zfill(9)])
    return writer.text().encode(encoding)


class _Writer:
    def __init__(self, element: str, terminator: str, component: str):
        self.element = element
        self.terminator = terminator
        self.component = component
        self.parts: list[str] = []
        self.count = 0  # segments of the current transaction set

    def text(self) -> str:
        return "".join(self.parts)

    def transaction(self, document: dict[str, Any], index: int) -> None:
        header = document.get("transaction") or {}
        control = str(header.get("control_number") or f"{index:04d}")
        self.count = 0
        self.segment("ST", [header["set"], control])
        for segment in walk_segments(document):
            tag, values = elements_of(segment, f"segment {self.count + 1}")
            if tag in ("ST", "SE"):
                continue
            self.segment(tag, values)
        self.segment("SE", [str(self.count + 1), control])

    def segment(self, tag: str, values: list[Any], raw: bool = False) -> None:
        self.count += 1
        texts = [
            value if raw else self.value(value, tag, number) for number, value in enumerate(values, start=1)
        ]
        while texts and not texts[-1] and not raw:
            texts.pop()
        self.parts.append(self.element.join([tag, *texts]) + self.terminator)

    def value(self, value: Any, tag: str, number: int) -> str:
        if isinstance(value, list):
            components = [self.text_of(item, tag, number) for item in value]
            while components and not components[-1]:
                components.pop()
            return self.component.join(components)
        return self.text_of(value, tag, number)

    def text_of(self, value: Any, tag: str, number: int) -> str:
        if value is None:
            return ""
        text = format(value, "f") if isinstance(value, Decimal) else str(value)
        for separator in (self.element, self.component, self.terminator.strip("\n") or "\n"):
            if separator in text:
                raise ValueError(
                    f"X12 segment {self.count} ({tag}), element {element_key(tag, number)}: "
                    f"{text!r} holds the separator {separator!r}, which X12 cannot escape"
                )
        return text
