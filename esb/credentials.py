"""API keys and bearer tokens with roles, for the inbound endpoints and the admin API.

Where they come from (never from routes.yaml):
- `ESB_API_KEYS`: entries separated by `;`, each `name:roles:key`, roles joined by `,`
  (`erp:sender=erp-po-to-wms:s3cret;ops:admin:t0ken`);
- `ESB_CREDENTIALS_FILE`: a YAML list of `{name, roles, key_sha256}` (the SHA-256 hex of the key,
  so the file holds no secret) or `{name, roles, key}`.

Roles: `admin`, `viewer`, `sender=<route>` (may post to that route), `sender=*` (to any route).
Keys are compared as SHA-256 digests with `hmac.compare_digest`, so timing tells nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROLES = ("admin", "viewer", "sender")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a key: its name (for logs and the audit trail) and roles."""

    name: str
    roles: frozenset[str]

    def may_send(self, route: str) -> bool:
        return f"sender={route}" in self.roles or "sender=*" in self.roles

    def has(self, role: str) -> bool:
        return role in self.roles or (role == "viewer" and "admin" in self.roles)


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class Credentials:
    """A set of keys (as digests) with the principal each one stands for."""

    def __init__(self, entries: list[tuple[bytes, Principal]] | None = None):
        self._entries = list(entries or [])

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key_digest: bytes, principal: Principal) -> None:
        self._entries.append((key_digest, principal))

    def anyone_may_send(self, route: str) -> bool:
        """True when at least one key has the role sender=<route> (or sender=*)."""
        return any(principal.may_send(route) for _, principal in self._entries)

    def identify(self, key: str | None) -> Principal | None:
        """The principal of `key`, or None. Every stored digest is compared, match or not."""
        if not key:
            return None
        presented = digest(key)
        found = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, presented) and found is None:
                found = principal
        return found

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        """Keys from `ESB_API_KEYS` and the file named by `ESB_CREDENTIALS_FILE`; ValueError names the
        bad entry (by position and name, never by key)."""
        credentials = cls()
        for position, entry in enumerate(filter(None, (e.strip() for e in
                                                       environ.get("ESB_API_KEYS", "").split(";"))), 1):
            parts = entry.split(":", 2)
            if len(parts) != 3 or not all(parts):
                raise ValueError(f"ESB_API_KEYS entry {position} is not name:roles:key")
            name, roles, key = parts
            roles = _roles(roles.split(","), f"ESB_API_KEYS entry {name}")
            credentials.add(digest(key), Principal(name, roles))
        path = environ.get("ESB_CREDENTIALS_FILE")
        if path:
            credentials._load_file(Path(path))
        return credentials

    def _load_file(self, path: Path) -> None:
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of {{name, roles, key_sha256}}")
        for position, entry in enumerate(entries, 1):
            where = f"{path}: entry {position}"
            if not isinstance(entry, dict) or "name" not in entry or "roles" not in entry:
                raise ValueError(f"{where}: needs name and roles")
            if "key_sha256" in entry:
                key_digest = bytes.fromhex(str(entry["key_sha256"]))
            elif "key" in entry:
                key_digest = digest(str(entry["key"]))
            else:
                raise ValueError(f"{where} ({entry['name']}): needs key_sha256 or key")
            self.add(key_digest, Principal(str(entry["name"]), _roles(entry["roles"], where)))


def _roles(roles: list[str], where: str) -> frozenset[str]:
    for role in roles:
        if role.split("=", 1)[0] not in ROLES or (role.startswith("sender") and "=" not in role):
            raise ValueError(f"{where}: unknown role {role!r}; use admin, viewer, sender=<route> or sender=*")
    return frozenset(roles)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of a request: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    authorization = headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return headers.get("X-API-Key") or None


def presented_key_of(environ: Mapping[str, Any]) -> str | None:
    """`presented_key` read from a WSGI environ: werkzeug's headers raise (and catch) an HTTP
    exception for every header a request lacks, which cost an inbound post 10 us (measured)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return environ.get("HTTP_X_API_KEY") or None
