"""The route pipeline of DESIGN.md, without the broker or any adapter:

- inbound: raw payload -> decode -> map -> split (esb.splitter, when the route has `split:`) ->
  validate -> filter -> envelopes (then the runtime
  publishes them, confirmed, to every destination);
- outbound: envelope -> map to the target format -> bytes for the sink.

Input problems raise `esb.errors.InputError` subclasses that list every problem found.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jmespath

from esb import jsonfmt
from esb.codecs import DEFAULT_MAX_DEPTH
from esb.envelope import Envelope, now_rfc3339
from esb.errors import DecodeError, FieldProblem, InputError, ValidationError
from esb.idempotency import Key, body_fingerprint
from esb.mapping.functions import SourceInfo
from esb.routes import Destination, Route
from esb.schemas import DocumentKeys, default_registry
from esb.splitter import split_document


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """An envelope ready to publish, the destinations whose filters it passed, and the keys it
    claims (its request key, its business key) so that a repeat of either is not sent twice."""

    envelope: Envelope
    destinations: tuple[str, ...]
    keys: tuple[Key, ...] = ()


class InboundPipeline:
    """decode -> map -> validate -> filter for one route; publishing is the caller's job.

    `mapping` is an `esb.mapping.Mapping` (or None: the input is already a canonical payload in
    JSON); `validate(type, payload, version)` raises `ValidationError` (a SchemaRegistry's).
    `document_keys(type, version)` says which payload fields hold the document number, revision and
    business time (a SchemaRegistry's, from the schema's annotations; default: the project's).
    """

    def __init__(self, route: Route, *, mapping: Any | None, validate: Callable[..., None], source: str,
                 document_keys: Callable[[str, int], DocumentKeys] | None = None):
        self.route = route
        self.mapping = mapping
        self.validate = validate
        self.source = source
        mapped_type = mapping.canonical_type if mapping is not None else None
        self.message_type = route.validate or mapped_type or "unknown"
        lookup = document_keys or default_registry().document_keys
        try:
            self.keys = lookup(self.message_type, route.schema_version)
        except LookupError:  # a type without a schema (never validated): no business keys to read
            self.keys = DocumentKeys()
        self._route_filter = jmespath.compile(route.filter) if route.filter else None
        self._destination_filters = {
            d.name: jmespath.compile(d.filter) if d.filter else None for d in route.destinations
        }

    def prepare(self, body: bytes, *, idempotency_key: str | None = None,
                business_key: str | None = None, metadata: dict[str, Any] | None = None,
                message_id: str | None = None) -> list[PreparedMessage]:
        """Every message the input makes, in order; raises InputError before anything is published,
        so an input is taken whole or not at all. A message that no filter lets through has no
        destinations: it is accepted (and traced as filtered), not published. ``metadata`` is the
        source's (`RawMessage.metadata`): the mapping's source_file() and source_line() read it.

        `idempotency_key` is the request's key (a client's header, a file's identity): it remembers
        the body's digest. `business_key` is a key the source read from the content. Each message
        also claims its own business key (source, type, document number, revision, and the part of
        a split document) when the payload has a document number; the envelope carries the first
        of them (the request's key, else the source's, else the document's).

        `message_id` (a UUID) is the id of the message when the input makes one, and the seed of
        the ids (`uuid5(message_id, index)`) when it makes several: a source that reads the same
        input again (a table row after a crash) then makes messages with the same ids."""
        received_at = now_rfc3339()
        documents = self._split(self._decode_and_map(body, SourceInfo.from_metadata(metadata, received_at)))
        fingerprint = body_fingerprint(body) if idempotency_key else None
        prepared, problems = [], []
        for index, (part, payload) in enumerate(documents):
            try:
                if self.route.validate:
                    self.validate(self.route.validate, payload, self.route.schema_version)
            except InputError as error:
                problems.extend(_prefixed(error.problems, index, len(documents)) or
                                [FieldProblem(f"[{index}]", error.message)])
                continue
            keys = self._keys(payload, idempotency_key, fingerprint, business_key, index, len(documents),
                              part)
            envelope = self._envelope(payload, keys[0].text if keys else None, received_at)
            if message_id is not None:
                envelope = replace(envelope, id=message_id if len(documents) == 1
                                   else str(uuid.uuid5(uuid.UUID(message_id), str(index))))
            prepared.append(PreparedMessage(envelope, self._destinations_for(envelope), keys))
        if problems:
            error = ValidationError(f"not a valid {self.route.validate}", problems)
            numbers = (self._document_number(document) for _part, document in documents)
            error.document_numbers = tuple(str(number) for number in numbers if number is not None)
            raise error
        return prepared

    def _decode_and_map(self, body: bytes, source: SourceInfo) -> list[dict]:
        if self.mapping is not None:
            return list(self.mapping.run(body, source))
        try:
            document = jsonfmt.loads(body, max_depth=DEFAULT_MAX_DEPTH)
        except ValueError as error:
            raise DecodeError(f"not valid JSON: {error}") from None
        return document if isinstance(document, list) else [document]

    def _split(self, documents: list[dict]) -> list[tuple[str | None, dict]]:
        """(part, document): the part is the split value (None when the route does not split)."""
        if self.route.split is None:
            return [(None, document) for document in documents]
        return [pair for document in documents for pair in split_document(document, self.route.split)]

    def _keys(self, payload: dict, request_key: str | None, fingerprint: str | None,
              business_key: str | None, index: int, count: int, part: str | None) -> tuple[Key, ...]:
        """The request key, the source's business key, the document's own business key (in that
        order, those that exist); the request's and the source's get `#<index>` in a batch."""
        suffix = f"#{index}" if count > 1 else ""
        keys = []
        if request_key:
            keys.append(Key(request_key + suffix, fingerprint))
        if business_key:
            keys.append(Key(business_key + suffix))
        number = self._document_number(payload)
        if number is not None:
            revision = payload.get(self.keys.revision, 0) if self.keys.revision else 0
            key = f"{self.source}:{self.message_type}:{number}:{revision}"
            if part is not None:  # the parts of a split document share its number
                key += f":{self.route.split.by}={part}"
            keys.append(Key(key))
        return tuple(keys)

    def _document_number(self, payload: Any) -> Any:
        if not self.keys.document_number or not isinstance(payload, dict):
            return None
        return payload.get(self.keys.document_number)

    def _envelope(self, payload: dict, idempotency_key: str | None, received_at: str) -> Envelope:
        keys = self.keys
        number = self._document_number(payload)
        occurred_at = payload.get(keys.occurred_at) if keys.occurred_at else None
        if not (isinstance(occurred_at, str) and "T" in occurred_at):
            occurred_at = None  # only a date-time is a point in time; the envelope then has none
        return Envelope(type=self.message_type, payload=payload, source=self.source,
                        schema_version=self.route.schema_version,
                        correlation_id=str(number) if number is not None else None,
                        occurred_at=occurred_at, received_at=received_at, idempotency_key=idempotency_key)

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
        source = SourceInfo(received_at=envelope.received_at)
        return self.mapping.encode(self.mapping.apply(envelope.payload, source))


def _prefixed(problems: list[FieldProblem], index: int, count: int) -> list[FieldProblem]:
    if count == 1:
        return problems
    return [FieldProblem(f"[{index}].{p.path}" if p.path else f"[{index}]", p.expected, p.got)
            for p in problems]

