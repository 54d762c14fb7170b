"""The route runtime: wires sources, the pipeline, validation, the transport, sinks, the journal
and the HTTP app together for every route of a `Config`. `esb run` starts one; tests start one
in-process on a free port. The HTTP app is given to `start()`: the monitoring app is built on
top of a runtime (`esb.monitoring.create_app(runtime)`), never imported here.

Inbound: `submit(route, raw)` = decode, map, validate, filter (esb.pipeline), de-duplicate by
idempotency key, publish confirmed to every destination that passed its filter; the answer
comes only after the broker confirmed every message made from `raw`.
Outbound: one consumer per (route, destination) renders the envelope for its target and hands
it to the sink; the transport turns the sink's outcome into ack, retry or dead-letter.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esb import codecs, metrics, startup
from esb.credentials import Credentials
from esb.errors import InputError, MappingError, Unavailable
from esb.http_server import HttpLimits, HttpServer
from esb.idempotency import Claim, IdempotencyStore
from esb.journal import JOURNAL_FILE_NAME, Journal
from esb.journal_events import JournalEvents
from esb.logs import message_fields
from esb.pipeline import InboundPipeline, OutboundPipeline, PreparedMessage
from esb.plugins import Accepted, RawMessage, Sink, Source, SourceContext, get_adapter
from esb.routes import Config, Destination, Route
from esb.transport import create_transport, transport_scope
from esb.transport.contract import DEFAULT_PREFETCH, Delivery, Transport
from esb.transport.errors import PublishError
from esb.web import ReadinessCheck, create_app

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("esb.runtime")

DEFAULT_PUBLISH_TIMEOUT = 15.0
"""Seconds an inbound request waits for the broker's confirms before it is answered 503."""

@dataclass
class RuntimeOptions:
    """How one `esb run` process runs (flags > environment > routes.yaml settings)."""

    broker_url: str | None
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    http: bool = True  # serve inbound endpoints and monitoring (off in extra consumer workers)
    sources: bool = True  # run sources and pollers (off in extra consumer workers)
    consumers: bool = True
    journal: str | None = None  # a postgresql:// DSN; default: <data_dir>/journal.sqlite
    credentials: Credentials = field(default_factory=Credentials)
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT
    http_limits: HttpLimits = field(default_factory=HttpLimits)  # esb run: from ESB_HTTP_* variables
    transport_options: dict[str, Any] = field(default_factory=dict)


class Runtime:
    def __init__(self, config: Config, options: RuntimeOptions, *, validator: Any = None):
        self.config = config
        self.options = options
        if validator is None:
            from esb.schemas import default_registry

            validator = default_registry()
        self._validate = validator.validate
        self._document_keys = validator.document_keys
        options.data_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(options.journal or options.data_dir / JOURNAL_FILE_NAME)
        self._journal_events = JournalEvents(self.journal)
        self.owner = uuid.uuid4().hex  # this process's name on the idempotency keys it claims
        transport_options = {"queue_type": config.settings.get("queue_type"), "data_dir": options.data_dir,
                             "prefetch": config.settings.get("prefetch", DEFAULT_PREFETCH),
                             **options.transport_options}
        self.transport: Transport = create_transport(options.broker_url, config.routes,
                                                     events=metrics.ChainedEvents(self._journal_events,
                                                                                  metrics.MetricsEvents()),
                                                     **transport_options)
        self.idempotency = IdempotencyStore(options.journal or options.data_dir / "idempotency.sqlite",
                                            scope=transport_scope(self.transport))
        self._mapping_times = {route.name: _modified(route.map) for route in config.routes if route.map}
        self.pipelines = {route.name: self._inbound_pipeline(route) for route in config.routes}
        self.app: Flask | None = None  # the HTTP app, given to start() (or a bare one made there)
        self.sources: list[Source] = []
        self._pushed_routes: list[str] = []  # routes whose source is an HTTP endpoint
        self.sinks: list[Sink] = []
        self._outbound: dict[tuple[str, str], tuple[Sink, OutboundPipeline, str]] = {}
        self.server: HttpServer | None = None
        self.scheduler = None
        self._stopped = threading.Event()

    # --- building ---------------------------------------------------------------------------
    def _inbound_pipeline(self, route: Route, config: Config | None = None) -> InboundPipeline:
        mapping = self._load_mapping(route.map, config)
        return InboundPipeline(route, mapping=mapping, validate=self._validate,
                               source=route.source.system or route.source.adapter,
                               document_keys=self._document_keys)

    def _load_mapping(self, path: str | None, config: Config | None = None) -> Any:
        if not path:
            return None
        from esb.mapping.loader import load_mapping, mapping_name

        config = config or self.config
        return load_mapping(path, timezone=config.settings.get("timezone"),
                            name=mapping_name(path, config.path))

    def _system_settings(self, adapter: str, system: str | None) -> dict | None:
        if not system:
            return None
        return self.config.systems[system].settings.get(adapter)

    def _start_consumer(self, route: Route, destination: Destination) -> None:
        endpoint = destination.endpoint
        spec = get_adapter(endpoint.adapter)
        if spec.sink_factory is None:
            raise RuntimeError(f'adapter "{endpoint.adapter}" cannot deliver yet (route {route.name})')
        sink = self._make_sink(route, destination)
        self.sinks.append(sink)
        self._bind_state(sink)
        key = (route.name, destination.name)
        self._outbound[key] = self._outbound_piece(destination, sink, self.config)

        def deliver(envelope, delivery: Delivery) -> None:
            sink, outbound, content_type = self._outbound[key]  # looked up per message: see reload()
            target_id = sink.deliver(envelope, outbound.render(envelope), content_type)
            if target_id:
                self._journal_events.answered(delivery, str(target_id))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("delivered%s", f" as {target_id}" if target_id else "", extra=message_fields(
                    message_id=envelope.id, correlation_id=envelope.correlation_id, route=route.name,
                    destination=destination.name, attempt=delivery.attempt, outcome="delivered"))

        self.transport.consume(route.name, destination.name, deliver)

    def _outbound_piece(self, destination: Destination, sink: Sink,
                        config: Config) -> tuple[Sink, OutboundPipeline, str]:
        mapping = self._load_mapping(destination.map, config)
        output_format = getattr(mapping, "output_format", None) or "json"
        return sink, OutboundPipeline(destination, mapping=mapping), codecs.content_type(output_format)

    def _make_sink(self, route: Route, destination: Destination) -> Sink:
        """The sink of a destination (`esb test` overrides this to capture what would be sent)."""
        endpoint = destination.endpoint
        return get_adapter(endpoint.adapter).sink_factory(
            endpoint, self._system_settings(endpoint.adapter, endpoint.system))

    def _start_source(self, route: Route) -> None:
        endpoint = route.source
        spec = get_adapter(endpoint.adapter)
        if spec.source_factory is None:
            raise RuntimeError(f'adapter "{endpoint.adapter}" cannot be a source yet (route {route.name})')
        source = spec.source_factory(endpoint, self._system_settings(endpoint.adapter, endpoint.system),
                                     route.name)
        # a polled source dead-letters what it cannot submit: that failure is recorded there, once
        submit = partial(self.submit, route.name, record_rejection=not source.poll_interval)
        context = SourceContext(route=route.name, submit=submit,
                                add_url_rule=self.app.add_url_rule, data_dir=self.options.data_dir,
                                credentials=self.options.credentials,
                                dead_letter=partial(self.dead_letter, route.name),
                                set_aside=partial(metrics.file_set_aside, route.name))
        self._bind_state(source)
        source.start(context)
        self.sources.append(source)
        if not source.poll_interval:
            self._pushed_routes.append(route.name)
        if source.poll_interval:
            self._scheduler().add_job(source.poll, "interval", seconds=source.poll_interval,
                                      id=f"poll-{route.name}", max_instances=1, coalesce=True)

    def _bind_state(self, part: Source | Sink) -> None:
        """Tell a part that keeps state of its own (the aggregator) where: esb.aggregator.state_target."""
        bind = getattr(part, "bind_state", None)
        if bind is not None:
            from esb.aggregator import state_target

            bind(state_target(self.options.data_dir, self.options.journal))

    def _scheduler(self):
        if self.scheduler is None:
            from apscheduler.schedulers.background import BackgroundScheduler

            self.scheduler = BackgroundScheduler(timezone="UTC")
        return self.scheduler

    # --- running ----------------------------------------------------------------------------
    def start(self, timeout: float = 30.0, *, app: Flask | None = None) -> Runtime:
        """Connect, declare, consume, mount sources on `app`, then serve it; returns self.

        `app` is the HTTP app to serve: `esb run` and the demo pass the monitoring app
        (`esb.monitoring.create_app(runtime)`, built on `readiness_checks()` and the transport,
        journal and config of this runtime); without one, a bare app of the inbound endpoints
        and `/healthz`, `/readyz` (`esb.web.create_app`) is served."""
        self.app = app if app is not None else create_app(readiness=self.readiness_checks())
        if self.options.consumers:
            for route in self.config.routes:
                for destination in route.destinations:
                    self._start_consumer(route, destination)
        self.transport.start(timeout)
        if self.options.sources:
            for route in self.config.routes:
                self._start_source(route)
            if self.scheduler is not None:
                self.scheduler.start()
        if self.options.sources and self.options.http:
            _warn(startup.routes_without_senders(self.config, self._pushed_routes, self.options.credentials))
        _warn(startup.embedded_leftovers(self.options.data_dir, in_use=getattr(self.transport, "path", None)))
        if self.options.http:
            self.server = HttpServer(self.app, host=self.options.host, port=self.options.port,
                                     limits=self.options.http_limits).start()
        log.info("bus started: %d routes", len(self.config.routes))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking input, finish (or requeue) what is in hand, close. Safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.server is not None:
            self.server.stop()
        for source in self.sources:  # first, so a poll in progress stops between records
            source.stop()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        self.transport.stop(timeout)
        for sink in self.sinks:
            sink.close()
        self.journal.close()
        log.info("bus stopped")

    def wait(self) -> None:
        self._stopped.wait()

    # --- reloading (esb.reload checks the new files and refuses what needs a restart) ----------
    def reload(self, config: Config) -> None:
        """Use the mappings, filters, validation and destination options of `config`, which has
        the same routes, sources and destinations as the running one. Everything is built first (an
        error leaves the old config running), then swapped; a message in hand finishes with the old
        pieces, and replaced sinks are closed at stop."""
        pipelines = {route.name: self._inbound_pipeline(route, config) for route in config.routes}
        outbound = {}
        for route in config.routes:
            for destination in route.destinations:
                key = (route.name, destination.name)
                if key not in self._outbound:
                    continue  # this process does not consume (a source-only process)
                sink = self._outbound[key][0]
                if destination.endpoint.options != self.config.route(route.name).destination(
                        destination.name).endpoint.options:
                    sink = self._make_sink(route, destination)
                    self._bind_state(sink)
                    self.sinks.append(sink)
                outbound[key] = self._outbound_piece(destination, sink, config)
        self.pipelines, self._outbound, self.config = pipelines, outbound, config
        log.info("reloaded %s: %d routes", config.path, len(config.routes))

    # --- inbound ----------------------------------------------------------------------------
    def submit(self, route_name: str, raw: RawMessage, *, idempotency_key: str | None = None,
               business_key: str | None = None, message_id: str | None = None,
               record_rejection: bool = True) -> Accepted:
        """Store every message made from `raw`, confirmed by the broker; see `esb.plugins.Submit`.

        `idempotency_key` is the request's key (a repeat with another body is a `Conflict`),
        `business_key` a key the source read from the content; each message also claims its
        document's own business key (see `esb.idempotency`). Refused input is journaled and
        counted as `rejected` unless `record_rejection` is False: polled sources dead-letter what
        they cannot submit, and `dead_letter()` records that one failure once."""
        started = time.perf_counter()
        if not self.journal.healthy:  # what is accepted must be traceable
            raise Unavailable(f"the journal cannot be written: {self.journal.last_error}")
        try:
            prepared = self.pipelines[route_name].prepare(raw.body, idempotency_key=idempotency_key,
                                                          business_key=business_key, metadata=raw.metadata,
                                                          message_id=message_id)
            claims = self._claim_all(route_name, prepared)
        except InputError as error:
            if record_rejection:
                self._rejected(route_name, error)
            raise
        to_publish = [message if claim.outcome == "new" else
                      replace(message, envelope=replace(message.envelope, id=claim.message_id))
                      for message, claim in zip(prepared, claims, strict=True) if claim.publish]
        metrics.received(route_name, len(to_publish))
        adopted = {claim.message_id for claim in claims if claim.outcome == "adopted"}
        self._publish_all(route_name, to_publish, adopted)
        metrics.observe_inbound(route_name, time.perf_counter() - started)
        for message, claim in zip(prepared, claims, strict=True):
            envelope = message.envelope
            log.info("accepted" if claim.publish else "duplicate, answered with the first id",
                     extra=message_fields(message_id=claim.message_id, correlation_id=envelope.correlation_id,
                                          route=route_name, outcome="accepted" if claim.publish
                                          else "duplicate"))
        return Accepted(tuple(claim.message_id for claim in claims),
                        duplicate=bool(prepared) and not to_publish)

    def resubmit(self, route_name: str, raw: RawMessage, **keys: Any) -> Accepted:
        """`submit` with the route's mapping file as it is now: replaying raw dead letters after the
        mapping was fixed needs no restart. A mapping that no longer loads is a `MappingError`."""
        path = self.config.route(route_name).map
        if path:
            changed = _modified(path)
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

    def _claim_all(self, route_name: str, prepared: list[PreparedMessage]) -> list[Claim]:
        """The claim of each message's keys; a message repeating a key of an earlier one of the same
        input is its duplicate. If one claim fails, the claims made so far are disowned."""
        claims: list[Claim] = []
        seen: dict[str, str] = {}  # key -> message id, within this input
        try:
            for message in prepared:
                repeat = next((seen[key.text] for key in message.keys if key.text in seen), None)
                claim = Claim("duplicate", repeat) if repeat else self._claim(route_name, message)
                claims.append(claim)
                seen.update((key.text, claim.message_id) for key in message.keys)
        except BaseException:
            for message, claim in zip(prepared, claims, strict=False):
                if claim.publish:
                    self.idempotency.disown(route_name, message.keys, claim.message_id)
            raise
        return claims

    def _claim(self, route_name: str, message: PreparedMessage) -> Claim:
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

    def _publish_all(self, route_name: str, messages: list[PreparedMessage], adopted: set[str]) -> None:
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
        failed: dict[str, tuple[PreparedMessage, BaseException]] = {}
        for message, future in futures:
            try:
                future.result(self.options.publish_timeout)
            except (PublishError, concurrent.futures.TimeoutError) as error:
                failed[message.envelope.id] = (message, error)
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

    # --- readiness --------------------------------------------------------------------------
    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """The checks `/readyz` runs: the broker, the journal, the pollers, and what the sources and
        sinks say of their own connections (`Source.readiness`, `Sink.readiness`)."""
        return {"broker": self._broker_ready, "journal": self._journal_ready, "pollers": self._pollers_ready,
                "adapters": self._adapters_ready}

    def _broker_ready(self) -> str | None:
        # the transport declares its topology on every (re)connect, before it reports connected
        return None if self.transport.connected else "not connected to the broker (topology not declared)"

    def _pollers_ready(self) -> str | None:
        polled = [s for s in self.sources if s.poll_interval]
        if polled and (self.scheduler is None or not self.scheduler.running):
            return f"{len(polled)} polling sources but the scheduler is not running"
        return None

    def _adapters_ready(self) -> str | None:
        checks = [getattr(part, "readiness", None) for part in (*self.sources, *self.sinks)]
        problems = [problem for check in checks if check is not None and (problem := check())]
        return "; ".join(dict.fromkeys(problems)) or None

    def _journal_ready(self) -> str | None:
        return None if self.journal.healthy else f"journal not writable: {self.journal.last_error}"


def _warn(warning: str | None) -> None:
    if warning:
        log.warning(warning)


def _modified(path: str) -> int | None:
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return None


def _document_number(error: BaseException) -> str | None:
    """The number of the one document an input error refused (its correlation id), if it was read."""
    numbers = getattr(error, "document_numbers", ())
    return numbers[0] if len(numbers) == 1 else None
