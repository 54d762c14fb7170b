"""The aggregator's durable state: the parts of each correlation group, until the group is emitted.

A group is one (aggregation, key) pair, e.g. ("reconcile-stock", "WH1|2026-12-01T02:00:00+01:00").
Parts arrive from `to: {aggregate: ...}` destinations (`add_part`); the `from: {aggregate: ...}`
source of the aggregation's route takes the groups that are complete or whose timeout passed
(`claim_due`), emits them and marks them done (`finish`). State lives in SQLite (a file in the
data dir, the default) or PostgreSQL (the `settings.journal` DSN), so it survives restarts and is
shared by several nodes: a group is claimed with one conditional UPDATE, so only one node emits
it; a claim whose node died is taken again after `claim_timeout` (the emitted message then has
the same id, and the idempotency store answers the repeat as a duplicate).
"""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esb import jsonfmt
from esb.database import Database, transaction

STATE_FILE_NAME = "state.sqlite"
"""The aggregator's (and alert outbox's) file in the data directory when no DSN is configured."""

DEFAULT_CLAIM_TIMEOUT = 300.0
"""Seconds after which a claimed but unfinished group (its node died) may be claimed again."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS esb_aggregate_group (
        aggregation TEXT NOT NULL,
        group_key TEXT NOT NULL,
        state TEXT NOT NULL,
        first_at DOUBLE PRECISION NOT NULL,
        claimed_at DOUBLE PRECISION,
        PRIMARY KEY (aggregation, group_key))""",
    """CREATE TABLE IF NOT EXISTS esb_aggregate_part (
        aggregation TEXT NOT NULL,
        group_key TEXT NOT NULL,
        part TEXT NOT NULL,
        message_id TEXT NOT NULL,
        body TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (aggregation, group_key, part))""",
)
OPEN, CLAIMED, DONE = "open", "claimed", "done"


@dataclass(frozen=True, slots=True)
class Group:
    """A group ready to emit: its parts by name (payloads), and the names still missing."""

    key: str
    parts: dict[str, Any]
    message_ids: dict[str, str]
    missing: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return not self.missing


def state_target(data_dir: Path, dsn: str | None) -> str:
    """Where the aggregator keeps its state: the PostgreSQL DSN, else a file in the data dir."""
    return dsn or str(Path(data_dir) / STATE_FILE_NAME)


class AggregationStore:
    """Groups and their parts on SQLite (a path) or PostgreSQL (a DSN); see the module docstring."""

    def __init__(self, target: str | Path):
        self._database = Database(target)
        database = self._database
        with closing(database.connect()) as connection, database.schema_transaction(connection) as cursor:
            for statement in _SCHEMA:
                cursor.execute(statement)

    def add_part(self, aggregation: str, key: str, part: str, message_id: str, payload: Any,
                 now: float | None = None) -> bool:
        """Store one part (a repeat of a part replaces it: the newest wins). False when the group
        was already emitted: the part came too late and is not stored."""
        now = time.time() if now is None else now
        p = self._database.placeholder
        body = jsonfmt.dumps(payload)
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"INSERT INTO esb_aggregate_group (aggregation, group_key, state, first_at) "
                           f"VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (aggregation, group_key) DO NOTHING",
                           (aggregation, key, OPEN, now))
            cursor.execute(f"SELECT state FROM esb_aggregate_group WHERE aggregation = {p} "
                           f"AND group_key = {p}", (aggregation, key))
            if cursor.fetchone()[0] == DONE:
                return False
            cursor.execute(f"DELETE FROM esb_aggregate_part WHERE aggregation = {p} AND group_key = {p} "
                           f"AND part = {p}", (aggregation, key, part))
            cursor.execute("INSERT INTO esb_aggregate_part (aggregation, group_key, part, message_id, body, "
                           f"at) VALUES ({self._database.params(6)})",
                           (aggregation, key, part, message_id, body, now))
        return True

    def claim_due(self, aggregation: str, parts: tuple[str, ...], timeout: float, *, now: float | None = None,
                  claim_timeout: float = DEFAULT_CLAIM_TIMEOUT, limit: int = 100) -> list[Group]:
        """Claim and return the groups that have every part, or whose first part came `timeout`
        seconds ago or more; each is claimed by this caller only (until `claim_timeout`)."""
        now = time.time() if now is None else now
        p = self._database.placeholder
        claimed = []
        with closing(self._database.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute(
                f"SELECT g.group_key, g.state, g.first_at, g.claimed_at, COUNT(DISTINCT pt.part) "
                f"FROM esb_aggregate_group g JOIN esb_aggregate_part pt ON pt.aggregation = g.aggregation "
                f"AND pt.group_key = g.group_key AND pt.part IN ({self._database.params(len(parts))}) "
                f"WHERE g.aggregation = {p} AND g.state <> {p} "
                f"GROUP BY g.group_key, g.state, g.first_at, g.claimed_at "
                f"ORDER BY g.first_at LIMIT {int(limit)}",
                (*parts, aggregation, DONE))
            for key, state, first_at, claimed_at, present in cursor.fetchall():
                due = present >= len(parts) or now - first_at >= timeout
                if not due or (state == CLAIMED and now - (claimed_at or 0) < claim_timeout):
                    continue
                with transaction(connection) as update:
                    update.execute(f"UPDATE esb_aggregate_group SET state = {p}, claimed_at = {p} "
                                   f"WHERE aggregation = {p} AND group_key = {p} AND state = {p} "
                                   f"AND {'claimed_at = ' + p if state == CLAIMED else '1 = 1'}",
                                   (CLAIMED, now, aggregation, key, state,
                                    *((claimed_at,) if state == CLAIMED else ())))
                    won = update.rowcount == 1
                if won:
                    claimed.append(self._group(cursor, aggregation, key, parts))
        return claimed

    def _group(self, cursor: Any, aggregation: str, key: str, parts: tuple[str, ...]) -> Group:
        p = self._database.placeholder
        cursor.execute(f"SELECT part, message_id, body FROM esb_aggregate_part WHERE aggregation = {p} "
                       f"AND group_key = {p}", (aggregation, key))
        payloads, ids = {}, {}
        for part, message_id, body in cursor.fetchall():
            if part in parts:
                payloads[part] = jsonfmt.loads(body)
                ids[part] = message_id
        return Group(key=key, parts=payloads, message_ids=ids,
                     missing=tuple(part for part in parts if part not in payloads))

    def release(self, aggregation: str, key: str) -> None:
        """Give a claimed group back (emitting it failed); the next poll tries again."""
        self._set_state(aggregation, key, OPEN)

    def finish(self, aggregation: str, key: str) -> None:
        """The group was emitted: mark it done and drop its parts (a late part is then refused)."""
        p = self._database.placeholder
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"UPDATE esb_aggregate_group SET state = {p} WHERE aggregation = {p} "
                           f"AND group_key = {p}", (DONE, aggregation, key))
            cursor.execute(f"DELETE FROM esb_aggregate_part WHERE aggregation = {p} AND group_key = {p}",
                           (aggregation, key))

    def _set_state(self, aggregation: str, key: str, state: str) -> None:
        p = self._database.placeholder
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"UPDATE esb_aggregate_group SET state = {p}, claimed_at = NULL "
                           f"WHERE aggregation = {p} AND group_key = {p}", (state, aggregation, key))

    def open_groups(self, aggregation: str) -> list[tuple[str, float]]:
        """(key, first part's epoch) of every group not yet emitted, oldest first."""
        p = self._database.placeholder
        with closing(self._database.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute(f"SELECT group_key, first_at FROM esb_aggregate_group WHERE aggregation = {p} "
                           f"AND state <> {p} ORDER BY first_at", (aggregation, DONE))
            return [(key, first_at) for key, first_at in cursor.fetchall()]


def link_problems(routes: list[Any]) -> list[tuple[tuple, str]]:
    """(path, sentence) for every `to: {aggregate: {into, part}}` of the raw routes (the YAML
    blocks) whose `into` is not a route collecting with `from: {aggregate: ...}`, or whose part is
    not one of that route's parts: `esb check` reports them with their lines."""
    from esb.problems import did_you_mean

    collecting: dict[str, list] = {}
    for block in routes:
        source = block.get("from") if isinstance(block, dict) else None
        if isinstance(source, dict) and isinstance(source.get("aggregate"), dict):
            collecting[str(block.get("name"))] = list(source["aggregate"].get("parts") or [])
    problems = []
    for index, block in enumerate(routes):
        targets = block.get("to") if isinstance(block, dict) else None
        for position, entry in enumerate(targets if isinstance(targets, list) else []):
            options = entry.get("aggregate") if isinstance(entry, dict) else None
            if not isinstance(options, dict) or not isinstance(options.get("into"), str):
                continue
            path = ("routes", index, "to", position, "aggregate")
            into, part = options["into"], options.get("part")
            if into not in collecting:
                problems.append(((*path, "into"), f'no route "{into}" collects parts '
                                                  "(from: {aggregate: ...})"
                                                  f"{did_you_mean(into, list(collecting))}"))
            elif part not in collecting[into]:
                problems.append(((*path, "part"), f'route "{into}" collects the parts '
                                                  f'{", ".join(collecting[into])}, not "{part}"'))
    return problems
