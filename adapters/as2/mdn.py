"""AS2 receipts (MDN, RFC 4130 section 7): building one, reading one.

A receipt is a multipart/report with a sentence for people and a message/disposition-notification
part for machines; signed, it travels as a multipart/signed over that report.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from adapters.as2 import smime

PROCESSED = "automatic-action/MDN-sent-automatically; processed"


@dataclass(frozen=True, slots=True)
class Mdn:
    """What a receipt says: the message it answers, the disposition, the MIC, the sentence."""

    original_message_id: str
    disposition: str
    mic: str | None
    text: str
    signed: bool

    @property
    def processed(self) -> bool:
        """True for a positive receipt: processed, with no error, failure or warning modifier."""
        value = self.disposition.split(";", 1)[-1].strip().lower()
        return value == "processed"


def build(*, original_message_id: str, reporter: str, mic: str | None, error: str | None = None,
          text: str = "") -> tuple[bytes, str]:
    """A receipt entity body and its Content-Type; `error` (an RFC 4130 error name such as
    `authentication-failed`) makes it negative, `text` says why in the human part."""
    disposition = PROCESSED if error is None else f"{PROCESSED}/error: {error}"
    fields = [
        f"Reporting-UA: esb; {reporter}",
        f"Original-Recipient: rfc822; {reporter}",
        f"Final-Recipient: rfc822; {reporter}",
        f"Original-Message-ID: {original_message_id}",
        f"Disposition: {disposition}",
    ]
    if mic is not None and error is None:
        fields.append(f"Received-Content-MIC: {mic}")
    boundary = f"esb-mdn-{secrets.token_hex(10)}"
    human = text or ("The message was received and stored." if error is None else f"Refused: {error}.")
    body = (f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{human}\r\n"
            f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
            + "\r\n".join(fields) + f"\r\n\r\n--{boundary}--\r\n").encode()
    return body, f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'


def sign(body: bytes, content_type: str, cert, key, digest: str = "sha256") -> tuple[bytes, str]:
    """The receipt signed: a multipart/signed body over the report entity, and its Content-Type."""
    entity = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    return smime.sign(entity, cert, key, digest)


def parse(body: bytes, content_type: str, partner_cert=None) -> Mdn:
    """The receipt in an HTTP answer. A signed one is verified with `partner_cert` (SmimeError when
    it does not verify); SmimeError too when it is no receipt at all."""
    signed = content_type.lower().startswith("multipart/signed")
    if signed:
        if partner_cert is None:
            raise smime.SmimeError("the receipt is signed but no partner certificate is configured")
        entity, _ = smime.verify(body, content_type, partner_cert)
        headers, body = smime.split_part(entity)
        content_type = headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/report"):
        raise smime.SmimeError(f"the answer is not a receipt (Content-Type {content_type!r})")
    boundary = smime.header_param(content_type, "boundary") or ""
    parts = [part for part in body.split(b"--" + boundary.encode()) if part.strip(b"\r\n-")]
    text, fields = "", {}
    for part in parts:
        headers, content = smime.split_part(part.lstrip(b"\r\n"))
        kind = headers.get("content-type", "").lower()
        if kind.startswith("message/disposition-notification"):
            fields, _ = smime.split_part(content.strip(b"\r\n") + b"\r\n\r\n")
        elif kind.startswith("text/plain") and not text:
            text = content.decode("utf-8", "replace").strip()
    if "disposition" not in fields:
        raise smime.SmimeError("the receipt has no Disposition field")
    return Mdn(original_message_id=fields.get("original-message-id", ""), disposition=fields["disposition"],
               mic=fields.get("received-content-mic"), text=text, signed=signed)


def same_mic(received: str | None, sent: str) -> bool:
    """The MIC of a receipt is the one we computed: equal value, equal digest (names compared loosely)."""
    if not received:
        return False
    try:
        value, digest = (item.strip() for item in received.split(",", 1))
        sent_value, sent_digest = (item.strip() for item in sent.split(",", 1))
        return value == sent_value and smime.digest_name(digest) == smime.digest_name(sent_digest)
    except (ValueError, smime.SmimeError):
        return False
