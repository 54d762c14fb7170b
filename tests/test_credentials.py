"""Keys with roles, from the environment or a file holding only digests."""

from __future__ import annotations

import hashlib

import pytest

from esb.credentials import Credentials, presented_key


def test_a_sender_key_may_post_to_its_route_only():
    credentials = Credentials.from_environment({"ESB_API_KEYS": "erp:sender=erp-po:k1;ops:admin:k2"})
    erp = credentials.identify("k1")
    assert erp.name == "erp" and erp.may_send("erp-po") and not erp.may_send("other")
    assert not erp.has("admin")
    assert credentials.identify("k2").has("viewer")  # an admin may view
    assert credentials.identify("wrong") is None and credentials.identify(None) is None


def test_a_credentials_file_holds_digests_not_keys(tmp_path):
    path = tmp_path / "credentials.yaml"
    key_sha256 = hashlib.sha256(b"s3").hexdigest()
    path.write_text(f"- name: wms\n  roles: ['sender=*']\n  key_sha256: {key_sha256}\n")
    credentials = Credentials.from_environment({"ESB_CREDENTIALS_FILE": str(path)})
    assert credentials.identify("s3").may_send("any-route")


@pytest.mark.parametrize("value", ["erp:sender=x", "erp:root:SECRETKEY", "erp:sender:SECRETKEY"])
def test_a_bad_entry_is_named_without_its_key(value):
    with pytest.raises(ValueError) as error:
        Credentials.from_environment({"ESB_API_KEYS": value})
    assert "ESB_API_KEYS" in str(error.value) and "SECRETKEY" not in str(error.value)


def test_the_key_is_read_from_a_bearer_token_or_an_api_key_header():
    assert presented_key({"Authorization": "Bearer abc"}) == "abc"
    assert presented_key({"X-API-Key": "xyz"}) == "xyz"
    assert presented_key({"Authorization": "Basic Zm9v"}) is None
