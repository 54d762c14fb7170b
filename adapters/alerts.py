"""Alert rules as a pair of endpoints: `to: {alert: {into, rules}}` checks each message of a route
against its rules and queues what fires (de-duplicated, `esb.alerts.AlertOutbox`); the route
`into` names, `from: {alerts: {}}`, sends each queued alert as an `alert` message to its
destinations (a webhook, a file, the ERP...).

    to:
      - alert:
          into: stock-alerts
          rules:
            - {name: accuracy-floor, accuracy_below: 0.98, severity: warning}
            - {name: big-difference, difference_over: 10, severity: error}
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from esb import jsonfmt
from esb.alerts import DEFAULT_REPEAT_AFTER, RULE_KINDS, AlertOutbox, evaluate
from esb.durations import duration_option
from esb.errors import InputError, Retryable, Unavailable
from esb.plugins import AdapterSpec, RawMessage, Sink, Source, SourceContext, register

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
    def __init__(self, endpoint: Any, route_name: str):
        self.route = route_name
        self.poll_interval = float(endpoint.options.get("poll") or DEFAULT_POLL)
        self.outbox: AlertOutbox | None = None
        self.context: SourceContext | None = None

    def bind_state(self, target: str | Path) -> None:
        self.outbox = AlertOutbox(target)

    def start(self, context: SourceContext) -> None:
        self.context = context

    def poll(self) -> None:
        if self.outbox is None or self.context is None:
            return
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
                     "description": "Sends the alerts the `alert` destinations queued for this route.",
                     "properties": {"poll": ENDPOINT_SCHEMA["properties"]["poll"]}},
    source_factory=lambda endpoint, system, route_name: AlertSource(endpoint, route_name),
))
