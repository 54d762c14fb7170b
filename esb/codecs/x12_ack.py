"""997 functional acknowledgements of what an X12 input held.

`acknowledge(documents)` takes the decoded documents of an input (decode it with
``control_numbers: report`` so that wrong counts and control numbers are reported, not raised)
and gives one 997 document per functional group, addressed back to the sender; the X12 writer
writes them (`acknowledgement(raw)` does both). Each transaction set gets AK2/AK5: ``A``
accepted, or ``R`` with the AK5 codes of its problems (2 trailer missing, 3 control number,
4 segment count); the group gets AK9: ``A``, ``P`` (some sets rejected), or ``R`` (every set
rejected, or the group itself is wrong: 3 no GE, 4 GE02, 5 GE01 count), with the counts.
"""

from __future__ import annotations

from typing import Any

from esb.codecs import x12
from esb.codecs.x12_writer import write


def acknowledge(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One 997 document (decoded shape) per functional group of ``documents``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for document in documents:
        interchange = document.get("interchange") or {}
        group = document.get("group") or {}
        key = (str(interchange.get("control_number", "")), str(group.get("control_number", "")))
        groups.setdefault(key, []).append(document)
    return [_acknowledgement(members) for members in groups.values()]


def acknowledgement(raw: bytes, **options: Any) -> bytes:
    """The 997 interchange answering the X12 input ``raw`` (options: those of the writer)."""
    documents = list(x12.decode(raw, control_numbers="report"))
    return write(acknowledge(documents), **options)


def _acknowledgement(members: list[dict[str, Any]]) -> dict[str, Any]:
    first = members[0]
    interchange = first.get("interchange") or {}
    group = first.get("group") or {}
    sets = []
    accepted = 0
    for document in members:
        header = document["transaction"]
        codes = [problem["code"] for problem in header.get("problems", [])][:5]
        accepted += not codes
        sets.append(
            {
                "AK2": {"AK201": header["set"], "AK202": header["control_number"]},
                "AK5": {"AK501": "R" if codes else "A", **_numbered("AK5", codes, start=2)},
            }
        )
    group_codes = [problem["code"] for problem in group.get("problems", [])][:5]
    status = "R" if group_codes or not accepted else "A" if accepted == len(members) else "P"
    return {
        "interchange": {
            "sender_qualifier": interchange.get("receiver_qualifier", "ZZ"),
            "sender": interchange.get("receiver", ""),
            "receiver_qualifier": interchange.get("sender_qualifier", "ZZ"),
            "receiver": interchange.get("sender", ""),
            "usage": interchange.get("usage", "P"),
            "version": interchange.get("version"),
            "separators": interchange.get("separators") or {},
        },
        "group": {
            "functional_id": "FA",
            "sender": group.get("receiver"),
            "receiver": group.get("sender"),
            "version": group.get("version"),
        },
        "transaction": {"set": "997"},
        "AK1": {
            "AK101": group.get("functional_id") or x12.FUNCTIONAL_IDS.get(first["transaction"]["set"]),
            "AK102": group.get("control_number", ""),
        },
        "AK2_loop": sets,
        "AK9": {
            "AK901": status,
            "AK902": str(len(members)),
            "AK903": str(len(members)),
            "AK904": str(accepted),
            **_numbered("AK9", group_codes, start=5),
        },
    }


def _numbered(tag: str, values: list[str], *, start: int) -> dict[str, str]:
    return {f"{tag}{number:02d}": value for number, value in enumerate(values, start=start)}
