"""The AS2 push source: `POST /as2/<partner>` checks, decrypts, stores, then answers a receipt.

The order of an exchange: the sender's AS2-From/AS2-To must be the profile's ids, the body is
decrypted with our key, its signature checked with the partner's certificate (never one the
message brings), and the payload is submitted to the route. Only a stored payload gets a positive
receipt (with the MIC of what was signed); anything refused gets a negative receipt naming why
and nothing enters the route. When the bus cannot store now, the answer is 503 with Retry-After
and no receipt, so the partner sends again. A repeated Message-ID is stored once.

An asynchronous receipt is kept in the outbox (`receipt_store`) before the request is answered,
so it is sent even if the bus stops right after; a refused message gets its negative receipt the
same way. Its sending (`receipt_sender`) is written into the trace of the stored messages.
"""

from __future__ import annotations

import logging

from flask import Response, request

from adapters.as2 import mdn, smime
from adapters.as2.profile import Profile
from adapters.as2.receipt_sender import ReceiptSender
from adapters.as2.receipt_store import ReceiptStore
from esb import push
from esb.errors import InputError
from esb.plugins import RawMessage, Source, SourceContext

log = logging.getLogger("esb.adapters.as2")

STATE_FILE_NAME = "state.sqlite"
"""The store's file in the data directory when the runtime gives no state target (as the aggregator's)."""


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
    """An AS2 endpoint for one partner, `POST /as2/<partner>`, answering receipts synchronously, or
    asynchronously where the request (`Receipt-Delivery-Option`) or the profile (`partner_mdn_url`)
    asks: then the receipt is stored in the outbox before the request is answered (200, no body),
    and `ReceiptSender` posts it to the partner's URL."""

    def __init__(self, profile: Profile, route: str):
        self.profile = profile
        self.route = route
        self._store: ReceiptStore | None = None
        self._sender: ReceiptSender | None = None

    def bind_state(self, target: str) -> None:
        self._store = ReceiptStore(target)

    def start(self, context: SourceContext) -> None:
        self._submit = context.submit
        context.add_url_rule(f"/as2/{self.profile.name}", endpoint=f"as2_{self.route}",
                             view_func=self._receive, methods=["POST"])
        if self._store is None:
            self._store = ReceiptStore(context.data_dir / STATE_FILE_NAME)
        self._sender = ReceiptSender(self._store, self.route, timeout=self.profile.timeout,
                                     trace=context.trace).start()

    def stop(self) -> None:
        if self._sender is not None:
            self._sender.stop()

    def _receive(self):
        message_id = request.headers.get("Message-ID", "").strip()
        accepted_ids: list[str] = []
        try:
            body = push.read_body(request, self.profile.max_body_bytes)
            if not message_id:
                raise Refused("unexpected-processing-error", "the request has no Message-ID header")
            payload, content_type, mic = unwrap(self.profile, request.headers, body)
            metadata = {"sender": self.profile.name, "as2_message_id": message_id,
                        "remote": request.remote_addr}
            accepted = push.store(self._submit, RawMessage(payload, content_type, metadata),
                                  idempotency_key=message_id)
            accepted_ids = list(accepted.message_ids)
        except push.Refusal as refusal:
            return refusal.json_response()
        except Refused as refused:
            return self._receipt(message_id, None, refused.error, str(refused))
        except InputError as error:
            return self._receipt(message_id, None, "unexpected-processing-error",
                                 f"refused by the route: {error}")
        return self._receipt(message_id, mic, None, "", accepted_ids)

    def _receipt(self, message_id: str, mic: str | None, error: str | None, text: str,
                 message_ids: list[str] | None = None) -> Response:
        body, content_type = mdn.build(original_message_id=message_id, reporter=self.profile.our_as2_id,
                                       mic=mic, error=error, text=text)
        if "pkcs7-signature" in request.headers.get("Disposition-Notification-Options", "").lower():
            body, content_type = mdn.sign(body, content_type, self.profile.our_cert, self.profile.our_key,
                                          self.profile.digest)
        headers = {"AS2-Version": "1.2", "AS2-From": self.profile.our_as2_id, "AS2-To": self.profile.as2_id,
                   "Message-ID": f"<mdn-{message_id.strip('<>')}>"}
        url = request.headers.get("Receipt-Delivery-Option", "").strip() or self.profile.partner_mdn_url
        if not url:
            return Response(body, status=200, content_type=content_type, headers=headers)
        if not url.lower().startswith(("http://", "https://")):
            return push.error_response(400, "bad_request", f"Receipt-Delivery-Option {url!r} is not an "
                                       "http:// or https:// URL; the receipt cannot be sent there")
        try:
            self._store.owe(self.route, url, {**headers, "Content-Type": content_type, "MIME-Version": "1.0"},
                            body, message_ids or [message_id])
        except Exception as failure:  # the payload is stored; the partner sends again and is answered
            log.warning("AS2 %s: cannot keep the asynchronous receipt for %s: %s", self.profile.name,
                        message_id, failure, extra={"route": self.route})
            return push.error_response(503, "unavailable", "the receipt cannot be kept now; send again",
                                       {"Retry-After": str(push.RETRY_AFTER_SECONDS)})
        self._sender.wake()
        return Response(b"", status=200, headers=headers)
