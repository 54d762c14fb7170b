"""Business alert rules and the durable, de-duplicating outbox of the alerts they fire.

A rule is checked against one message's payload and fires at most one `alert` payload per message,
with its evidence: the worst observed value, the threshold, the offending lines (up to
`EVIDENCE_LINES` in the text) and the message's id. Rule kinds (one key of a rule names it):

- `accuracy_below: 0.98` on an `inventory_discrepancy`: its accuracy is under the floor;
- `difference_over: 10` on an `inventory_discrepancy`: a line's |difference| exceeds it;
- `stock_below: 5` on an `inventory_snapshot`: a line's quantity is under the threshold;
- `expires_within_days: 30` on an `inventory_snapshot`: a lot expires within N days of `as_of`.

Fired alerts go to the `AlertOutbox` (the aggregator's state database): an alert whose fingerprint
(rule, warehouse, the offending keys) is already there is not fired again until `repeat_after`
seconds passed, so a redelivered message or the same low stock in tomorrow's snapshot alerts once.
The `from: {alerts: ...}` source sends what is pending, as `alert` messages, to any destination.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from esb import jsonfmt
from esb.database import Database, transaction
from esb.envelope import now_rfc3339

RULE_KINDS = ("accuracy_below", "difference_over", "stock_below", "expires_within_days")
EVIDENCE_LINES = 10
"""Offending lines named in an alert's text; the count says how many there were in all."""
DEFAULT_REPEAT_AFTER = 86400.0
"""Seconds after which an alert with the same fingerprint may fire again (a day)."""

_SCHEMA = """CREATE TABLE IF NOT EXISTS esb_alert (
    outbox TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    fired_at DOUBLE PRECISION NOT NULL,
    firings INTEGER NOT NULL,
    PRIMARY KEY (outbox, fingerprint))"""


@dataclass(frozen=True, slots=True)
class Fired:
    fingerprint: str
    payload: dict[str, Any]


def kind_of(rule: dict) -> str:
    (kind,) = [key for key in RULE_KINDS if key in rule]  # the routes schema lets exactly one through
    return kind


def evaluate(rules: list[dict], payload: dict, message_id: str | None = None) -> list[Fired]:
    """The alerts `rules` fire on one message's payload (none when it is not of their type)."""
    fired = []
    for rule in rules:
        kind = kind_of(rule)
        found = _CHECKS[kind](rule[kind], payload)
        if found is None:
            continue
        observed, offending, sentence = found
        fired.append(_alert(rule, kind, payload, message_id, observed, offending, sentence))
    return fired


def _alert(rule: dict, kind: str, payload: dict, message_id: str | None, observed: Any,
           offending: list[str], sentence: str) -> Fired:
    warehouse = payload.get("warehouse")
    threshold = rule[kind]
    evidence = "; ".join(offending[:EVIDENCE_LINES]) + (f"; and {len(offending) - EVIDENCE_LINES} more"
                                                         if len(offending) > EVIDENCE_LINES else "")
    alert = {"rule": rule["name"], "severity": rule.get("severity", "warning"),
             "subject": f"{warehouse or 'bus'}: {sentence}"[:200],
             "text": (f"{sentence}. {evidence}" if evidence else sentence)[:4000],
             "occurred_at": now_rfc3339(), "observed_value": _three_places(observed),
             "threshold": _three_places(threshold)}
    if warehouse:
        alert["warehouse"] = warehouse
    if message_id:
        alert["message_ids"] = [message_id]
    digest = hashlib.sha256("\n".join(offending).encode()).hexdigest()[:16]
    return Fired(fingerprint=f"{rule['name']}|{warehouse}|{digest}", payload=alert)


def _three_places(value: Any) -> Decimal:
    """The alert schema's quantities have three decimals; rounded down, so an observed accuracy
    never reads as reaching its floor."""
    return Decimal(str(value)).quantize(Decimal("0.001"), rounding=ROUND_FLOOR)


def _accuracy_below(floor: Any, payload: dict) -> tuple | None:
    accuracy = payload.get("accuracy")
    if accuracy is None or Decimal(str(accuracy)) >= Decimal(str(floor)):
        return None
    lines = payload.get("lines") or []
    return (accuracy, [f"{payload.get('as_of')}"],
            f"inventory accuracy {Decimal(str(accuracy)) * 100:.1f} % is below "
            f"{Decimal(str(floor)) * 100:.1f} % "
            f"({len(lines)} of {payload.get('compared_lines', '?')} lines differ)")


def _difference_over(limit: Any, payload: dict) -> tuple | None:
    if "accuracy" not in payload:
        return None
    limit = Decimal(str(limit))
    over = sorted((line for line in payload.get("lines") or []
                   if abs(Decimal(str(line["difference"]))) > limit),
                  key=lambda line: -abs(Decimal(str(line["difference"]))))
    if not over:
        return None
    return (abs(Decimal(str(over[0]["difference"]))), [_describe(line, "difference") for line in over],
            f"{len(over)} lines differ by more than {limit} between book and shelf")


def _stock_below(threshold: Any, payload: dict) -> tuple | None:
    if "snapshot_id" not in payload:
        return None
    threshold = Decimal(str(threshold))
    low = sorted((line for line in payload.get("lines") or [] if Decimal(str(line["quantity"])) < threshold),
                 key=lambda line: Decimal(str(line["quantity"])))
    if not low:
        return None
    return (low[0]["quantity"], [_describe(line, "quantity") for line in low],
            f"{len(low)} stock lines below {threshold}")


def _expires_within(days: Any, payload: dict) -> tuple | None:
    as_of = payload.get("as_of")
    if "snapshot_id" not in payload or not isinstance(as_of, str):
        return None
    today = date.fromisoformat(as_of[:10])
    horizon = today + timedelta(days=int(days))
    expiring = sorted((line for line in payload.get("lines") or []
                       if line.get("expiry_date") and date.fromisoformat(line["expiry_date"]) <= horizon),
                      key=lambda line: line["expiry_date"])
    if not expiring:
        return None
    soonest = (date.fromisoformat(expiring[0]["expiry_date"]) - today).days
    return (soonest, [_describe(line, "expiry_date") for line in expiring],
            f"{len(expiring)} lots expire within {int(days)} days")


def _describe(line: dict, field: str) -> str:
    where = "/".join(str(line[key]) for key in ("sku", "lot", "location") if line.get(key))
    return f"{where}: {field} {line[field]}"


_CHECKS = {"accuracy_below": _accuracy_below, "difference_over": _difference_over,
           "stock_below": _stock_below, "expires_within_days": _expires_within}


class AlertOutbox:
    """Fired alerts of one or more alert routes (`outbox` = the route's name), on SQLite or
    PostgreSQL, de-duplicated by fingerprint; see the module docstring."""

    def __init__(self, target: str | Path):
        self._database = Database(target)
        database = self._database
        with closing(database.connect()) as connection, database.schema_transaction(connection) as cursor:
            cursor.execute(_SCHEMA)

    def put(self, outbox: str, fired: Fired, *, repeat_after: float = DEFAULT_REPEAT_AFTER,
            now: float | None = None) -> bool:
        """Queue an alert; False (nothing queued) when the same fingerprint fired less than
        `repeat_after` seconds ago."""
        now = time.time() if now is None else now
        p = self._database.placeholder
        body = jsonfmt.dumps(fired.payload)
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"SELECT fired_at FROM esb_alert WHERE outbox = {p} AND fingerprint = {p}",
                           (outbox, fired.fingerprint))
            row = cursor.fetchone()
            if row is None:
                cursor.execute(f"INSERT INTO esb_alert VALUES ({self._database.params(6)}) "
                               "ON CONFLICT (outbox, fingerprint) DO NOTHING",
                               (outbox, fired.fingerprint, body, "pending", now, 1))
                return cursor.rowcount == 1
            if now - row[0] < repeat_after:
                return False
            cursor.execute(f"UPDATE esb_alert SET body = {p}, state = 'pending', fired_at = {p}, "
                           f"firings = firings + 1 WHERE outbox = {p} AND fingerprint = {p} "
                           f"AND fired_at = {p}",
                           (body, now, outbox, fired.fingerprint, row[0]))
            return cursor.rowcount == 1

    def pending(self, outbox: str, limit: int = 100) -> list[tuple[str, int, dict]]:
        """(fingerprint, firing number, alert payload) of the alerts not yet sent, oldest first."""
        p = self._database.placeholder
        rows = self._database.select(f"SELECT fingerprint, firings, body FROM esb_alert WHERE outbox = {p} "
                                     f"AND state = 'pending' ORDER BY fired_at LIMIT {int(limit)}", (outbox,))
        return [(fingerprint, firings, jsonfmt.loads(body)) for fingerprint, firings, body in rows]

    def recent(self, since: float, limit: int = 10_000) -> list[dict[str, Any]]:
        """Alerts of every outbox fired since `since` (epoch), newest first: the alert payload plus
        `outbox` (the alerts route), `fired_at`, `firings` and `state` (pending or sent)."""
        p = self._database.placeholder
        rows = self._database.select(
            f"SELECT outbox, body, state, fired_at, firings FROM esb_alert "
            f"WHERE fired_at >= {p} ORDER BY fired_at DESC LIMIT {int(limit)}", (since,))
        return [{**jsonfmt.loads(body), "outbox": outbox, "state": state, "fired_at": fired_at,
                 "firings": firings} for outbox, body, state, fired_at, firings in rows]

    def sent(self, outbox: str, fingerprint: str, firings: int) -> None:
        p = self._database.placeholder
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"UPDATE esb_alert SET state = 'sent' WHERE outbox = {p} AND fingerprint = {p} "
                           f"AND firings = {p}", (outbox, fingerprint, firings))


def link_problems(routes: list[Any]) -> list[tuple[tuple, str]]:
    """(path, sentence) for every `alert: {into}` destination, and every aggregate source's
    `alert_into`, that names no route with `from: {alerts: ...}`, and every route a time rule of
    an alerts source watches (`routes:`) that is not in the file."""
    from esb.problems import did_you_mean

    sending = [str(block.get("name")) for block in routes if isinstance(block, dict)
               and isinstance(block.get("from"), dict) and "alerts" in block["from"]]
    problems = []

    def check(path: tuple, into: Any) -> None:
        if isinstance(into, str) and into not in sending:
            problems.append((path, f'no route "{into}" sends alerts (from: {{alerts: {{}}}})'
                                   f"{did_you_mean(into, sending)}"))

    names = [str(block.get("name")) for block in routes if isinstance(block, dict)]
    for index, block in enumerate(routes):
        if not isinstance(block, dict):
            continue
        source = block.get("from")
        rules = source["alerts"].get("rules") if isinstance(source, dict) and isinstance(
            source.get("alerts"), dict) else None
        for position, rule in enumerate(rules if isinstance(rules, list) else []):
            watched = rule.get("routes") if isinstance(rule, dict) else None
            for at, name in enumerate(watched if isinstance(watched, list) else []):
                if isinstance(name, str) and name not in names:
                    problems.append((("routes", index, "from", "alerts", "rules", position, "routes", at),
                                     f'no route "{name}" in this file{did_you_mean(name, names)}'))
        if isinstance(source, dict) and isinstance(source.get("aggregate"), dict):
            check(("routes", index, "from", "aggregate", "alert_into"), source["aggregate"].get("alert_into"))
        targets = block.get("to") if isinstance(block.get("to"), list) else []
        for position, entry in enumerate(targets):
            if isinstance(entry, dict) and isinstance(entry.get("alert"), dict):
                check(("routes", index, "to", position, "alert", "into"), entry["alert"].get("into"))
    return problems
