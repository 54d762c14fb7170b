"""Certificates and keys for AS2: loading a partner's files, making a self-signed pair for tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEY_BITS = 2048
"""RSA key size of `make_pair` (bits)."""


def make_pair(name: str, *, days: int = 365, not_before: dt.datetime | None = None
              ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed certificate (CN=`name`, valid `days` days from `not_before`, default now) and
    its RSA key: for tests and for a first exchange with a partner, not for production."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def write_pair(cert: x509.Certificate, key, directory: Path, name: str) -> tuple[Path, Path]:
    """`<name>.crt` and `<name>.key` (PEM, key unencrypted and readable by the owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def load_certificate(path: str | Path) -> x509.Certificate:
    """A PEM or DER certificate file; ValueError naming the file when it is neither."""
    data = Path(path).read_bytes()
    try:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data \
            else x509.load_der_x509_certificate(data)
    except ValueError as error:
        raise ValueError(f"{path}: not a PEM or DER certificate ({error})") from None


def load_key(path: str | Path, password: str | None = None):
    """A PEM or DER private key file; ValueError naming the file when it cannot be read."""
    data = Path(path).read_bytes()
    secret = password.encode() if password else None
    try:
        return serialization.load_pem_private_key(data, secret) if b"-----BEGIN" in data \
            else serialization.load_der_private_key(data, secret)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a readable private key ({error})") from None
