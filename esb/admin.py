"""Admin actions on a bus: dead letters (list, show, replay, purge), pause and resume, traces.

One service for every way in, the HTTP admin API (`esb.monitoring`) and the CLI (`esb dlq`), so
that both check names the same way, journal the same steps and write the same audit entries:
each replay or purge journals a `replayed`/`purged` step per message it touched ("by <actor>"),
and every action (refused and failed ones included) is one audit entry with who, what, the
target and the outcome. Reads are neither journaled nor audited.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from esb.audit import AuditLog
from esb.errors import InputError, NotFound, Unavailable
from esb.journal import Journal, TraceEntry
from esb.pauses import SharedPauses
from esb.plugins import Accepted, RawMessage
from esb.routes import Config, Route
from esb.transport.contract import DeadLetter, Transport

Resubmit = Callable[..., Accepted]
"""`resubmit(route, raw, record_rejection=False)`: a runtime's `submit`, for raw inbound dead letters."""

SOURCE_HEADER_PREFIX = "esb-source-"
"""Headers of a raw dead letter that carry what its source knew (file, line, operation, ...)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API key's name (with the caller's address) or `cli:<os user>`."""

    name: str
    address: str | None = None

    @classmethod
    def command_line(cls) -> Actor:
        """The operating-system user running the `esb` command."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER: still say it was the CLI
            user = "unknown"
        return cls(f"cli:{user}")


@dataclass(frozen=True, slots=True)
class DeadLetterAction:
    """What a replay or purge did: `ids` touched, `missing` asked for but not there,
    `not_replayed` {id: why} for dead letters that are still there, and `reason`, a sentence
    whenever something asked for was not done (nothing there, ids missing, input still refused)."""

    action: str  # "replay" or "purge"
    route: str
    destination: str | None
    count: int
    ids: list[str]
    missing: list[str]
    audit: dict[str, Any] = field(default_factory=dict)
    not_replayed: dict[str, str] = field(default_factory=dict)
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "route": self.route, "destination": self.destination,
                "count": self.count, "ids": self.ids, "missing": self.missing,
                "not_replayed": self.not_replayed, "reason": self.reason, "audit": self.audit}


@dataclass(frozen=True, slots=True)
class PauseAction:
    """What a pause or resume changed, and what of the route is paused now."""

    action: str  # "pause" or "resume"
    route: str
    destinations: list[str]
    paused: list[str]
    audit: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "route": self.route, "destinations": self.destinations,
                "paused": self.paused, "audit": self.audit}


class AdminService:
    """Admin actions on the routes of `config`, carried out on `transport`, journaled in `journal`
    and audited in `audit`. Unknown routes, destinations and message ids raise `NotFound`;
    broker failures raise the transport's `TransportError` (a failed action is audited first).

    `resubmit` (a runtime's `submit`) replays raw inbound dead letters, the input a polled source
    could not map: they go through decode, map, validate and publish again with the route's
    current mapping, so "fix the mapping, replay" works; without it they are not replayed, and
    the answer says so.

    `pauses` (the processes of one `esb run --workers N`: esb.pauses) hears of every pause and
    resume, so the other processes follow."""

    def __init__(self, *, transport: Transport, journal: Journal, audit: AuditLog, config: Config,
                 resubmit: Resubmit | None = None, pauses: SharedPauses | None = None):
        self.transport = transport
        self.pauses = pauses
        self.journal = journal
        self.audit = audit
        self.config = config
        self.resubmit = resubmit

    # --- names --------------------------------------------------------------------------------
    def route(self, name: str) -> Route:
        return find_route(self.config, name)

    def destination(self, route: str, name: str | None) -> str | None:
        """`name` when it is a destination of `route`; None (every one) for None or ""."""
        model = self.route(route)
        if name and name not in [d.name for d in model.destinations]:
            raise NotFound(f'route "{route}" has no destination "{name}"')
        return name or None

    # --- reading ------------------------------------------------------------------------------
    def dead_letters(self, route: str, destination: str | None = None, *,
                     limit: int | None = None) -> list[DeadLetter]:
        """The dead letters of a route (every destination and its raw inbound input) or of one
        destination, oldest first, at most `limit`."""
        destination = self.destination(route, destination)
        return self.transport.dead_letters(route, destination, limit=limit)

    def dead_letter(self, route: str, message_id: str, destination: str | None = None) -> DeadLetter:
        for letter in self.dead_letters(route, destination):
            if letter.message_id == message_id:
                return letter
        raise NotFound(f'no dead letter "{message_id}" in route "{route}"')

    def trace(self, *, message_id: str | None = None, correlation_id: str | None = None,
              document_number: str | None = None) -> list[TraceEntry]:
        """Every journaled step of a message, of a correlation id or of a document number, oldest
        first (what was recorded up to now: the journal is flushed first). A message's correlation
        id is its document's number, and refused input that was read far enough to know its
        number (a document that failed validation, its dead letter) is journaled under it too."""
        self.journal.flush(2.0)
        if document_number is not None:
            if message_id is not None or correlation_id is not None:
                raise ValueError("give exactly one of message_id, correlation_id or document_number")
            correlation_id = document_number
        return self.journal.trace(message_id=message_id, correlation_id=correlation_id)

    # --- actions ------------------------------------------------------------------------------
    def replay(self, route: str, destination: str | None, ids: list[str] | None, *,
               actor: Actor) -> DeadLetterAction:
        """Send dead letters (`ids`, or all for None) back to their destination's work queue; raw
        inbound ones (of the route, `destination` None) through the route's inbound stage again."""
        destination = self.destination(route, destination)
        letters = self.transport.dead_letters(route, destination)
        chosen = [letter for letter in letters if ids is None or letter.message_id in ids]
        raw = [letter for letter in chosen if letter.destination is None]
        target = {"route": route, "destination": destination, "ids": ids if ids is not None else "all"}
        try:
            count = 0
            if len(raw) < len(chosen):
                count = self.transport.replay_dead_letters(route, destination, ids=ids)
            done = [letter.message_id for letter in chosen
                    if letter.destination is not None and letter.message_id]
            for message_id in done:
                self.journal.record("replayed", message_id=message_id, route=route, destination=destination,
                                    detail=f"by {actor.name}")
            not_replayed = {}
            for letter in raw:
                why = self._resubmit(route, letter, actor)
                if why is None:
                    done.append(letter.message_id)
                    count += 1
                else:
                    not_replayed[letter.message_id or "(no id)"] = why
        except Exception as error:
            self._audit(actor, "dead-letters.replay", target, {"failed": f"{type(error).__name__}: {error}"})
            raise
        present = {letter.message_id for letter in letters}
        missing = [i for i in ids if i not in present] if ids is not None else []
        reason = _why_not_all(route, destination, letters, missing, not_replayed)
        outcome = {"count": count, "ids": done, "missing": missing,
                   **({"not_replayed": not_replayed} if not_replayed else {})}
        entry = self._audit(actor, "dead-letters.replay", target, outcome)
        return DeadLetterAction("replay", route, destination, count, done, missing, entry, not_replayed,
                                reason)

    def _resubmit(self, route: str, letter: DeadLetter, actor: Actor) -> str | None:
        """Replay one raw inbound dead letter; None when it is stored (and its dead letter removed),
        else why it is still there."""
        if self.resubmit is None:
            return ("raw inbound input is replayed through the route's inbound stage, which this "
                    "service was not given")
        if not letter.message_id:
            return "it has no message id, so it cannot be removed once replayed; purge it and send it again"
        metadata = {name[len(SOURCE_HEADER_PREFIX):]: letter.header(name) for name in letter.headers
                    if name.startswith(SOURCE_HEADER_PREFIX)}
        raw = RawMessage(letter.body, letter.content_type, metadata)
        try:
            accepted = self.resubmit(route, raw, record_rejection=False)
        except InputError as error:
            return f"still refused with the current mapping: {error}"[:2000]
        except Unavailable as error:
            return f"the bus cannot store it now: {error}"
        self.transport.purge_dead_letters(route, None, ids=[letter.message_id])
        made = ", ".join(accepted.message_ids) or "no message (no filter let it through)"
        what = "a repeat of" if accepted.duplicate else "published as"
        self.journal.record("replayed", message_id=letter.message_id, route=route,
                            correlation_id=letter.correlation_id,
                            detail=f"by {actor.name}: through the inbound stage, {what} {made}")
        return None

    def purge(self, route: str, destination: str | None, ids: list[str] | None, *,
              actor: Actor) -> DeadLetterAction:
        """Delete dead letters (`ids`, or all for None) for good."""
        return self._purge(route, destination, ids, actor)

    def pause(self, route: str, destination: str | None = None, *, actor: Actor) -> PauseAction:
        """Stop consuming a route's destinations (or one); messages wait in their queues."""
        return self._pause_or_resume("pause", route, destination, actor)

    def resume(self, route: str, destination: str | None = None, *, actor: Actor) -> PauseAction:
        return self._pause_or_resume("resume", route, destination, actor)

    def record_refusal(self, actor: Actor, action: str, target: dict[str, Any],
                       reason: str) -> dict[str, Any]:
        """Audit an action that was refused before it started (e.g. a caller who is not an admin)."""
        return self._audit(actor, action, target, {"refused": reason})

    def _purge(self, route: str, destination: str | None, ids: list[str] | None,
               actor: Actor) -> DeadLetterAction:
        destination = self.destination(route, destination)
        letters = self.transport.dead_letters(route, destination)
        present = {letter.message_id for letter in letters}
        target = {"route": route, "destination": destination, "ids": ids if ids is not None else "all"}
        try:
            count = self.transport.purge_dead_letters(route, destination, ids=ids)
        except Exception as error:
            self._audit(actor, "dead-letters.purge", target, {"failed": f"{type(error).__name__}: {error}"})
            raise
        done = [i for i in ids if i in present] if ids is not None else sorted(i for i in present if i)
        for message_id in done:
            self.journal.record("purged", message_id=message_id, route=route, destination=destination,
                                detail=f"by {actor.name}")
        missing = [i for i in ids if i not in present] if ids is not None else []
        outcome = {"count": count, "ids": done, "missing": missing}
        entry = self._audit(actor, "dead-letters.purge", target, outcome)
        return DeadLetterAction("purge", route, destination, count, done, missing, entry,
                                reason=_why_not_all(route, destination, letters, missing, {}))

    def _pause_or_resume(self, action: str, route: str, destination: str | None,
                         actor: Actor) -> PauseAction:
        destination = self.destination(route, destination)
        change = self.transport.pause if action == "pause" else self.transport.resume
        destinations = change(route, destination)
        if self.pauses is not None:
            every = [destination] if destination else [d.name for d in self.route(route).destinations]
            self.pauses.record(route, every, paused=action == "pause")
        target = {"route": route, "destination": destination}
        entry = self._audit(actor, f"route.{action}", target, {"destinations": destinations})
        return PauseAction(action, route, destinations, sorted(self.transport.paused(route)), entry)

    def _audit(self, actor: Actor, action: str, target: dict[str, Any],
               outcome: dict[str, Any]) -> dict[str, Any]:
        return self.audit.record(who=actor.name, action=action, target=target, outcome=outcome,
                                 address=actor.address)


def _why_not_all(route: str, destination: str | None, letters: list[DeadLetter], missing: list[str],
                 not_replayed: dict[str, str]) -> str | None:
    """The sentence of a replay that did not do everything it was asked; None when it did."""
    where = f'route "{route}"' + (f' destination "{destination}"' if destination else "")
    if not letters:
        return f"{where} has no dead letters"
    reasons = []
    if missing:
        reasons.append(f"no dead letter with id {', '.join(missing)} in {where}")
    if not_replayed:
        first_id, first_reason = next(iter(not_replayed.items()))
        reasons.append(f"{len(not_replayed)} not replayed ({first_id}: {first_reason})")
    return "; ".join(reasons) or None


def find_route(config: Config, name: str) -> Route:
    """The route called `name`; `NotFound` ("did you mean ...?") when there is none."""
    try:
        return config.route(name)
    except KeyError as error:
        raise NotFound(str(error.args[0])) from None
