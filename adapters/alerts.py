"""Alert rules as a pair of endpoints: `to: {alert: {into, rules}}` checks each message of a route
against its rules and queues what fires (de-duplicated, `esb.alerts.AlertOutbox`); the route
`into` names, `from: {alerts: {rules: [...]}}`, checks its own rules about time on every poll
(`esb.watch`: a route without success, a dead-letter queue growing, an order not shipped) and
sends each queued alert as an `alert` message to its destinations (a webhook, a file, the ERP...).

    to:
      - alert:
          into: stock-alerts
          rules:
            - {name: accuracy-floor, accuracy_below: 0.98, severity: warning}
            - {name: big-difference, difference_over: 10, severity: error}
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from esb import jsonfmt
from esb.alerts import DEFAULT_REPEAT_AFTER, RULE_KINDS, AlertOutbox, evaluate
from esb.durations import DURATION_PATTERN, duration_option, parse_duration
from esb.errors import InputError, Retryable, Unavailable
from esb.plugins import AdapterSpec, RawMessage, Sink, Source, SourceContext, register
from esb.watch import WATCH_KINDS, BusView, Watch

log = logging.getLogger("esb.alerts")

DEFAULT_POLL = 10.0
"""Seconds between two looks for alerts to send."""

_ALERT_IDS = uuid.UUID("1c6f7d52-0f7e-4b8e-b1a4-5f2d9a3c8e11")  # namespace of the alert messages' ids

_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "description": "One rule: its name, severity, and exactly one of its kinds.",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                 "description": "Name of the rule (the alert's `rule`)."},
        "severity": {"enum": ["info", "warning", "error", "critical"], "default": "warning"},
        "accuracy_below": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "inventory_discrepancy: fires when accuracy is below this (0.98)."},
        "difference_over": {"type": "number", "minimum": 0,
                            "description": "inventory_discrepancy: fires when a line differs by more."},
        "stock_below": {"type": "number",
                        "description": "inventory_snapshot: fires when a line's quantity is below this."},
        "expires_within_days": {"type": "integer", "minimum": 0,
                                "description": "inventory_snapshot: fires when a lot expires within N days "
                                               "of the snapshot's as_of."},
    },
    "oneOf": [{"required": [kind]} for kind in RULE_KINDS],
    "x-esb-expected": "a rule with a name and exactly one of " + ", ".join(RULE_KINDS),
}

def _duration_rule(description: str) -> dict:
    return {"type": ["number", "string"], "minimum": 0, "pattern": DURATION_PATTERN,
            "description": description}


_ROUTES = {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string", "minLength": 1},
           "description": "The routes watched (names in this file); default every route."}

_WATCH_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "description": "A rule about time, checked on every poll (esb.watch): its name, severity, and exactly "
                   "one of its kinds.",
    "properties": {
        "name": _RULE_SCHEMA["properties"]["name"],
        "severity": _RULE_SCHEMA["properties"]["severity"],
        "no_success_for": _duration_rule("Fires when a route delivered nothing for this long (seconds or a "
                                         "duration, e.g. 30m)."),
        "dead_letters_growing": _duration_rule("Fires when a dead-letter queue holds more messages than it "
                                               "held this long ago (e.g. 15m)."),
        "not_shipped_within": _duration_rule("Fires when a sales order (shipment_order) released this "
                                             "long ago has no shipment_confirmation of its order number "
                                             "(e.g. 24h)."),
        "routes": _ROUTES,
        "warehouse": {"type": "string", "minLength": 1,
                      "description": "not_shipped_within: only the orders of this warehouse."},
    },
    "oneOf": [{"required": [kind]} for kind in WATCH_KINDS],
    "x-esb-expected": "a rule with a name and exactly one of " + ", ".join(WATCH_KINDS),
}

ENDPOINT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Alert rules: as a destination, checks each message against its rules and queues what "
                   "fires; as a source, sends the queued alerts of its route.",
    "properties": {
        "into": {"type": "string", "minLength": 1, "x-esb-role": "sink",
                 "description": "The route (`from: {alerts: {}}`) that sends the alerts."},
        "rules": {"type": "array", "minItems": 1, "items": _RULE_SCHEMA, "x-esb-role": "sink",
                  "description": "The rules checked against every message."},
        "repeat_after": duration_option("An alert with the same rule, warehouse and offending lines fires "
                                        "again only after this long, default 1 d.", DEFAULT_REPEAT_AFTER,
                                        **{"x-esb-role": "sink"}),
        "poll": duration_option("Seconds between two looks for alerts to send, default 10 s.", DEFAULT_POLL,
                                **{"x-esb-role": "source"}),
    },
    "x-esb-sink-required": ["into", "rules"],
}


class AlertSink(Sink):
    def __init__(self, endpoint: Any):
        self.into = endpoint.options["into"]
        self.rules = endpoint.options["rules"]
        self.repeat_after = float(endpoint.options.get("repeat_after") or DEFAULT_REPEAT_AFTER)
        self.outbox: AlertOutbox | None = None

    def bind_state(self, target: str | Path) -> None:
        self.outbox = AlertOutbox(target)

    def deliver(self, envelope: Any, body: bytes, content_type: str) -> str | None:
        if self.outbox is None:
            raise Retryable("the alert outbox is not bound yet")
        fired = evaluate(self.rules, envelope.payload, envelope.id)
        try:
            queued = [f.payload["rule"] for f in fired if self.outbox.put(self.into, f,
                                                                           repeat_after=self.repeat_after)]
        except Exception as error:  # the database is down or busy: try again later
            raise Retryable(f"could not queue the alerts: {type(error).__name__}: {error}") from error
        return ", ".join(queued) or None


class AlertSource(Source):
    """Sends the alerts queued for its route; with `rules`, first checks its time rules (esb.watch)."""

    def __init__(self, endpoint: Any, route_name: str):
        self.route = route_name
        self.poll_interval = float(endpoint.options.get("poll") or DEFAULT_POLL)
        self.repeat_after = float(endpoint.options.get("repeat_after") or DEFAULT_REPEAT_AFTER)
        self.rules = [{**rule, **{kind: parse_duration(rule[kind]) for kind in WATCH_KINDS if kind in rule}}
                      for rule in endpoint.options.get("rules") or []]
        self.outbox: AlertOutbox | None = None
        self.watch: Watch | None = None
        self.view: BusView | None = None
        self.context: SourceContext | None = None

    def bind_state(self, target: str | Path) -> None:
        self.outbox = AlertOutbox(target)
        if self.rules:
            self.watch = Watch(target, self.rules)

    def bind_bus(self, view: BusView) -> None:
        """The runtime says what the time rules may read of the bus."""
        self.view = view

    def check_rules(self) -> None:
        """Queue what the time rules fire now (the outbox drops what already fired)."""
        if self.watch is None or self.view is None or self.outbox is None:
            return
        try:
            for fired in self.watch.check(self.view):
                self.outbox.put(self.route, fired, repeat_after=self.repeat_after)
        except Exception as error:  # a broker or database that does not answer: the next poll tries again
            log.warning("alert rules of %s not checked: %s: %s", self.route, type(error).__name__, error)

    def start(self, context: SourceContext) -> None:
        self.context = context

    def poll(self) -> None:
        if self.outbox is None or self.context is None:
            return
        self.check_rules()
        for fingerprint, firings, payload in self.outbox.pending(self.route):
            raw = RawMessage(body=jsonfmt.dump_bytes(payload), content_type="application/json")
            message_id = str(uuid.uuid5(_ALERT_IDS, f"{self.route}\n{fingerprint}\n{firings}"))
            try:
                self.context.submit(raw, idempotency_key=f"alert:{self.route}:{fingerprint}:{firings}",
                                    message_id=message_id)
            except Unavailable:
                return  # the bus cannot store it now: the next poll tries again
            except InputError as error:
                if self.context.dead_letter is not None:
                    self.context.dead_letter(raw, error)
            self.outbox.sent(self.route, fingerprint, firings)


register(AdapterSpec(
    name="alert",
    summary="Alert rules checked against each message; fired alerts are queued for an alerts route",
    endpoint_schema=ENDPOINT_SCHEMA,
    sink_factory=lambda endpoint, system: AlertSink(endpoint),
))

register(AdapterSpec(
    name="alerts",
    summary="The alerts queued by alert rules (to: {alert: ...}), sent as alert messages",
    endpoint_schema={"type": "object", "additionalProperties": False,
                     "description": "Sends the alerts the `alert` destinations queued for this route, and "
                                    "those its own time rules fire.",
                     "properties": {
                         "poll": ENDPOINT_SCHEMA["properties"]["poll"],
                         "rules": {"type": ["array", "null"], "minItems": 1, "items": _WATCH_RULE_SCHEMA,
                                   "default": None,
                                   "description": "Rules about time, checked on every poll: a route "
                                                  "without success, a dead-letter queue growing, an "
                                                  "order not shipped."},
                         "repeat_after": duration_option("A time rule's alert about the same thing fires "
                                                         "again only after this long, default 1 d.",
                                                         DEFAULT_REPEAT_AFTER)}},
    source_factory=lambda endpoint, system, route_name: AlertSource(endpoint, route_name),
))
