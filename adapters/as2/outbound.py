"""The AS2 sink: sign, encrypt, POST to the partner, and count it delivered only on a good receipt.

Delivered means a receipt that verifies with the partner's certificate (when the profile asks
for signed receipts), answers our Message-ID, says `processed` without error and carries the MIC
we computed over what we signed. Anything else (no answer, an HTTP error, no receipt, a negative
one, a wrong MIC) is Retryable: the retry policy tries again, then dead-letters the message.

With `mdn_url` in the profile the receipt is asked for asynchronously (`Receipt-Delivery-Option`):
the message's Message-ID and MIC are kept as pending (`receipt_store`) before it is sent, the
partner's HTTP answer only says it took the message, and the delivery is done when the receipt
arrived at `POST /as2/<partner>/mdn` (`async_receipts`) and passed the same checks. The consumer
waits for it (at most `mdn_timeout`, a retryable failure then); a redelivered message whose good
receipt already came is done without being sent again.
"""

from __future__ import annotations

import threading

import requests

from adapters.as2 import async_receipts, mdn, smime
from adapters.as2.profile import Profile
from adapters.as2.receipt_store import ReceiptStore
from esb.errors import Permanent, Retryable
from esb.plugins import Sink


class As2Sink(Sink):
    """One AS2 message per bus message to the partner's `url`, synchronous receipt."""

    def __init__(self, profile: Profile):
        if not profile.url:
            raise Permanent(f'partner "{profile.name}" has no url: in systems.{profile.name}.as2')
        self.profile = profile
        self._session = requests.Session()
        self._store: ReceiptStore | None = None
        self._closing = threading.Event()

    def bind_state(self, target: str) -> None:
        """Where pending asynchronous receipts are kept (the runtime's state database)."""
        if self.profile.mdn_url:
            self._store = ReceiptStore(target)

    def bind_endpoints(self, add_url_rule) -> None:
        if self.profile.mdn_url:
            async_receipts.mount(add_url_rule, self.profile, self._store)

    def package(self, message_id: str, body: bytes, content_type: str) -> tuple[bytes, dict[str, str], str]:
        """The request body, its headers and the MIC a receipt must carry."""
        profile = self.profile
        entity = smime.mime_part(body, content_type)
        mic = smime.mic(entity, profile.digest)
        if profile.sign:
            signed, signed_type = smime.sign(entity, profile.our_cert, profile.our_key, profile.digest)
            entity = f"Content-Type: {signed_type}\r\n\r\n".encode() + signed
        if profile.encrypt:
            data = smime.encrypt(entity, profile.partner_cert, profile.cipher)
            data_type = smime.ENVELOPED_TYPE
        else:
            headers, data = smime.split_part(entity)
            data_type = headers["content-type"]
        headers = {"AS2-Version": "1.2", "AS2-From": profile.our_as2_id, "AS2-To": profile.as2_id,
                   "Message-ID": message_id, "Content-Type": data_type, "MIME-Version": "1.0",
                   "Content-Transfer-Encoding": "binary", "Disposition-Notification-To": profile.our_as2_id}
        if profile.mdn == "signed":
            headers["Disposition-Notification-Options"] = (
                "signed-receipt-protocol=optional, pkcs7-signature; "
                f"signed-receipt-micalg=optional, {smime.micalg(profile.digest)}")
        if profile.mdn_url:
            headers["Receipt-Delivery-Option"] = profile.mdn_url
        return data, headers, mic

    def deliver(self, envelope, body: bytes, content_type: str) -> str | None:
        message_id = f"<{envelope.id}@esb>"
        data, headers, mic = self.package(message_id, body, content_type)
        url = self.profile.url
        if self.profile.mdn_url:
            if self._store is None:
                raise Retryable("AS2 asynchronous receipts need the runtime's state store (bind_state)")
            pending = self._store.expect(message_id, self.profile.name, mic)
            if pending.ok:
                return f"{pending.detail} (came for an earlier attempt)"
        try:
            response = self._session.post(url, data=data, headers=headers, timeout=self.profile.timeout)
        except requests.RequestException as error:
            raise Retryable(f"AS2 POST {url}: {type(error).__name__}: {error}") from error
        if self.profile.mdn_url and 200 <= response.status_code < 300 and not response.content:
            return async_receipts.wait_for_receipt(self._store, self.profile, message_id,
                                                   stopping=self._closing)
        if response.status_code != 200:
            raise Retryable(f"AS2 POST {url} answered {response.status_code}: {response.text[:300]}")
        receipt = self.check_receipt(response.content, response.headers.get("Content-Type", ""),
                                     message_id, mic)
        return f"MDN {receipt.original_message_id} processed, MIC {receipt.mic}"

    def check_receipt(self, body: bytes, content_type: str, message_id: str, mic: str) -> mdn.Mdn:
        """The receipt when it makes the delivery good; Retryable saying what is wrong otherwise."""
        try:
            receipt = mdn.parse(body, content_type, self.profile.partner_cert)
        except smime.SmimeError as error:
            raise Retryable(f"AS2 receipt from {self.profile.name} refused: {error}") from None
        if self.profile.mdn == "signed" and not receipt.signed:
            raise Retryable(f"AS2 receipt from {self.profile.name} is not signed; the profile asks for a "
                            "signed one")
        if receipt.original_message_id != message_id:
            raise Retryable(f"AS2 receipt answers {receipt.original_message_id!r}, not {message_id!r}")
        if not receipt.processed:
            raise Retryable(f"AS2 receipt from {self.profile.name} is negative: {receipt.disposition} "
                            f"({receipt.text})")
        if not mdn.same_mic(receipt.mic, mic):
            raise Retryable(f"AS2 receipt MIC {receipt.mic!r} is not the MIC we sent, {mic!r}")
        return receipt

    def close(self) -> None:
        self._closing.set()
        self._session.close()
