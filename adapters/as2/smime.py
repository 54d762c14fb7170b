"""S/MIME for AS2 (RFC 4130, RFC 5751): detached multipart/signed, enveloped data, the MIC.

Built on `cryptography` (signing, enveloping, decrypting) and `asn1crypto` (reading a CMS
signature to check it): pyas2lib needs oscrypto 1.3.0, which does not load on OpenSSL 3.0.10+.

Signing and verifying work on exact bytes: the signed MIME part is never re-encoded, so a
partner's signature over its own bytes checks here, and ours checks with `openssl cms -verify
-binary`. A signature is checked against the partner's configured certificate only (never a
certificate the message brings), and that certificate must be valid now.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

DIGESTS = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
"""MIC/signature digests by their AS2 names (`micalg` is `sha-256` etc. on the wire)."""

CIPHERS = {"aes128-cbc": algorithms.AES128, "aes256-cbc": algorithms.AES256}
"""Content encryption algorithms `cryptography` can envelope with."""


class SmimeError(Exception):
    """A message that cannot be verified or decrypted; the text says why, for a negative MDN."""


def micalg(digest: str) -> str:
    """The `micalg` parameter of a multipart/signed for a digest name: sha256 -> sha-256."""
    return digest.replace("sha", "sha-", 1) if digest in DIGESTS else digest


def digest_name(value: str) -> str:
    """Our digest name for a `micalg` or MDN value: "SHA-256", "sha256" -> sha256."""
    name = value.strip().lower().replace("-", "")
    if name not in DIGESTS:
        raise SmimeError(f"unsupported digest {value!r}; supported: {', '.join(DIGESTS)}")
    return name


def mic(data: bytes, digest: str = "sha256") -> str:
    """The Message Integrity Check of an MDN: `base64(digest(data)), sha256` (RFC 4130 7.3.1)."""
    value = hashlib.new(digest_name(digest), data).digest()
    return f"{base64.b64encode(value).decode()}, {digest_name(digest)}"


def mime_part(body: bytes, content_type: str) -> bytes:
    """A MIME entity (headers, CRLF, body) carrying `body` unchanged (binary transfer encoding)."""
    return (f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: binary\r\n\r\n").encode() + body


def split_part(entity: bytes) -> tuple[dict[str, str], bytes]:
    """The headers (lower-case names) and the body of a MIME entity; the body is left as it is."""
    match = re.search(rb"\r?\n\r?\n", entity)
    if match is None:
        raise SmimeError("the MIME part has no blank line between headers and body")
    head, body = entity[:match.start()], entity[match.end():]
    headers: dict[str, str] = {}
    last = None
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t") and last:
            headers[last] += " " + line.strip().decode("latin-1")
        elif b":" in line:
            name, _, value = line.partition(b":")
            last = name.strip().lower().decode("latin-1")
            headers[last] = value.strip().decode("latin-1")
    return headers, body


def header_param(value: str, name: str) -> str | None:
    """A parameter of a header value: header_param('multipart/signed; boundary="b"', 'boundary') -> 'b'."""
    match = re.search(rf'(?:^|;)\s*{name}\s*=\s*(?:"([^"]*)"|([^;\s]+))', value, re.IGNORECASE)
    return None if match is None else (match.group(1) if match.group(1) is not None else match.group(2))


# --- signing and verifying ------------------------------------------------------------------

def sign(entity: bytes, cert: x509.Certificate, key, digest: str = "sha256") -> tuple[bytes, str]:
    """A multipart/signed body over `entity` (a MIME part) and its Content-Type header value."""
    signature = (pkcs7.PKCS7SignatureBuilder().set_data(entity)
                 .add_signer(cert, key, DIGESTS[digest_name(digest)]())
                 .sign(serialization.Encoding.DER,
                       [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    boundary = f"esb-{secrets.token_hex(12)}"
    body = b"".join([
        f"--{boundary}\r\n".encode(), entity, b"\r\n",
        f"--{boundary}\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=smime.p7s\r\n\r\n"
        .encode(),
        base64.encodebytes(signature).replace(b"\n", b"\r\n"),
        f"--{boundary}--\r\n".encode(),
    ])
    content_type = f'multipart/signed; protocol="application/pkcs7-signature"; ' \
                   f'micalg={micalg(digest_name(digest))}; boundary="{boundary}"'
    return body, content_type


def split_signed(body: bytes, content_type: str) -> tuple[bytes, bytes]:
    """The signed MIME part (exact bytes) and the DER signature of a multipart/signed body."""
    boundary = header_param(content_type, "boundary")
    if not content_type.lower().startswith("multipart/signed") or not boundary:
        raise SmimeError(f"not a multipart/signed message (Content-Type {content_type!r})")
    delimiter = re.escape(b"--" + boundary.encode())
    pieces = re.split(rb"(?:^|\r?\n)" + delimiter + rb"(?:--)?[ \t]*(?:\r?\n|$)", body)
    parts = [piece for piece in pieces[1:] if piece.strip()]
    if len(parts) != 2:
        raise SmimeError(f"a multipart/signed message has 2 parts, this one {len(parts)}")
    headers, signature = split_part(parts[1])
    if "pkcs7-signature" not in headers.get("content-type", "").lower():
        raise SmimeError("the second part of the multipart/signed is not an application/pkcs7-signature")
    try:
        der = signature if headers.get("content-transfer-encoding", "").lower() == "binary" \
            else base64.b64decode(signature, validate=False)
    except ValueError as error:
        raise SmimeError(f"the signature is not valid base64: {error}") from None
    return parts[0], der


def check_certificate(cert: x509.Certificate, now: dt.datetime | None = None) -> None:
    """SmimeError unless `cert` is valid at `now` (default: the current time)."""
    now = now or dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        raise SmimeError(f"certificate {cert.subject.rfc4514_string()} is not valid before "
                         f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if now > cert.not_valid_after_utc:
        raise SmimeError(f"certificate {cert.subject.rfc4514_string()} expired on "
                         f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")


def verify_detached(content: bytes, signature_der: bytes, cert: x509.Certificate) -> str:
    """Check a detached CMS signature over `content` with `cert` (the partner's); the digest name.
    SmimeError naming the reason otherwise."""
    check_certificate(cert)
    try:  # asn1crypto parses lazily: a malformed signature fails at any field access
        signer = _signer(cms.ContentInfo.load(signature_der))
        digest = digest_name(signer["digest_algorithm"]["algorithm"].native)
        attributes = signer["signed_attrs"]
        signed_bytes = content
        if attributes.native is not None and len(attributes):
            expected = next((item["values"][0].native for item in attributes
                             if item["type"].native == "message_digest"), None)
            if expected != hashlib.new(digest, content).digest():
                raise SmimeError("the signature does not match the content (message digest differs: "
                                 "the body was changed or signed by someone else)")
            signed_bytes = b"\x31" + attributes.dump()[1:]  # signed over the SET OF, not the [0] tag
        signature, algorithm = signer["signature"].native, signer["signature_algorithm"]["algorithm"].native
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise SmimeError(f"the signature is not a readable CMS SignedData: {error}") from None
    _check_signature(cert.public_key(), signature, signed_bytes, digest, algorithm)
    return digest


def _signer(info: cms.ContentInfo):
    if info["content_type"].native != "signed_data" or len(info["content"]["signer_infos"]) == 0:
        raise SmimeError("the signature is not a CMS SignedData with a signer")
    return info["content"]["signer_infos"][0]


def _check_signature(public_key, signature: bytes, data: bytes, digest: str, algorithm: str) -> None:
    hash_ = DIGESTS[digest]()
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            pad = padding.PSS(padding.MGF1(hash_), padding.PSS.AUTO) if algorithm == "rsassa_pss" \
                else padding.PKCS1v15()
            public_key.verify(signature, data, pad, hash_)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_))
        else:
            raise SmimeError(f"unsupported signer key type {type(public_key).__name__}")
    except InvalidSignature:
        raise SmimeError("the signature does not verify with the partner's certificate "
                         "(wrong certificate or changed message)") from None


def verify(body: bytes, content_type: str, cert: x509.Certificate) -> tuple[bytes, str]:
    """The signed MIME part of a multipart/signed message and the MIC over it (for the MDN),
    after checking the signature with `cert`."""
    content, signature = split_signed(body, content_type)
    digest = verify_detached(content, signature, cert)
    return content, mic(content, digest)


# --- enveloping -----------------------------------------------------------------------------

ENVELOPED_TYPE = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'


def encrypt(entity: bytes, cert: x509.Certificate, cipher: str = "aes256-cbc") -> bytes:
    """`entity` enveloped (DER) for the holder of `cert`; sent as ENVELOPED_TYPE, binary."""
    if cipher not in CIPHERS:
        raise SmimeError(f"unsupported cipher {cipher!r}; supported: {', '.join(CIPHERS)}")
    return (pkcs7.PKCS7EnvelopeBuilder().set_data(entity).add_recipient(cert)
            .set_content_encryption_algorithm(CIPHERS[cipher])
            .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


def decrypt(data: bytes, cert: x509.Certificate, key) -> bytes:
    """The MIME entity inside an enveloped message (DER, or base64 of DER)."""
    der = data if data[:1] == b"\x30" else _b64(data)
    try:
        return pkcs7.pkcs7_decrypt_der(der, cert, key, [])
    except (ValueError, UnsupportedAlgorithm) as error:
        raise SmimeError(f"the message cannot be decrypted with our certificate: {error}") from None


def is_enveloped(content_type: str) -> bool:
    lowered = content_type.lower()
    return "pkcs7-mime" in lowered and "signed-data" not in lowered


def _b64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except ValueError as error:
        raise SmimeError(f"the enveloped body is neither DER nor base64: {error}") from None
