"""What the AS2 sink accepts as a receipt: one function, `As2Sink.check_receipt`, on built receipts."""

from __future__ import annotations

import pytest

from adapters.as2 import mdn, smime
from adapters.as2.outbound import As2Sink
from adapters.as2.profile import load
from esb.errors import Retryable

MESSAGE_ID = "<m-1@esb>"
MIC = smime.mic(b"what we signed")


@pytest.fixture
def sink(pairs):
    profile = load("acme", {"as2_id": "ACME", "our_as2_id": "BUS", "url": "http://127.0.0.1:9/as2",
                            "partner_cert": str(pairs["acme"][2]), "our_cert": str(pairs["bus"][2]),
                            "our_key": str(pairs["bus"][3])})
    return As2Sink(profile)


def receipt(pairs, *, signer: str = "acme", signed: bool = True, **fields):
    options = {"original_message_id": MESSAGE_ID, "reporter": "ACME", "mic": MIC, **fields}
    body, content_type = mdn.build(**options)
    if signed:
        body, content_type = mdn.sign(body, content_type, pairs[signer][0], pairs[signer][1])
    return body, content_type


def test_a_signed_positive_receipt_with_our_mic_is_accepted(sink, pairs):
    checked = sink.check_receipt(*receipt(pairs), MESSAGE_ID, MIC)

    assert checked.processed and checked.signed and checked.mic == MIC


@pytest.mark.parametrize(("case", "fields", "why"), [
    ("negative", {"error": "decryption-failed", "text": "no key"}, "is negative"),
    ("another message", {"original_message_id": "<other@esb>"}, "not '<m-1@esb>'"),
    ("another MIC", {"mic": smime.mic(b"else")}, "is not the MIC we sent"),
    ("no MIC", {"mic": None}, "is not the MIC we sent"),
    ("unsigned", {"signed": False}, "is not signed"),
    ("signed by someone else", {"signer": "other"}, "partner's certificate"),
])
def test_any_other_receipt_is_retryable_saying_why(sink, pairs, case, fields, why):
    body, content_type = receipt(pairs, **fields)

    with pytest.raises(Retryable, match=why):
        sink.check_receipt(body, content_type, MESSAGE_ID, MIC)


def test_an_answer_that_is_no_receipt_is_retryable(sink):
    with pytest.raises(Retryable, match="not a receipt"):
        sink.check_receipt(b"<html>ok</html>", "text/html", MESSAGE_ID, MIC)
