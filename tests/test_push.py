"""The answers every push source gives the same way: 401/403, 413 and 503 (esb.push), on real
Flask requests."""

from __future__ import annotations

import io

import pytest
from flask import Flask

from esb import push
from esb.credentials import Credentials, Principal, digest
from esb.errors import Unavailable
from esb.plugins import Accepted, RawMessage

APP = Flask("test-push")


@pytest.fixture
def credentials() -> Credentials:
    keys = Credentials()
    keys.add(digest("erp-key"), Principal("erp", frozenset({"sender=po-in"})))
    return keys


def test_no_key_and_an_unknown_key_are_401_with_a_bearer_challenge(credentials):
    for key in (None, "", "guessed"):
        with pytest.raises(push.Refusal) as refused:
            push.authorize(credentials, "po-in", key)
        assert refused.value.status == 401 and refused.value.error == "unauthorized"
        assert refused.value.message == "a valid API key (X-API-Key) or bearer token is required"
        assert refused.value.headers == {"WWW-Authenticate": 'Bearer realm="esb"'}


def test_a_key_without_the_sender_role_of_the_route_is_403_naming_who_and_what(credentials):
    with pytest.raises(push.Refusal) as refused:
        push.authorize(credentials, "gr-in", "erp-key", action="call")
    assert refused.value.status == 403 and refused.value.message == '"erp" may not call route "gr-in"'


def test_a_key_with_the_sender_role_gets_its_principal(credentials):
    assert push.authorize(credentials, "po-in", "erp-key").name == "erp"


def test_a_body_whose_content_length_is_over_the_limit_is_refused_without_reading_it():
    stream = io.BytesIO(b"x" * 11)
    with APP.test_request_context("/", method="POST", input_stream=stream, content_length=11):
        from flask import request

        with pytest.raises(push.Refusal) as refused:
            push.read_body(request, 10)
    assert refused.value.status == 413 and refused.value.error == "too_large"
    assert refused.value.message == "the body is larger than the limit of 10 bytes"
    assert stream.tell() == 0


def test_a_body_sent_without_a_length_is_cut_at_the_limit_and_refused():
    with APP.test_request_context("/", method="POST", input_stream=io.BytesIO(b"x" * 50),
                                  headers={"Transfer-Encoding": "chunked"},
                                  environ_overrides={"wsgi.input_terminated": True}):  # as waitress says
        from flask import request

        with pytest.raises(push.Refusal, match="the request is larger than the limit of 10 bytes"):
            push.read_body(request, 10, what="request")


def test_a_body_at_the_limit_is_read_whole():
    with APP.test_request_context("/", method="POST", data=b"x" * 10):
        from flask import request

        assert push.read_body(request, 10) == b"x" * 10


def test_when_the_bus_cannot_store_the_answer_is_503_with_retry_after():
    def submit(raw, *, idempotency_key=None):
        raise Unavailable("publish not confirmed")

    with pytest.raises(push.Refusal) as refused:
        push.store(submit, RawMessage(b"{}"), idempotency_key=None, advice=", try again later")
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
    assert refused.value.message == ("the bus cannot store the message now, try again later: "
                                     "publish not confirmed")


def test_a_stored_message_is_returned_as_the_submit_answered_it():
    accepted = Accepted(("id-1",))
    stored = push.store(lambda raw, *, idempotency_key: accepted, RawMessage(b"{}"), idempotency_key="k")
    assert stored is accepted


def test_a_refusal_as_json_carries_its_status_word_sentence_and_headers():
    with APP.app_context():
        response = push.Refusal(503, "unavailable", "not now", {"Retry-After": "5"}).json_response()
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.get_json() == {"error": "unavailable", "message": "not now"}
