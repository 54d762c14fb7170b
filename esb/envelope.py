"""The canonical message envelope: built, serialised and parsed here and nowhere else.

On the wire (AMQP) the body is the payload as JSON and the other fields travel as message
properties and `esb-*` headers, so a plain AMQP client can read either without the bus.
"""

from __future__ import annotations

import os
import random
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from esb import jsonfmt

CONTENT_TYPE = "application/json"

# AMQP header names of the envelope fields that have no AMQP property of their own.
H_SCHEMA_VERSION = "esb-schema-version"
H_CAUSATION_ID = "esb-causation-id"
H_SOURCE = "esb-source"
H_OCCURRED_AT = "esb-occurred-at"
H_RECEIVED_AT = "esb-received-at"
H_IDEMPOTENCY_KEY = "esb-idempotency-key"
ENVELOPE_HEADERS = (H_SCHEMA_VERSION, H_CAUSATION_ID, H_SOURCE, H_OCCURRED_AT, H_RECEIVED_AT,
                    H_IDEMPOTENCY_KEY)


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def now_rfc3339() -> str:
    """The current time, RFC 3339 in UTC with an explicit offset and milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse_rfc3339(text: str) -> datetime:
    """A timezone-aware datetime from RFC 3339 text; ValueError when the offset is missing."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"time without an offset: {text!r}")
    return parsed


_ids = random.Random()  # seeded from os.urandom; seeded again in a forked child (below)
os.register_at_fork(after_in_child=_ids.seed)


def new_id() -> str:
    """A new message id: a random (version 4) UUID. uuid.uuid4() reads os.urandom on every call,
    which gives up the GIL and waits to get it back behind the other threads (measured: 70 us a
    message on the HTTP path under load); this draws the 122 bits from a generator seeded from
    os.urandom. Ids are unique, not secrets: nothing on the bus relies on guessing one being hard."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on the bus. `payload` is valid against `schemas/<type>.v<schema_version>.json`."""

    type: str
    payload: dict[str, Any]
    source: str
    id: str = field(default_factory=new_id)
    schema_version: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None
    occurred_at: str | None = None
    received_at: str = field(default_factory=now_rfc3339)
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if not _UUID.match(self.id):  # a regex: a fifth of uuid.UUID()'s cost, on every message
            raise ValueError(f"id is not a UUID: {self.id!r}")
        if not isinstance(self.schema_version, int) or self.schema_version < 1:
            raise ValueError(f"schema_version must be an integer >= 1, got {self.schema_version!r}")
        for name in ("occurred_at", "received_at"):
            value = getattr(self, name)
            if value is not None:
                parse_rfc3339(value)

    def derive(self, **changes: Any) -> Envelope:
        """A new message made from this one: new id, causation_id = this id, same correlation."""
        base = {"id": new_id(), "causation_id": self.id, "received_at": now_rfc3339()}
        return replace(self, **{**base, **changes})

    # --- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "schema_version": self.schema_version,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "source": self.source,
            "occurred_at": self.occurred_at,
            "received_at": self.received_at,
            "idempotency_key": self.idempotency_key,
            "payload": self.payload,
        }

    def to_json(self) -> str:
        return jsonfmt.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        missing = [name for name in ("type", "payload", "source") if name not in data]
        if missing:
            raise ValueError(f"envelope lacks {', '.join(missing)}")
        known = {name: data[name] for name in _FIELDS if name in data and data[name] is not None}
        return cls(**known)

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        return cls.from_dict(jsonfmt.loads(text))

    # --- AMQP -------------------------------------------------------------------------------
    def amqp_body(self) -> bytes:
        return jsonfmt.dump_bytes(self.payload)

    def amqp_headers(self) -> dict[str, Any]:
        """The `esb-*` headers; combine with `amqp_properties()` for pika.BasicProperties."""
        headers: dict[str, Any] = {H_SCHEMA_VERSION: self.schema_version, H_SOURCE: self.source,
                                   H_RECEIVED_AT: self.received_at}
        for name, value in ((H_CAUSATION_ID, self.causation_id), (H_OCCURRED_AT, self.occurred_at),
                            (H_IDEMPOTENCY_KEY, self.idempotency_key)):
            if value is not None:
                headers[name] = value
        return headers

    def amqp_properties(self) -> dict[str, Any]:
        """Keyword arguments for pika.BasicProperties (the transport adds delivery_mode etc.)."""
        return {
            "message_id": self.id,
            "correlation_id": self.correlation_id,
            "type": self.type,
            "content_type": CONTENT_TYPE,
            "headers": self.amqp_headers(),
        }

    @classmethod
    def from_amqp(cls, properties: Any, body: bytes) -> Envelope:
        """Rebuild from pika BasicProperties (or anything with the same attributes) and body."""
        headers = getattr(properties, "headers", None) or {}

        def text(name: str) -> str | None:
            value = headers.get(name)
            return value.decode() if isinstance(value, bytes) else value

        return cls(
            id=properties.message_id,
            type=properties.type,
            correlation_id=properties.correlation_id,
            payload=jsonfmt.loads(body),
            schema_version=int(headers.get(H_SCHEMA_VERSION, 1)),
            causation_id=text(H_CAUSATION_ID),
            source=text(H_SOURCE) or "",
            occurred_at=text(H_OCCURRED_AT),
            received_at=text(H_RECEIVED_AT) or now_rfc3339(),
            idempotency_key=text(H_IDEMPOTENCY_KEY),
        )


_FIELDS = ("id", "type", "schema_version", "correlation_id", "causation_id", "source",
           "occurred_at", "received_at", "idempotency_key", "payload")
