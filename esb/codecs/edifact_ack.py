"""CONTRL syntax and service reports of what an EDIFACT input held.

`acknowledge(documents)` takes the decoded messages of one input (decode it with
``control_numbers: report`` so that wrong counts and references are reported, not raised) and
gives one CONTRL document per interchange, addressed back to the sender: UCI answers the
interchange (action 7 acknowledged, or 4 rejected with the error code of 0085: 13 missing,
28 references do not match, 29 counts do not match), and one UCM per message answers it the
same way. `acknowledgement(raw)` decodes, acknowledges and writes.
"""

from __future__ import annotations

from typing import Any

from esb.codecs import edifact
from esb.codecs.edifact_writer import write

ACKNOWLEDGED, REJECTED = "7", "4"


def acknowledge(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One CONTRL document (decoded shape) per interchange of ``documents``."""
    interchanges: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        reference = str((document.get("interchange") or {}).get("control_reference", ""))
        interchanges.setdefault(reference, []).append(document)
    return [_contrl(members) for members in interchanges.values()]


def acknowledgement(raw: bytes, **options: Any) -> bytes:
    """The CONTRL interchange answering the EDIFACT input ``raw`` (options: those of the writer)."""
    return write(acknowledge(list(edifact.decode(raw, control_numbers="report"))), **options)


def _contrl(members: list[dict[str, Any]]) -> dict[str, Any]:
    interchange = members[0].get("interchange") or {}
    messages = []
    for document in members:
        header = document["message"]
        codes = [problem["code"] for problem in header.get("problems", [])]
        identifier = [header["type"], header["version"], header["release"], header["agency"]]
        messages.append(
            {
                "UCM": {
                    "UCM01": [header["reference"]],
                    "UCM02": identifier,
                    "UCM03": [REJECTED if codes else ACKNOWLEDGED],
                    "UCM04": codes[:1],
                }
            }
        )
    codes = [problem["code"] for problem in interchange.get("problems", [])]
    rejected = bool(codes) or all(message["UCM"]["UCM03"] == [REJECTED] for message in messages)
    return {
        "interchange": {
            "syntax": interchange.get("syntax"),
            "syntax_version": interchange.get("syntax_version"),
            "sender": interchange.get("recipient"),
            "sender_qualifier": interchange.get("recipient_qualifier"),
            "recipient": interchange.get("sender"),
            "recipient_qualifier": interchange.get("sender_qualifier"),
            "service_characters": interchange.get("service_characters"),
        },
        "message": {"type": "CONTRL", "version": "D", "release": "3", "agency": "UN"},
        "UCI": {
            "UCI01": [interchange.get("control_reference", "")],
            "UCI02": [interchange.get("sender", ""), interchange.get("sender_qualifier", "")],
            "UCI03": [interchange.get("recipient", ""), interchange.get("recipient_qualifier", "")],
            "UCI04": [REJECTED if rejected else ACKNOWLEDGED],
            "UCI05": codes[:1],
        },
        "UCM_loop": messages,
    }
