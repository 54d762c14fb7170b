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

import logging
import threading
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esb import codecs, metrics, startup
from esb.credentials import Credentials
from esb.http_server import HttpLimits, HttpServer
from esb.idempotency import IdempotencyStore
from esb.inbound import Inbound, modified_time
from esb.journal import JOURNAL_FILE_NAME, Journal
from esb.journal_events import JournalEvents
from esb.logs import message_fields
from esb.pauses import SharedPauses
from esb.pipeline import InboundPipeline, OutboundPipeline
from esb.plugins import Sink, Source, SourceContext, get_adapter
from esb.routes import Config, Destination, Route
from esb.transport import create_transport, transport_scope
from esb.transport.contract import DEFAULT_PREFETCH, Delivery, Transport
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
    http: bool = True  # serve inbound endpoints and monitoring
    sources: bool = True  # take input: push endpoints, and pollers when `pollers` is on too
    pollers: bool = True  # run polled sources (off in the extra workers of esb run --workers N)
    consumers: bool = True
    workers: bool = False  # one of the processes of esb run --workers N: share the port and pauses
    journal: str | None = None  # a postgresql:// DSN; default: <data_dir>/journal.sqlite
    credentials: Credentials = field(default_factory=Credentials)
    publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT
    http_limits: HttpLimits = field(default_factory=HttpLimits)  # esb run: from ESB_HTTP_* variables
    transport_options: dict[str, Any] = field(default_factory=dict)


class Runtime(Inbound):
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
        from esb.aggregator import state_target
        from esb.ledger import DocumentLedger

        self.state_target = state_target(options.data_dir, options.journal)
        self.ledger = DocumentLedger(self.state_target)  # documents per flow, lead times (esb.ledger)
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
        self._mapping_times = {route.name: modified_time(route.map) for route in config.routes if route.map}
        self.pipelines = {route.name: self._inbound_pipeline(route) for route in config.routes}
        self.app: Flask | None = None  # the HTTP app, given to start() (or a bare one made there)
        self.sources: list[Source] = []
        self._pushed_routes: list[str] = []  # routes whose source is an HTTP endpoint
        self.sinks: list[Sink] = []
        self._outbound: dict[tuple[str, str], tuple[Sink, OutboundPipeline, str]] = {}
        self.server: HttpServer | None = None
        self.pauses = SharedPauses(options.data_dir, self.transport) if options.workers else None
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
        self._bind_endpoints(sink)
        key = (route.name, destination.name)
        self._outbound[key] = self._outbound_piece(destination, sink, self.config)

        def deliver(envelope, delivery: Delivery) -> None:
            sink, outbound, content_type = self._outbound[key]  # looked up per message: see reload()
            target_id = sink.deliver(envelope, outbound.render(envelope), content_type)
            self.ledger.delivered(envelope, route.name, destination.endpoint.adapter)
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
        if source.poll_interval and not self.options.pollers:
            return  # the first process of esb run --workers N polls; this one serves and consumes
        # a polled source dead-letters what it cannot submit: that failure is recorded there, once
        submit = partial(self.submit, route.name, record_rejection=not source.poll_interval)
        submit_async = partial(self.submit_async, route.name, record_rejection=not source.poll_interval)
        context = SourceContext(route=route.name, submit=submit, submit_async=submit_async,
                                add_url_rule=self.app.add_url_rule, data_dir=self.options.data_dir,
                                credentials=self.options.credentials,
                                dead_letter=partial(self.dead_letter, route.name),
                                set_aside=partial(metrics.file_set_aside, route.name),
                                trace=partial(self._trace_source, route.name))
        self._bind_state(source)
        source.start(context)
        self.sources.append(source)
        if not source.poll_interval:
            self._pushed_routes.append(route.name)
        if source.poll_interval:
            self._scheduler().add_job(source.poll, "interval", seconds=source.poll_interval,
                                      id=f"poll-{route.name}", max_instances=1, coalesce=True)

    def _trace_source(self, route_name: str, step: str, message_id: str, detail: str) -> None:
        self.journal.record(step, message_id=message_id, route=route_name, detail=detail)

    def _bind_endpoints(self, sink: Sink) -> None:
        """Let a sink that takes HTTP calls of its own (the AS2 sink's asynchronous receipts) mount
        them on the app: `bind_endpoints(add_url_rule)`."""
        bind = getattr(sink, "bind_endpoints", None)
        if bind is not None:
            bind(self.app.add_url_rule)

    def _bind_state(self, part: Source | Sink) -> None:
        """Tell a part that keeps state of its own (the aggregator) where: esb.aggregator.state_target;
        one that watches the bus (the alerts source's time rules) what it may read: esb.watch.BusView."""
        bind = getattr(part, "bind_state", None)
        if bind is not None:
            bind(self.state_target)
        watch = getattr(part, "bind_bus", None)
        if watch is not None:
            from esb.watch import BusView

            watch(BusView(routes=lambda: [route.name for route in self.config.routes],
                          dead_letter_depths=self._dead_letter_depths,
                          dead_lettered_since=lambda route, since: self.journal.message_ids(
                              route, "dead_lettered", since),
                          ledger=self.ledger))

    def _dead_letter_depths(self) -> dict[tuple[str, str | None], int]:
        from esb.transport.topology import DEAD_LETTER, INBOUND_DEAD_LETTER

        stats = self.transport.queue_stats()
        return {(queue.route, queue.destination): stats[queue.name][0]
                for queue in self.transport.topology.queues
                if queue.kind in (DEAD_LETTER, INBOUND_DEAD_LETTER) and queue.name in stats}

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
        if self.pauses is not None:
            self.pauses.start()
        if self.options.sources:
            for route in self.config.routes:
                self._start_source(route)
            if self.scheduler is not None:
                self.scheduler.start()
        if self.options.sources and self.options.pollers and self.options.http:
            _warn(startup.routes_without_senders(self.config, self._pushed_routes, self.options.credentials))
        _warn(startup.embedded_leftovers(self.options.data_dir, in_use=getattr(self.transport, "path", None)))
        if self.options.http:
            self.server = HttpServer(self.app, host=self.options.host, port=self.options.port,
                                     limits=self.options.http_limits, reuse_port=self.options.workers).start()
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
        if self.pauses is not None:
            self.pauses.stop()
        self.transport.stop(timeout)
        for sink in self.sinks:
            sink.close()
        self.journal.close()
        self.ledger.close()
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
