"""S/MIME against an independent partner: the `openssl cms` command line signs, verifies,
encrypts and decrypts, so the two sides are not the same code."""

from __future__ import annotations

import subprocess

import pytest

from adapters.as2 import smime

PAYLOAD = b"ISA*00*          *00*          *ZZ*ACME           *ZZ*BUS            *~\r\nGS*SH~\r\n"
ENTITY = smime.mime_part(PAYLOAD, "application/edi-x12")


# `openssl cms -verify` reads the S/MIME input without -binary: with it, openssl's multipart
# reader keeps the CR of the CRLF that belongs to the boundary. Without it, openssl canonicalizes
# the signed part to CRLF line ends, which ENTITY already has, so the bytes checked are the same.


def run(openssl, *args, data: bytes = b"") -> bytes:
    done = subprocess.run([openssl, "cms", *args], input=data, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_our_signature_verifies_with_openssl_cms(openssl, pairs, tmp_path):
    cert, key, cert_path, _ = pairs["bus"]
    body, content_type = smime.sign(ENTITY, cert, key)
    message = tmp_path / "signed.eml"
    message.write_bytes(f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)

    out = run(openssl, "-verify", "-in", str(message), "-inform", "SMIME", "-noverify",
              "-certfile", str(cert_path), "-signer", str(tmp_path / "signer.pem"))

    assert out == ENTITY
    assert (tmp_path / "signer.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE")


@pytest.mark.parametrize("eol", [["-crlfeol"], []], ids=["crlf", "lf"])
def test_an_openssl_signed_message_verifies_here_with_the_mic_of_the_signed_part(openssl, pairs, tmp_path,
                                                                                eol):
    cert, _, cert_path, key_path = pairs["acme"]
    (tmp_path / "part").write_bytes(ENTITY)
    signed = run(openssl, "-sign", "-binary", *eol, "-md", "sha256", "-in", str(tmp_path / "part"),
                 "-signer", str(cert_path), "-inkey", str(key_path), "-outform", "SMIME")
    headers, body = smime.split_part(signed)

    content, mic = smime.verify(body, headers["content-type"], cert)

    assert content == ENTITY
    assert mic == smime.mic(ENTITY, "sha256")


def test_a_changed_body_is_refused(pairs):
    cert, key, *_ = pairs["acme"]
    body, content_type = smime.sign(ENTITY, cert, key)

    with pytest.raises(smime.SmimeError, match="does not match the content"):
        smime.verify(body.replace(b"ACME", b"EVIL", 1), content_type, cert)


def test_a_signature_by_another_certificate_is_refused(pairs):
    other_cert, other_key, *_ = pairs["other"]
    body, content_type = smime.sign(ENTITY, other_cert, other_key)

    with pytest.raises(smime.SmimeError, match="partner's certificate"):
        smime.verify(body, content_type, pairs["acme"][0])


def test_a_signature_checked_with_an_expired_certificate_is_refused(pairs):
    cert, key, *_ = pairs["expired"]
    body, content_type = smime.sign(ENTITY, cert, key)

    with pytest.raises(smime.SmimeError, match="expired on"):
        smime.verify(body, content_type, cert)


def test_a_message_that_is_not_multipart_signed_is_refused(pairs):
    with pytest.raises(smime.SmimeError, match="not a multipart/signed"):
        smime.verify(PAYLOAD, "application/edi-x12", pairs["acme"][0])


def test_what_we_encrypt_openssl_decrypts(openssl, pairs, tmp_path):
    cert, _, cert_path, key_path = pairs["acme"]
    (tmp_path / "enc.der").write_bytes(smime.encrypt(ENTITY, cert))

    out = run(openssl, "-decrypt", "-binary", "-inform", "DER", "-in", str(tmp_path / "enc.der"),
              "-recip", str(cert_path), "-inkey", str(key_path))

    assert out == ENTITY


@pytest.mark.parametrize("cipher", ["-aes-256-cbc", "-aes-128-cbc"])
def test_what_openssl_encrypts_we_decrypt(openssl, pairs, tmp_path, cipher):
    cert, key, cert_path, _ = pairs["bus"]
    (tmp_path / "part").write_bytes(ENTITY)
    der = run(openssl, "-encrypt", "-binary", cipher, "-in", str(tmp_path / "part"), "-outform", "DER",
              str(cert_path))

    assert smime.decrypt(der, cert, key) == ENTITY


def test_a_message_for_another_certificate_cannot_be_decrypted(pairs):
    der = smime.encrypt(ENTITY, pairs["other"][0])

    with pytest.raises(smime.SmimeError, match="cannot be decrypted"):
        smime.decrypt(der, pairs["bus"][0], pairs["bus"][1])


def test_sign_then_encrypt_round_trips_through_openssl_both_ways(openssl, pairs, tmp_path):
    bus_cert, bus_key, bus_cert_path, _ = pairs["bus"]
    acme_cert, _, acme_cert_path, acme_key_path = pairs["acme"]
    body, content_type = smime.sign(ENTITY, bus_cert, bus_key)
    signed_entity = f"Content-Type: {content_type}\r\n\r\n".encode() + body
    (tmp_path / "enc.der").write_bytes(smime.encrypt(signed_entity, acme_cert))

    decrypted = run(openssl, "-decrypt", "-binary", "-inform", "DER", "-in", str(tmp_path / "enc.der"),
                    "-recip", str(acme_cert_path), "-inkey", str(acme_key_path))
    (tmp_path / "signed.eml").write_bytes(decrypted)
    verified = run(openssl, "-verify", "-inform", "SMIME", "-in", str(tmp_path / "signed.eml"),
                   "-noverify", "-certfile", str(bus_cert_path))

    assert decrypted == signed_entity
    assert verified == ENTITY


def test_the_mic_is_base64_of_the_digest_and_its_name():
    assert smime.mic(b"abc", "sha-256") == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=, sha256"
    assert smime.micalg("sha256") == "sha-256"
