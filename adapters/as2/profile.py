"""A trading partner's AS2 profile: `systems.<partner>.as2` in routes.yaml, certificates from files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.as2 import smime
from adapters.as2.keys import load_certificate, load_key
from esb.durations import duration_option
from esb.plugins import body_limit_option, timeout_option

PROFILE_SCHEMA = {
    "type": "object",
    "description": "A trading partner reached over AS2: its id and certificate, ours, the algorithms.",
    "additionalProperties": False,
    "required": ["as2_id", "our_as2_id", "partner_cert", "our_cert", "our_key"],
    "properties": {
        "as2_id": {"type": "string", "minLength": 1, "description": "The partner's AS2 id (AS2-From of "
                   "what it sends, AS2-To of what we send)."},
        "our_as2_id": {"type": "string", "minLength": 1, "description": "Our AS2 id with this partner."},
        "url": {"type": ["string", "null"], "default": None, "pattern": "^https?://",
                "description": "The partner's AS2 endpoint (http:// or https://), for to: {as2: ...}."},
        "partner_cert": {"type": "string", "x-esb-path": True, "description": "The partner's certificate "
                         "(PEM or DER): checks its signatures and receipts, encrypts what we send."},
        "our_cert": {"type": "string", "x-esb-path": True, "description": "Our certificate (PEM or DER)."},
        "our_key": {"type": "string", "x-esb-path": True, "description": "Our private key (PEM or DER)."},
        "our_key_password": {"type": ["string", "null"], "default": None,
                             "description": "Password of our key; use a ${ENV} variable, never inline."},
        "digest": {"enum": sorted(smime.DIGESTS), "default": "sha256",
                   "description": "Digest of our signatures and MICs."},
        "cipher": {"enum": sorted(smime.CIPHERS), "default": "aes256-cbc",
                   "description": "Content encryption of what we send."},
        "sign": {"type": "boolean", "default": True, "description": "Sign what we send."},
        "encrypt": {"type": "boolean", "default": True, "description": "Encrypt what we send."},
        "require_signed": {"type": "boolean", "default": True,
                           "description": "Refuse (negative receipt) an inbound message that is not signed."},
        "require_encrypted": {"type": "boolean", "default": True,
                              "description": "Refuse (negative receipt) an inbound message that is not "
                                             "encrypted."},
        "mdn": {"enum": ["signed", "unsigned"], "default": "signed",
                "description": "The receipt we ask for when sending: signed (its signature is checked "
                               "with partner_cert) or unsigned."},
        "mdn_url": {"type": ["string", "null"], "default": None, "pattern": "^https?://",
                    "description": "Ask for asynchronous receipts, posted by the partner to this URL: the "
                                   "bus's POST /as2/<partner>/mdn as the partner reaches it. A message "
                                   "then counts as delivered only when its receipt arrived there "
                                   "(null: synchronous receipts, in the HTTP answer)."},
        "mdn_timeout": duration_option("Seconds (or a duration such as 5m) to wait for an asynchronous "
                                       "receipt; then the delivery is a retryable failure.", 300.0),
        "partner_mdn_url": {"type": ["string", "null"], "default": None, "pattern": "^https?://",
                            "description": "Send our receipts for what the partner sends asynchronously, to "
                                           "this URL, even when its request does not ask for it (a "
                                           "Receipt-Delivery-Option header in the request wins)."},
        "timeout": timeout_option(),
        "max_body_bytes": body_limit_option(),
    },
}


@dataclass(frozen=True)
class Profile:
    """A partner profile with its certificates loaded."""

    name: str
    options: dict[str, Any]
    partner_cert: Any
    our_cert: Any
    our_key: Any

    def __getattr__(self, option: str) -> Any:
        try:
            return self.options[option]
        except KeyError:
            raise AttributeError(option) from None


def load(name: str, options: dict[str, Any]) -> Profile:
    """The profile of partner `name` with its certificates and key read; ValueError naming the file."""
    full = {key: spec.get("default") for key, spec in PROFILE_SCHEMA["properties"].items()}
    full.update(options)
    return Profile(name, full, load_certificate(full["partner_cert"]), load_certificate(full["our_cert"]),
                   load_key(full["our_key"], full["our_key_password"]))


def check(options: dict[str, Any] | None) -> list[str]:
    """Sentences about the certificate files of a profile (missing, unreadable, expired)."""
    problems = []
    for option in ("partner_cert", "our_cert", "our_key"):
        path = (options or {}).get(option)
        if isinstance(path, str) and not Path(path).is_file():
            problems.append(f"{option}: file not found: {path}")
    if problems or not options:
        return problems
    try:
        profile = load("", options)
        smime.check_certificate(profile.partner_cert)
        smime.check_certificate(profile.our_cert)
    except (ValueError, smime.SmimeError) as error:
        problems.append(str(error))
    return problems
