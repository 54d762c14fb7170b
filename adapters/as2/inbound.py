"""The AS2 push source: `POST /as2/<partner>` checks, decrypts, stores, then answers a receipt.

The order of an exchange: the sender's AS2-From/AS2-To must be the profile's ids, the body is
decrypted with our key, its signature checked with the partner's certificate (never one the
message brings), and the payload is submitted to the route. Only a stored payload gets a positive
receipt (with the MIC of what was signed); anything refused gets a negative receipt naming why
and nothing enters the route. When the bus cannot store now, the answer is 503 with Retry-After
and no receipt, so the partner sends again. A repeated Message-ID is stored once.
"""

from __future__ import annotations

from flask import Response, request

from adapters.as2 import mdn, smime
from adapters.as2.profile import Profile
from esb import push
from esb.errors import InputError
from esb.plugins import RawMessage, Source, SourceContext


class Refused(Exception):
    """A message refused with a negative receipt: `error` is the RFC 4130 name, the text the why."""

    def __init__(self, error: str, text: str):
        super().__init__(text)
        self.error = error


def unwrap(profile: Profile, headers, body: bytes) -> tuple[bytes, str, str]:
    """(payload, its content type, the MIC for the receipt) of an inbound AS2 request, or Refused."""
    sender, recipient = headers.get("AS2-From", "").strip('" '), headers.get("AS2-To", "").strip('" ')
    if sender != profile.as2_id or recipient != profile.our_as2_id:
        raise Refused("authentication-failed", f"unknown trading partner: AS2-From {sender!r} to AS2-To "
                      f"{recipient!r} is not the pair configured for this endpoint")
    content_type = headers.get("Content-Type", "")
    entity = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    if smime.is_enveloped(content_type):
        try:
            entity = smime.decrypt(body, profile.our_cert, profile.our_key)
        except smime.SmimeError as error:
            raise Refused("decryption-failed", str(error)) from None
    elif profile.require_encrypted:
        raise Refused("insufficient-message-security", "the message is not encrypted and this partner's "
                      "profile requires it")
    try:
        part_headers, part_body = smime.split_part(entity)
    except smime.SmimeError as error:
        raise Refused("decryption-failed", f"the decrypted content is no MIME part: {error}") from None
    part_type = part_headers.get("content-type", "")
    if part_type.lower().startswith("multipart/signed"):
        try:
            entity, mic = smime.verify(part_body, part_type, profile.partner_cert)
            part_headers, part_body = smime.split_part(entity)
        except smime.SmimeError as error:
            raise Refused("authentication-failed", str(error)) from None
    elif profile.require_signed:
        raise Refused("insufficient-message-security", "the message is not signed and this partner's "
                      "profile requires it")
    else:
        mic = smime.mic(entity, profile.digest)
    return part_body, part_headers.get("content-type", "application/octet-stream"), mic


class As2Source(Source):
    """An AS2 endpoint for one partner, `POST /as2/<partner>`, answering synchronous receipts."""

    def __init__(self, profile: Profile, route: str):
        self.profile = profile
        self.route = route

    def start(self, context: SourceContext) -> None:
        self._submit = context.submit
        context.add_url_rule(f"/as2/{self.profile.name}", endpoint=f"as2_{self.route}",
                             view_func=self._receive, methods=["POST"])

    def _receive(self):
        message_id = request.headers.get("Message-ID", "").strip()
        try:
            body = push.read_body(request, self.profile.max_body_bytes)
            if not message_id:
                raise Refused("unexpected-processing-error", "the request has no Message-ID header")
            payload, content_type, mic = unwrap(self.profile, request.headers, body)
            metadata = {"sender": self.profile.name, "as2_message_id": message_id,
                        "remote": request.remote_addr}
            push.store(self._submit, RawMessage(payload, content_type, metadata), idempotency_key=message_id)
        except push.Refusal as refusal:
            return refusal.json_response()
        except Refused as refused:
            return self._receipt(message_id, None, refused.error, str(refused))
        except InputError as error:
            return self._receipt(message_id, None, "unexpected-processing-error",
                                 f"refused by the route: {error}")
        return self._receipt(message_id, mic, None, "")

    def _receipt(self, message_id: str, mic: str | None, error: str | None, text: str) -> Response:
        body, content_type = mdn.build(original_message_id=message_id, reporter=self.profile.our_as2_id,
                                       mic=mic, error=error, text=text)
        if "pkcs7-signature" in request.headers.get("Disposition-Notification-Options", "").lower():
            body, content_type = mdn.sign(body, content_type, self.profile.our_cert, self.profile.our_key,
                                          self.profile.digest)
        headers = {"AS2-Version": "1.2", "AS2-From": self.profile.our_as2_id, "AS2-To": self.profile.as2_id,
                   "Message-ID": f"<mdn-{message_id.strip('<>')}>"}
        return Response(body, status=200, content_type=content_type, headers=headers)
