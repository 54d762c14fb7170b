"""Asynchronous receipts for what we send: the endpoint the partner posts them to, and the wait.

`POST /as2/<partner>/mdn` takes a receipt, checks its signature with the partner's certificate,
finds the message it answers among those waiting (`receipt_store`) and records whether it makes
that delivery good: processed, without error, with the MIC we computed. A receipt that does not
verify, or that answers no waiting message, is answered 400 or 404 with the reason and changes
nothing. The sink waits for that record (`wait_for_receipt`), at most the profile's `mdn_timeout`.
"""

from __future__ import annotations

import time

from flask import Response, request

from adapters.as2 import mdn, smime
from adapters.as2.profile import Profile
from adapters.as2.receipt_store import ReceiptStore
from esb import push
from esb.errors import Retryable

POLL = 0.2
"""Seconds between two looks of a waiting sink at its message's receipt."""


def endpoint_name(profile: Profile) -> str:
    return f"as2_mdn_{profile.name}"


def mount(add_url_rule, profile: Profile, store: ReceiptStore) -> None:
    """Mount `POST /as2/<partner>/mdn` on the app of `add_url_rule`, once per partner (several
    routes may send to one partner; they share the store)."""
    app = getattr(add_url_rule, "__self__", None)
    if app is not None and endpoint_name(profile) in app.view_functions:
        return
    add_url_rule(f"/as2/{profile.name}/mdn", endpoint=endpoint_name(profile),
                 view_func=lambda: receive(profile, store), methods=["POST"])


def verdict(profile: Profile, receipt: mdn.Mdn, mic: str) -> tuple[bool, str]:
    """(does the receipt make the delivery good, the sentence for the trace)."""
    if not receipt.processed:
        return False, (f"AS2 receipt from {profile.name} is negative: {receipt.disposition} "
                       f"({receipt.text})")
    if not mdn.same_mic(receipt.mic, mic):
        return False, f"AS2 receipt MIC {receipt.mic!r} is not the MIC we sent, {mic!r}"
    return True, f"asynchronous MDN {receipt.original_message_id} processed, MIC {receipt.mic}"


def receive(profile: Profile, store: ReceiptStore) -> Response:
    try:
        body = push.read_body(request, profile.max_body_bytes)
    except push.Refusal as refusal:
        return refusal.json_response()
    try:
        receipt = mdn.parse(body, request.headers.get("Content-Type", ""), profile.partner_cert)
    except smime.SmimeError as error:
        return push.error_response(400, "bad_receipt", f"the receipt is refused: {error}")
    if profile.mdn == "signed" and not receipt.signed:
        return push.error_response(400, "bad_receipt", f"the receipt is not signed; the profile of "
                                   f"{profile.name} asks for signed receipts")
    pending = store.pending(receipt.original_message_id)
    if pending is None:
        return push.error_response(404, "unknown_message", f"no message {receipt.original_message_id!r} "
                                   "sent to this partner waits for a receipt")
    ok, detail = verdict(profile, receipt, pending.mic)
    store.received(receipt.original_message_id, ok=ok, detail=detail)
    return Response(b"", status=200)


def wait_for_receipt(store: ReceiptStore, profile: Profile, message_id: str, *,
                     stopping=None) -> str:
    """The trace sentence of the good receipt of `message_id`; Retryable when a bad one came or
    none within `mdn_timeout` seconds (the message is then sent again by the retry policy)."""
    deadline = time.monotonic() + profile.mdn_timeout
    while time.monotonic() < deadline:
        pending = store.pending(message_id)
        if pending is not None and pending.ok is not None:
            if pending.ok:
                return pending.detail
            raise Retryable(pending.detail)
        if stopping is not None and stopping.wait(POLL):
            raise Retryable(f"the bus stopped while {message_id} waited for its asynchronous AS2 receipt")
        if stopping is None:
            time.sleep(POLL)
    raise Retryable(f"no asynchronous AS2 receipt from {profile.name} for {message_id} within "
                    f"{profile.mdn_timeout:g} s (asked at {profile.mdn_url})")
