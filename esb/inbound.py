"""The inbound half of the route runtime: `submit` (decode, map, validate, claim the idempotency
keys, publish confirmed, journal), re-submission of a claim another process left unconfirmed, and
the dead-lettering of a polled source's refused input. `esb.runtime.Runtime` inherits it; the
attributes it uses (`pipelines`, `idempotency`, `journal`, `transport`, `config`, `options`,
`_mapping_times`) are the runtime's."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from esb import metrics
from esb.errors import InputError, MappingError, Unavailable, WouldWait
from esb.idempotency import Claim
from esb.logs import message_fields
from esb.pipeline import PreparedMessage
from esb.plugins import Accepted, RawMessage
from esb.transport.errors import PublishError

log = logging.getLogger("esb.runtime")


class Inbound:
    """Runtime methods for what comes in (see the module docstring)."""
    def submit(self, route_name: str, raw: RawMessage, *, idempotency_key: str | None = None,
               business_key: str | None = None, message_id: str | None = None,
               record_rejection: bool = True) -> Accepted:
        """Store every message made from `raw`, confirmed by the broker; see `esb.plugins.Submit`.

        `idempotency_key` is the request's key (a repeat with another body is a `Conflict`),
        `business_key` a key the source read from the content; each message also claims its
        document's own business key (see `esb.idempotency`). Refused input is journaled and
        counted as `rejected` unless `record_rejection` is False: polled sources dead-letter what
        they cannot submit, and `dead_letter()` records that one failure once."""
        return self.submit_async(route_name, raw, idempotency_key=idempotency_key, business_key=business_key,
                                 message_id=message_id, record_rejection=record_rejection).wait()

    def submit_async(self, route_name: str, raw: RawMessage, *, idempotency_key: str | None = None,
                     business_key: str | None = None, message_id: str | None = None,
                     record_rejection: bool = True, may_wait: bool = True) -> Storing:
        """`submit` up to the publish: decoded, mapped, validated, claimed, published; the broker's
        confirms are awaited by the `Storing` returned (`wait()`, or `when_done()` then `finish()`),
        so a server can answer many requests while their confirms are on the way. Input errors,
        conflicts and `Unavailable` before the publish are raised here, as `submit` raises them;
        with `may_wait` False, `WouldWait` instead of waiting for a key another request of this
        process is storing (nothing stays claimed)."""
        started = time.perf_counter()
        if not self.journal.healthy:  # what is accepted must be traceable
            raise Unavailable(f"the journal cannot be written: {self.journal.last_error}")
        try:
            prepared = self.pipelines[route_name].prepare(raw.body, idempotency_key=idempotency_key,
                                                          business_key=business_key, metadata=raw.metadata,
                                                          message_id=message_id)
            claims = self._claim_all(route_name, prepared, may_wait)
        except InputError as error:
            if record_rejection:
                self._rejected(route_name, error)
            raise
        to_publish = [message if claim.outcome == "new" else
                      replace(message, envelope=replace(message.envelope, id=claim.message_id))
                      for message, claim in zip(prepared, claims, strict=True) if claim.publish]
        metrics.received(route_name, len(to_publish))
        adopted = {claim.message_id for claim in claims if claim.outcome == "adopted"}
        futures = self._publish_all(route_name, to_publish, adopted)
        return Storing(self, route_name, prepared, claims, to_publish, futures, started)

    def stored(self, route_name: str, accepted: Accepted) -> None:
        """Called once the messages of one input are stored (whether by `submit` or
        `submit_async`): a hook for runtimes that watch what is accepted (the demo's)."""

    def resubmit(self, route_name: str, raw: RawMessage, **keys: Any) -> Accepted:
        """`submit` with the route's mapping file as it is now: replaying raw dead letters after the
        mapping was fixed needs no restart. A mapping that no longer loads is a `MappingError`."""
        path = self.config.route(route_name).map
        if path:
            changed = modified_time(path)
            if changed != self._mapping_times.get(route_name):
                try:
                    self.pipelines[route_name] = self._inbound_pipeline(self.config.route(route_name))
                except Exception as error:  # a mapping being edited: say so, keep the loaded one
                    raise MappingError(f"the mapping {path} does not load now: {error}") from None
                self._mapping_times[route_name] = changed
        return self.submit(route_name, raw, **keys)

    def _rejected(self, route_name: str, error: InputError) -> None:
        self.journal.record("rejected", message_id=str(uuid.uuid4()), route=route_name,
                            correlation_id=_document_number(error), detail=str(error)[:2000])
        metrics.rejected(route_name, error)
        log.warning("input refused: %s", error.message, extra=message_fields(
            route=route_name, outcome=f"rejected:{error.kind}"))

    def _claim_all(self, route_name: str, prepared: list[PreparedMessage],
                   may_wait: bool = True) -> list[Claim]:
        """The claim of each message's keys; a message repeating a key of an earlier one of the same
        input is its duplicate. If one claim fails, the claims made so far are disowned."""
        claims: list[Claim] = []
        seen: dict[str, str] = {}  # key -> message id, within this input
        try:
            for message in prepared:
                repeat = next((seen[key.text] for key in message.keys if key.text in seen), None)
                claim = Claim("duplicate", repeat) if repeat else self._claim(route_name, message, may_wait)
                claims.append(claim)
                seen.update((key.text, claim.message_id) for key in message.keys)
        except BaseException:
            for message, claim in zip(prepared, claims, strict=False):
                if claim.publish:
                    self.idempotency.disown(route_name, message.keys, claim.message_id)
            raise
        return claims

    def _claim(self, route_name: str, message: PreparedMessage, may_wait: bool = True) -> Claim:
        """Claim a message's keys; while another request of this process holds one unconfirmed,
        wait for its outcome (so a duplicate is never answered with the id of a message that was
        not stored); a claim another process left unconfirmed is adopted at once."""
        if not message.keys:
            return Claim("new", message.envelope.id)
        deadline = time.monotonic() + self.options.publish_timeout
        while True:
            claim = self.idempotency.claim(route_name, message.keys, message.envelope.id, owner=self.owner,
                                           stale_after=2 * self.options.publish_timeout)
            if claim.outcome != "busy":
                return claim
            if not may_wait:
                raise WouldWait(claim.key)
            if time.monotonic() > deadline:
                raise Unavailable(f'an earlier message with the key "{claim.key}" ({claim.message_id}) '
                                  f"is still being stored")
            time.sleep(0.02)

    def dead_letter(self, route_name: str, raw: RawMessage, error: BaseException) -> str:
        """Store a polled source's refused raw payload in the route's dead-letter queue, confirmed;
        returns the dead letter's message id."""
        headers = {f"esb-source-{k}": str(v) for k, v in raw.metadata.items() if v is not None}
        message_id = str(uuid.uuid4())  # the dead letter's own id: the journal traces it by that id
        number = _document_number(error)
        future = self.transport.publish_dead_letter(route_name, None, raw.body, error, headers,
                                                    message_id=message_id, correlation_id=number,
                                                    content_type=raw.content_type)
        try:
            future.result(self.options.publish_timeout)
        except (PublishError, concurrent.futures.TimeoutError) as failure:
            raise Unavailable(f"could not dead-letter the refused input: {failure}") from failure
        self.journal.record("dead_lettered", message_id=message_id, route=route_name, correlation_id=number,
                            detail=f"refused input: {str(error)[:1000]}")
        metrics.raw_dead_lettered(route_name)
        return message_id

    def _publish_all(self, route_name: str, messages: list[PreparedMessage],
                     adopted: set[str]) -> list[tuple[PreparedMessage, concurrent.futures.Future]]:
        """Journal each message as received and publish it to its destinations; the futures of
        the confirms, awaited by `Storing`."""
        route = self.config.route(route_name)
        everywhere = tuple(d.name for d in route.destinations)
        futures: list[tuple[PreparedMessage, concurrent.futures.Future]] = []
        published_at = time.time()  # the trace shows the publish when it happened, not when confirmed
        for message in messages:
            self.journal.record("received", message_id=message.envelope.id, route=route_name,
                                correlation_id=message.envelope.correlation_id, at=published_at,
                                detail="again: its earlier publish was not confirmed"
                                if message.envelope.id in adopted else None)
            if not message.destinations:
                continue  # no filter let it through: accepted, traced as filtered below
            targets = [None] if message.destinations == everywhere else list(message.destinations)
            futures.extend((message, self.transport.publish(message.envelope, route_name, target))
                           for target in targets)
        return futures

    def _settle(self, route_name: str, messages: list[PreparedMessage],
                failed: dict[str, tuple[PreparedMessage, BaseException]], published_at: float) -> None:
        """After the confirms: the keys of what is stored confirmed, of what failed disowned; each
        message journaled as published (or filtered); `Unavailable` when one was not confirmed."""
        for message in messages:
            envelope = message.envelope
            if envelope.id in failed:
                self.idempotency.disown(route_name, message.keys, envelope.id)
                continue
            self.idempotency.confirm(route_name, message.keys, envelope.id)
            if not message.destinations:
                self.journal.record("filtered", message_id=envelope.id, route=route_name,
                                    correlation_id=envelope.correlation_id, at=published_at + 1e-6,
                                    detail="no route or destination filter matched; not published")
                continue
            self.journal.record("published", message_id=envelope.id, route=route_name,
                                correlation_id=envelope.correlation_id,
                                detail=", ".join(message.destinations), at=published_at + 1e-6)
            metrics.published(route_name, message.destinations)
        if failed:
            message, error = next(iter(failed.values()))
            log.warning("publish not confirmed: %s", error, extra=message_fields(
                message_id=message.envelope.id, route=route_name))
            raise Unavailable(f"{len(failed)} of {len(messages)} messages not confirmed by the broker: "
                              f"{error}")


class Storing:
    """The messages of one input, published, their confirms on the way (see `Inbound.submit_async`).

    Either `wait()` (blocks, then `finish()`), or `when_done(callback)`, then `finish()` from
    the callback or any thread; `expire()` makes the confirms still missing failures (a server's
    deadline, `publish_timeout` after the publish). `finish()` settles once: it confirms or
    disowns the keys, journals, and returns the `Accepted` (or raises `Unavailable`)."""

    def __init__(self, inbound: Inbound, route_name: str, prepared: list[PreparedMessage],
                 claims: list[Claim], published: list[PreparedMessage],
                 futures: list[tuple[PreparedMessage, concurrent.futures.Future]], started: float):
        self._inbound = inbound
        self._route = route_name
        self._prepared, self._claims, self._published = prepared, claims, published
        self._futures = futures
        self._started = started
        self._published_at = time.time()
        self._lock = threading.Lock()
        self._expired = False
        self._outcome: tuple[Accepted | None, BaseException | None] | None = None
        self.timeout = inbound.options.publish_timeout

    def when_done(self, callback: Callable[[], None]) -> None:
        """`callback()` once every confirm arrived or failed, on the thread that settled the last
        one (the transport's I/O thread: keep it short), or at once when there is none."""
        remaining = [len(self._futures)]
        if not remaining[0]:
            callback()
            return
        lock = threading.Lock()

        def one_done(_future: concurrent.futures.Future) -> None:
            with lock:
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                callback()

        for _message, future in self._futures:
            future.add_done_callback(one_done)

    def expire(self) -> None:
        """The deadline passed: a confirm not in by now counts as failed."""
        self._expired = True

    def done(self) -> bool:
        """Whether every confirm arrived (or failed): `wait()` would not block."""
        return all(future.done() for _message, future in self._futures)

    def wait(self) -> Accepted:
        """Block until every confirm arrived (at most `timeout` seconds each), then `finish()`."""
        for _message, future in self._futures:
            with contextlib.suppress(PublishError, concurrent.futures.TimeoutError):  # counted by finish()
                future.result(self.timeout)
        self._expired = True
        return self.finish()

    def finish(self) -> Accepted:
        with self._lock:
            if self._outcome is None:
                self._outcome = self._settle()
        accepted, error = self._outcome
        if error is not None:
            raise error
        return accepted

    def _settle(self) -> tuple[Accepted | None, BaseException | None]:
        failed: dict[str, tuple[PreparedMessage, BaseException]] = {}
        for message, future in self._futures:
            if not future.done():
                if not self._expired:
                    raise RuntimeError("Storing.finish() before the confirms arrived or expired")
                failed[message.envelope.id] = (message, concurrent.futures.TimeoutError(
                    f"no confirm within {self.timeout:g} s"))
            elif future.exception() is not None:
                failed[message.envelope.id] = (message, future.exception())
        try:
            self._inbound._settle(self._route, self._published, failed, self._published_at)
        except Unavailable as error:
            return None, error
        metrics.observe_inbound(self._route, time.perf_counter() - self._started)
        for message, claim in zip(self._prepared, self._claims, strict=True):
            envelope = message.envelope
            log.info("accepted" if claim.publish else "duplicate, answered with the first id",
                     extra=message_fields(message_id=claim.message_id, correlation_id=envelope.correlation_id,
                                          route=self._route, outcome="accepted" if claim.publish
                                          else "duplicate"))
        accepted = Accepted(tuple(claim.message_id for claim in self._claims),
                            duplicate=bool(self._prepared) and not self._published)
        self._inbound.stored(self._route, accepted)
        return accepted, None


def modified_time(path: str) -> int | None:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return None


def _document_number(error: BaseException) -> str | None:
    """The number of the one document an input error refused (its correlation id), if it was read."""
    numbers = getattr(error, "document_numbers", ())
    return numbers[0] if len(numbers) == 1 else None
