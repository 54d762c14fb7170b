"""Alert rules about time, checked by the alerts source (`from: {alerts: {rules: [...]}}`) on each
poll rather than against one message:

- `no_success_for: 30m` (`routes: [...]`, default every route): a route delivered nothing for that
  long (counted from the bus's first look when it never delivered);
- `dead_letters_growing: 15m` (`routes: [...]`): a dead-letter queue holds more messages than it
  held that long ago (than nothing, when the bus had not looked at it before);
- `not_shipped_within: 24h` (`warehouse: WH1`, default every warehouse): a sales order
  (`shipment_order`) was released that long ago and no `shipment_confirmation` of its order
  number came (the document ledger, `esb.ledger`).

Each fires an `alert` payload (evidence: observed value and threshold, the queue, route or order,
links to the messages) through the same de-duplicating outbox as the message rules; its fingerprint
names the rule and what it is about, so a condition that lasts alerts once per `repeat_after`.
What the rules read of the bus comes from the runtime as a `BusView`; the depths and first looks
they remember live in the state database, so a restart or another node goes on from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esb.alerts import Fired, _three_places
from esb.database import Database, transaction
from esb.envelope import now_rfc3339

WATCH_KINDS = ("no_success_for", "dead_letters_growing", "not_shipped_within")
MESSAGE_LINKS = 20
"""Message ids (and trace links) an alert names at most."""

_SCHEMA = """CREATE TABLE IF NOT EXISTS esb_watch_sample (
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    at DOUBLE PRECISION NOT NULL)"""


@dataclass
class BusView:
    """What the time rules read of the running bus (the runtime builds it):

    - `routes()`: the route names;
    - `dead_letter_depths()`: {(route, destination or None for the inbound one): messages} of
      every dead-letter queue the broker could report;
    - `dead_lettered_since(route, epoch)`: ids of messages dead-lettered on a route since then;
    - `ledger`: the document ledger (`esb.ledger.DocumentLedger`)."""

    routes: Callable[[], list[str]]
    dead_letter_depths: Callable[[], dict[tuple[str, str | None], int]]
    dead_lettered_since: Callable[[str, float], list[str]]
    ledger: Any


def watch_kind(rule: dict) -> str:
    (kind,) = [key for key in WATCH_KINDS if key in rule]  # the routes schema lets exactly one through
    return kind


class Watch:
    """The time rules of one alerts route; `check(view)` returns what fires now."""

    def __init__(self, target: str | Path, rules: list[dict]):
        self.rules = rules
        self._database = Database(target)
        with closing(self._database.connect()) as connection, \
                self._database.schema_transaction(connection) as cursor:
            cursor.execute(_SCHEMA)

    def check(self, view: BusView, now: float | None = None) -> list[Fired]:
        now = time.time() if now is None else now
        fired: list[Fired] = []
        for rule in self.rules:
            kind = watch_kind(rule)
            fired.extend(getattr(self, f"_{kind}")(rule, float(rule[kind]), view, now))
        return fired

    # --- the rules ----------------------------------------------------------------------------
    def _no_success_for(self, rule: dict, limit: float, view: BusView, now: float) -> list[Fired]:
        last = view.ledger.last_delivery()
        fired = []
        for route in rule.get("routes") or view.routes():
            since = last.get(route) or self._first_look(rule["name"], f"route:{route}", now)
            idle = now - since
            if idle < limit:
                continue
            never = route not in last
            text = (f"Route {route} delivered nothing for {_duration(idle)} (the rule allows "
                    f"{_duration(limit)}); " + ("it has not delivered since the bus began watching."
                                                if never else f"its last delivery was at {_rfc3339(since)}."))
            fired.append(_alert(rule, f"{route} without success for {_duration(idle)}", text,
                                observed=idle / 60, threshold=limit / 60, subject_key=route,
                                links=[{"title": f"route {route}", "href": f"/api/routes/{route}"}]))
        return fired

    def _dead_letters_growing(self, rule: dict, window: float, view: BusView, now: float) -> list[Fired]:
        wanted = set(rule.get("routes") or view.routes())
        fired = []
        for (route, destination), depth in sorted(view.dead_letter_depths().items(),
                                                  key=lambda item: (item[0][0], item[0][1] or "")):
            if route not in wanted:
                continue
            subject = f"dlq:{route}:{destination or ''}"
            baseline, baseline_at = self._baseline(rule["name"], subject, window, now)
            self._sample(rule["name"], subject, depth, now, keep=window)
            if depth <= baseline:
                continue
            queue = f"{route}/{destination}" if destination else f"{route} (inbound)"
            ids = view.dead_lettered_since(route, baseline_at if baseline_at is not None else now - window)
            href = f"/api/routes/{route}/dead-letters" + (f"?destination={destination}" * bool(destination))
            then = f"at {_rfc3339(baseline_at)}" if baseline_at is not None else "when the bus began watching"
            text = (f"The dead-letter queue of {queue} holds {depth} messages, {depth - baseline:g} more "
                    f"than {then} (window {_duration(window)}). Look at them, fix the cause, replay them.")
            fired.append(_alert(rule, f"dead letters growing in {queue}: {depth:g}", text, observed=depth,
                                threshold=baseline, subject_key=subject, message_ids=ids,
                                links=[{"title": f"dead letters of {queue}", "href": href}]))
        return fired

    def _not_shipped_within(self, rule: dict, limit: float, view: BusView, now: float) -> list[Fired]:
        fired = []
        for order in view.ledger.unshipped_orders(now - limit):
            warehouse = order["warehouse"]
            if rule.get("warehouse") and warehouse != rule["warehouse"]:
                continue
            waited = now - order["received_at"]
            text = (f"Sales order {order['order_number']} was released to {warehouse or 'the WMS'} at "
                    f"{_rfc3339(order['received_at'])} ({_duration(waited)} ago) and no shipment "
                    f"confirmation for it has come (the rule allows {_duration(limit)}).")
            fired.append(_alert(rule, f"order {order['order_number']} not shipped after {_duration(waited)}",
                                text, observed=waited / 3600, threshold=limit / 3600,
                                subject_key=f"order:{order['order_number']}", warehouse=warehouse,
                                correlation_id=order["order_number"], message_ids=[order["message_id"]]))
        return fired

    # --- what the rules remember ----------------------------------------------------------------
    def _first_look(self, rule: str, subject: str, now: float) -> float:
        rows = self._rows(rule, subject)
        if rows:
            return min(at for _, at in rows)
        self._sample(rule, subject, 0, now, keep=None)
        return now

    def _baseline(self, rule: str, subject: str, window: float, now: float) -> tuple[float, float | None]:
        """The depth the queue had `window` ago (the newest sample at or before then, else the
        oldest one), and when; (0, None) when the bus never looked."""
        rows = self._rows(rule, subject)
        if not rows:
            return 0.0, None
        before = [row for row in rows if row[1] <= now - window]
        value, at = max(before, key=lambda row: row[1]) if before else min(rows, key=lambda row: row[1])
        return float(value), float(at)

    def _rows(self, rule: str, subject: str) -> list[tuple[float, float]]:
        p = self._database.placeholder
        with closing(self._database.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute(f"SELECT value, at FROM esb_watch_sample WHERE rule = {p} AND subject = {p}",
                           (rule, subject))
            return [(float(value), float(at)) for value, at in cursor.fetchall()]

    def _sample(self, rule: str, subject: str, value: float, now: float, *, keep: float | None) -> None:
        """Remember a value; samples older than `keep` seconds go, except the newest of them (the
        baseline of the next check)."""
        p = self._database.placeholder
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            if keep is not None:
                cursor.execute(f"DELETE FROM esb_watch_sample WHERE rule = {p} AND subject = {p} AND at < "
                               f"(SELECT MAX(at) FROM esb_watch_sample WHERE rule = {p} AND subject = {p} "
                               f"AND at <= {p})", (rule, subject, rule, subject, now - keep))
            cursor.execute(f"INSERT INTO esb_watch_sample VALUES ({self._database.params(4)})",
                           (rule, subject, value, now))


def _alert(rule: dict, sentence: str, text: str, *, observed: float, threshold: float, subject_key: str,
           warehouse: str | None = None, correlation_id: str | None = None,
           message_ids: list[str] | None = None, links: list[dict] | None = None) -> Fired:
    payload: dict[str, Any] = {
        "rule": rule["name"], "severity": rule.get("severity", "warning"),
        "subject": f"{warehouse or 'bus'}: {sentence}"[:200], "text": text[:4000],
        "occurred_at": now_rfc3339(), "observed_value": _three_places(observed),
        "threshold": _three_places(threshold)}
    if warehouse:
        payload["warehouse"] = warehouse
    if correlation_id:
        payload["correlation_id"] = str(correlation_id)[:200]
    ids = list(dict.fromkeys(message_ids or []))[:MESSAGE_LINKS]
    if ids:
        payload["message_ids"] = ids
    traces = ({"title": f"trace of {i}", "href": f"/api/trace?message_id={i}"} for i in ids)
    all_links = [*(links or []), *traces]
    if all_links:
        payload["links"] = all_links
    return Fired(fingerprint=f"{rule['name']}|{warehouse}|{subject_key}", payload=payload)


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _rfc3339(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
