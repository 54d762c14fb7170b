"""The aggregator as a pair of endpoints: `to: {aggregate: ...}` stores a message as one part of a
correlation group, `from: {aggregate: ...}` emits each group once it is complete or timed out.

    - name: wms-stock-to-erp            # one side
      ...
      to:
        - aggregate: {into: reconcile-stock, part: shelf}
    - name: reconcile-stock             # the aggregation: its parts, its timeout, what it emits
      from:
        aggregate: {parts: [book, shelf], timeout: 6h, reconcile: {tolerance: {absolute: 0}}}
      validate: inventory_discrepancy
      to: [...]

The state is kept by `esb.aggregator.AggregationStore` (SQLite in the data dir, or the
`settings.journal` PostgreSQL DSN); the runtime hands its place to both sides (`bind_state`).
Without `reconcile`, a group is emitted as `{key, complete, missing, parts: {name: payload},
message_ids}`; with it, a complete book/shelf group is emitted as an `inventory_discrepancy`
(`esb.reconciliation`), and a group that timed out with a side missing is logged as a warning and
dropped (an alert rule can report it: `esb.alerts`).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import jmespath
import jmespath.exceptions

from esb import jsonfmt
from esb.aggregator import AggregationStore, Group
from esb.durations import duration_option
from esb.errors import InputError, Permanent, Retryable, Unavailable
from esb.plugins import AdapterSpec, RawMessage, Sink, Source, SourceContext, register

log = logging.getLogger("esb.aggregate")

DEFAULT_KEY = "join('|', [payload.warehouse, payload.cutoff || payload.as_of])"
"""The correlation key of a part: warehouse and cut-off of an inventory snapshot. The cut-off is the
snapshot's `cutoff` (the business day its mapping declares, e.g. the date of `as_of` in the
warehouse's zone), so the ERP's book at 23:59:59 pairs with the WMS's file of 23:55; a snapshot
without one pairs on its exact `as_of`."""

DEFAULT_TIMEOUT = 3600.0
"""Seconds after a group's first part after which it is emitted (or dropped) incomplete."""

DEFAULT_POLL = 10.0
"""Seconds between two looks for due groups."""

_GROUP_IDS = uuid.UUID("6f1d0a3e-4c53-4a4e-9a60-2d6c1b1f7e90")  # namespace of the emitted messages' ids

ENDPOINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Aggregator: as a destination, stores the message as one part of a correlation group; "
                   "as a source, emits each group when all its parts arrived or its timeout passed.",
    "properties": {
        "into": {"type": "string", "minLength": 1, "x-esb-role": "sink",
                 "description": "The route whose `from: {aggregate: ...}` collects this part."},
        "part": {"type": "string", "minLength": 1, "x-esb-role": "sink",
                 "description": "Name of the part this destination delivers (one of that route's parts)."},
        "key": {"type": "string", "minLength": 1, "default": DEFAULT_KEY, "x-esb-role": "sink",
                "description": "JMESPath over the envelope giving the correlation key; the parts of one "
                               "group have equal keys. Default: warehouse|cutoff (the snapshot's "
                               "business day), warehouse|as_of when it has no cutoff."},
        "parts": {"type": "array", "minItems": 1, "uniqueItems": True, "x-esb-role": "source",
                  "items": {"type": "string", "minLength": 1},
                  "description": "The parts a group needs to be complete."},
        "timeout": duration_option("How long a group waits for its missing parts after the first one "
                                   "came (seconds or a duration), default 1 h.", DEFAULT_TIMEOUT,
                                   **{"x-esb-role": "source"}),
        "poll": duration_option("Seconds between two looks for due groups, default 10 s.", DEFAULT_POLL,
                                **{"x-esb-role": "source"}),
        "on_timeout": {"enum": ["emit", "drop"], "default": "emit", "x-esb-role": "source",
                       "description": "emit: a timed-out group is emitted with complete: false and the "
                                      "missing parts named; drop: it is logged and dropped. A reconciling "
                                      "aggregation always drops (a discrepancy needs both sides)."},
        "alert_into": {"type": ["string", "null"], "default": None, "x-esb-role": "source",
                       "description": "An alerts route (from: {alerts: {}}) that gets an alert (rule "
                                      "aggregate_timeout) for each group that timed out with parts missing."},
        "reconcile": {"type": ["object", "null"], "default": None, "x-esb-role": "source",
                      "description": "Emit a complete group as an inventory_discrepancy "
                                     "(esb.reconciliation): {book: <part>, shelf: <part>, "
                                     "tolerance: {absolute, relative}}.",
                      "additionalProperties": False,
                      "properties": {
                          "book": {"type": "string", "default": "book",
                                   "description": "The part holding the ERP's book stock snapshot."},
                          "shelf": {"type": "string", "default": "shelf",
                                    "description": "The part holding the WMS's shelf stock snapshot (or a "
                                                   "stock count: only what it counted is compared)."},
                          "base_units": {"type": "boolean", "default": True,
                                         "description": "Compare each line in its item's base unit, with the "
                                                        "factors item_units destinations keep (a unit "
                                                        "without one is compared as it is)."},
                          "tolerance": {
                              "type": "object", "additionalProperties": False,
                              "description": "Book and shelf agree when the difference is within either "
                                             "bound; default: exact.",
                              "properties": {
                                  "absolute": {"type": "number", "minimum": 0,
                                               "description": "A difference in the line's uom."},
                                  "relative": {"type": "number", "minimum": 0, "maximum": 1,
                                               "description": "A share of the book quantity."}}}}},
    },
    "x-esb-sink-required": ["into", "part"],
    "x-esb-source-required": ["parts"],
}


class AggregateSink(Sink):
    """Stores each message as part `part` of the group its `key` names, in route `into`'s aggregation."""

    def __init__(self, endpoint: Any):
        self.into = endpoint.options["into"]
        self.part = endpoint.options["part"]
        self.key = jmespath.compile(endpoint.options.get("key") or DEFAULT_KEY)
        self.store: AggregationStore | None = None

    def bind_state(self, target: str | Path) -> None:
        """The runtime says where the aggregator's state lives."""
        self.store = AggregationStore(target)

    def deliver(self, envelope: Any, body: bytes, content_type: str) -> str | None:
        if self.store is None:
            raise Retryable("the aggregator's state is not bound yet")
        key = self.key.search(envelope.to_dict())
        if key is None or key == "":
            raise Permanent(f"no correlation key: the key expression gave nothing for message {envelope.id}")
        try:
            stored = self.store.add_part(self.into, str(key), self.part, envelope.id, envelope.payload)
        except Exception as error:  # the database is down or busy: try again later
            raise Retryable(f"could not store the part: {type(error).__name__}: {error}") from error
        if not stored:
            raise Permanent(f'group "{key}" of {self.into} was already emitted; part {self.part} '
                            "came too late")
        return f"{self.into}/{key}/{self.part}"


class AggregateSource(Source):
    """Polls the aggregation of its route and submits each due group once."""

    def __init__(self, endpoint: Any, route_name: str):
        options = endpoint.options
        self.route = route_name
        self.parts = tuple(options["parts"])
        self.timeout = float(options.get("timeout") or DEFAULT_TIMEOUT)
        self.poll_interval = float(options.get("poll") or DEFAULT_POLL)
        self.on_timeout = options.get("on_timeout") or "emit"
        self.reconcile = options.get("reconcile")
        self.alert_into = options.get("alert_into")
        self.outbox = None
        self.history = None  # inventory accuracy over time (esb.accuracy), when reconciling
        self.units = None  # the items' units (esb.units), when reconciling in base units
        self.store: AggregationStore | None = None
        self.context: SourceContext | None = None

    def bind_state(self, target: str | Path) -> None:
        self.store = AggregationStore(target)
        if self.reconcile is not None:
            from esb.accuracy import AccuracyHistory

            self.history = AccuracyHistory(target)
            if self.reconcile.get("base_units", True):
                from esb.units import ItemUnits

                self.units = ItemUnits(target)
        if self.alert_into:
            from esb.alerts import AlertOutbox

            self.outbox = AlertOutbox(target)

    def start(self, context: SourceContext) -> None:
        self.context = context

    def poll(self) -> None:
        if self.store is None or self.context is None:
            return
        for group in self.store.claim_due(self.route, self.parts, self.timeout):
            self._emit(group)

    def _emit(self, group: Group) -> None:
        assert self.store is not None and self.context is not None
        if not group.complete and self.outbox is not None:
            self.outbox.put(self.alert_into, timeout_alert(self.route, group, self.timeout))
        try:
            document = self._document(group)
        except ValueError as error:  # the parts cannot be reconciled (two warehouses): keep them aside
            self._set_aside(group, error)
            return
        if document is None:
            log.warning("group %s of %s timed out without %s; dropped", group.key, self.route,
                        ", ".join(group.missing))
            self.store.finish(self.route, group.key)
            return
        raw = RawMessage(body=jsonfmt.dump_bytes(document), content_type="application/json",
                         metadata={"aggregation": self.route, "group": group.key})
        message_id = str(uuid.uuid5(_GROUP_IDS, f"{self.route}\n{group.key}"))
        try:
            self.context.submit(raw, idempotency_key=f"aggregate:{self.route}:{group.key}",
                                message_id=message_id)
        except InputError as error:
            log.warning("group %s of %s refused: %s; dead-lettered", group.key, self.route, error)
            if self.context.dead_letter is None:
                self.store.release(self.route, group.key)
                return
            try:
                self.context.dead_letter(raw, error)
            except Unavailable:
                self.store.release(self.route, group.key)
                return
        except Unavailable as error:
            log.warning("group %s of %s not stored, will try again: %s", group.key, self.route, error)
            self.store.release(self.route, group.key)
            return
        else:
            if self.history is not None:
                self.history.record(jsonfmt.loads(raw.body))
        self.store.finish(self.route, group.key)

    def _set_aside(self, group: Group, error: ValueError) -> None:
        assert self.store is not None and self.context is not None
        log.warning("group %s of %s cannot be emitted: %s; dead-lettered", group.key, self.route, error)
        raw = RawMessage(body=jsonfmt.dump_bytes({"key": group.key, "parts": group.parts}),
                         content_type="application/json")
        if self.context.dead_letter is not None:
            try:
                self.context.dead_letter(raw, error)
            except Unavailable:
                self.store.release(self.route, group.key)
                return
        self.store.finish(self.route, group.key)

    def _document(self, group: Group) -> dict | None:
        """What the group becomes; None to drop it."""
        if self.reconcile is not None:
            if not group.complete:
                return None
            from esb.reconciliation import Tolerance, reconcile

            options = self.reconcile
            book, shelf = group.parts[options.get("book", "book")], group.parts[options.get("shelf", "shelf")]
            units = self.units.conversions() if self.units is not None else None
            return reconcile(book, shelf, Tolerance.from_options(options.get("tolerance")), units)
        if not group.complete and self.on_timeout == "drop":
            return None
        return {"key": group.key, "complete": group.complete, "missing": list(group.missing),
                "parts": group.parts, "message_ids": group.message_ids}


def timeout_alert(route: str, group: Group, timeout: float):
    """The alert for a group that timed out: which parts never came, with the ids of those that did."""
    from esb.alerts import Fired
    from esb.envelope import now_rfc3339

    missing = ", ".join(group.missing)
    payload = {"rule": "aggregate_timeout", "severity": "error",
               "subject": f"{route}: {missing} missing for {group.key}"[:200],
               "text": f"Group {group.key} of {route} waited {timeout:g} s; {missing} never came "
                       f"(arrived: {', '.join(group.parts) or 'nothing'}).",
               "occurred_at": now_rfc3339(), "correlation_id": group.key[:200]}
    if group.message_ids:
        payload["message_ids"] = sorted(group.message_ids.values())
    return Fired(fingerprint=f"aggregate_timeout|{route}|{group.key}", payload=payload)


def check_endpoint(endpoint: Any, system: Any, base_dir: Any) -> list[str]:
    """The key expression compiles; a reconciling aggregation names two of its parts."""
    problems = []
    key = endpoint.options.get("key")
    if "into" in endpoint.options and isinstance(key, str):
        try:
            jmespath.compile(key)
        except jmespath.exceptions.JMESPathError as error:
            problems.append(f"key is not a valid JMESPath expression: {error}")
    reconcile = endpoint.options.get("reconcile")
    parts = endpoint.options.get("parts") or []
    if isinstance(reconcile, dict):
        for side in ("book", "shelf"):
            name = reconcile.get(side, side)
            if name not in parts:
                problems.append(f'reconcile.{side} names part "{name}", which is not in parts '
                                f'({", ".join(parts)})')
    return problems


register(AdapterSpec(
    name="aggregate",
    summary="Aggregator: collect the parts of a correlation group (to:), emit complete or timed-out "
            "groups (from:)",
    endpoint_schema=ENDPOINT_SCHEMA,
    source_factory=lambda endpoint, system, route_name: AggregateSource(endpoint, route_name),
    sink_factory=lambda endpoint, system: AggregateSink(endpoint),
    check=check_endpoint,
))
