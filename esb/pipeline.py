"""The route pipeline of DESIGN.md, without the broker or any adapter:

- inbound: raw payload -> decode -> map -> validate -> filter -> envelopes (then the runtime
  publishes them, confirmed, to every destination);
- outbound: envelope -> map to the target format -> bytes for the sink.

Input problems raise `esb.errors.InputError` subclasses that list every problem found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath

from esb import jsonfmt
from esb.envelope import Envelope
from esb.errors import DecodeError, FieldProblem, InputError, ValidationError
from esb.routes import Destination, Route

DOCUMENT_NUMBER_FIELDS = {
    "item": "sku",
    "purchase_order": "order_number",
    "inbound_notice": "notice_number",
    "goods_receipt": "receipt_number",
    "shipment_order": "order_number",
    "shipment_confirmation": "shipment_number",
    "inventory_snapshot": "snapshot_id",
    "inventory_adjustment": "adjustment_number",
    "stock_count": "count_number",
}
"""The business document number of each canonical type: the default correlation id and,
with the source and revision, the default idempotency key."""

OCCURRED_AT_FIELDS = ("occurred_at", "received_at", "shipped_at", "counted_at", "as_of")
"""Payload fields that give the business time of a document, first found wins."""


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """An envelope ready to publish, and the destinations whose filters it passed."""

    envelope: Envelope
    destinations: tuple[str, ...]


class InboundPipeline:
    """decode -> map -> validate -> filter for one route; publishing is the caller's job.

    `mapping` is an `esb.mapping.Mapping` (or None: the input is already a canonical payload in
    JSON); `validate(type, payload, version)` raises `ValidationError` (a SchemaRegistry's).
    """

    def __init__(self, route: Route, *, mapping: Any | None, validate: Callable[..., None], source: str):
        self.route = route
        self.mapping = mapping
        self.validate = validate
        self.source = source
        self._route_filter = jmespath.compile(route.filter) if route.filter else None
        self._destination_filters = {
            d.name: jmespath.compile(d.filter) if d.filter else None for d in route.destinations
        }

    def prepare(self, body: bytes, *, idempotency_key: str | None = None) -> list[PreparedMessage]:
        """Every message the input makes, in order; raises InputError before anything is published,
        so an input is taken whole or not at all. A message that no filter lets through has no
        destinations: it is accepted (and traced as filtered), not published."""
        documents = self._decode_and_map(body)
        prepared, problems = [], []
        for index, payload in enumerate(documents):
            try:
                if self.route.validate:
                    self.validate(self.route.validate, payload, self.route.schema_version)
            except InputError as error:
                problems.extend(_prefixed(error.problems, index, len(documents)) or
                                [FieldProblem(f"[{index}]", error.message)])
                continue
            envelope = self._envelope(payload, idempotency_key, index, len(documents))
            prepared.append(PreparedMessage(envelope, self._destinations_for(envelope)))
        if problems:
            raise ValidationError(f"not a valid {self.route.validate}", problems)
        return prepared

    def _decode_and_map(self, body: bytes) -> list[dict]:
        if self.mapping is not None:
            return list(self.mapping.run(body))
        try:
            document = jsonfmt.loads(body)
        except ValueError as error:
            raise DecodeError(f"not valid JSON: {error}") from None
        return document if isinstance(document, list) else [document]

    def _envelope(self, payload: dict, idempotency_key: str | None, index: int, count: int) -> Envelope:
        mapped_type = self.mapping.canonical_type if self.mapping else None
        message_type = self.route.validate or mapped_type or "unknown"
        number = payload.get(DOCUMENT_NUMBER_FIELDS.get(message_type, ""))
        if idempotency_key and count > 1:
            idempotency_key = f"{idempotency_key}#{index}"
        elif not idempotency_key and number is not None:
            idempotency_key = f"{self.source}:{message_type}:{number}:{payload.get('revision', 0)}"
        occurred_at = next((payload[name] for name in OCCURRED_AT_FIELDS
                            if isinstance(payload.get(name), str) and "T" in payload[name]), None)
        return Envelope(type=message_type, payload=payload, source=self.source,
                        schema_version=self.route.schema_version,
                        correlation_id=str(number) if number is not None else None,
                        occurred_at=occurred_at, idempotency_key=idempotency_key)

    def _destinations_for(self, envelope: Envelope) -> tuple[str, ...]:
        view = envelope.to_dict()
        if self._route_filter is not None and not self._route_filter.search(view):
            return ()
        return tuple(name for name, condition in self._destination_filters.items()
                     if condition is None or condition.search(view))


class OutboundPipeline:
    """canonical payload -> the destination's format, as bytes and a content type."""

    def __init__(self, destination: Destination, *, mapping: Any | None):
        self.destination = destination
        self.mapping = mapping

    def render(self, envelope: Envelope) -> bytes:
        if self.mapping is None:
            return envelope.amqp_body()
        return self.mapping.encode(self.mapping.apply(envelope.payload))


def _prefixed(problems: list[FieldProblem], index: int, count: int) -> list[FieldProblem]:
    if count == 1:
        return problems
    return [FieldProblem(f"[{index}].{p.path}" if p.path else f"[{index}]", p.expected, p.got)
            for p in problems]

