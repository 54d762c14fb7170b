"""Prometheus metrics of the bus: what each route received, published, delivered, retried,
dead-lettered and rejected, how long it took, and what the broker's queues hold.

Counters and histograms are module-level prometheus_client objects, fed from two places:
- `MetricsEvents`, the transport's hooks (outbound: delivered, retried, dead-lettered);
- `received()`, `published()`, `rejected()`, `observe_inbound()`, called by the runtime's
  `submit()` (inbound outcomes).

Queue depths and consumer counts come from the transport's `queue_stats()` when `/metrics` is
scraped (cached for `QUEUE_STATS_TTL` seconds), by `QueueCollector`.

Several processes (`esb run --workers N`): set `PROMETHEUS_MULTIPROC_DIR` to an empty directory
writable by every worker *before* `esb run` starts (prometheus_client reads it when it is first
imported). Each process then writes its samples to files there and `/metrics` (served by the first
process) sums them. Empty the directory at start (`clear_multiprocess_dir()`) and call
`process_exited(pid)` when a worker ends. Without the variable the default registry is used and
`/metrics` shows this one process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from esb.envelope import H_RECEIVED_AT, parse_rfc3339
from esb.transport.contract import Delivery, Transport, TransportEvents

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that switches prometheus_client to multiprocess mode."""

QUEUE_STATS_TTL = 5.0
"""Seconds queue depths read from the broker are reused, so frequent scrapes cost one read."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
"""Seconds; end-to-end latency includes retry waits, hence the long tail."""

CONTENT_TYPE = CONTENT_TYPE_LATEST

RECEIVED = Counter("esb_messages_received", "Messages made from inbound input, per route", ["route"])
PUBLISHED = Counter("esb_messages_published", "Messages the broker confirmed, per route and destination",
                    ["route", "destination"])
DELIVERED = Counter("esb_messages_delivered", "Messages a target accepted", ["route", "destination"])
RETRIED = Counter("esb_messages_retried", "Failed deliveries sent to a retry queue", ["route", "destination"])
DEAD_LETTERED = Counter("esb_messages_dead_lettered", "Messages moved to a dead-letter queue",
                        ["route", "destination", "reason"])
REJECTED = Counter("esb_messages_rejected", "Inbound input refused (decode, mapping, validation, ...)",
                   ["route", "reason"])
FILES_SET_ASIDE = Counter("esb_files_set_aside", "Input files a polled source moved to its error folder "
                          "(or could not move: reason unmovable), per route and reason", ["route", "reason"])
INBOUND_SECONDS = Histogram("esb_inbound_seconds", "Seconds from inbound input to the broker's confirms",
                            ["route"], buckets=LATENCY_BUCKETS)
PROCESSING_SECONDS = Histogram("esb_processing_seconds", "Seconds a destination's handler took to deliver",
                               ["route", "destination"], buckets=LATENCY_BUCKETS)
END_TO_END_SECONDS = Histogram("esb_end_to_end_seconds", "Seconds from receipt by the bus to delivery",
                               ["route", "destination"], buckets=LATENCY_BUCKETS)
LAST_SUCCESS = Gauge("esb_last_success_timestamp_seconds", "Unix time of the last delivery",
                     ["route", "destination"], multiprocess_mode="max")
BROKER_CONNECTED = Gauge("esb_broker_connected", "1 while the broker connection is up",
                         multiprocess_mode="livemax")

COUNTERS = {"received": RECEIVED, "published": PUBLISHED, "delivered": DELIVERED, "retried": RETRIED,
            "dead_lettered": DEAD_LETTERED, "rejected": REJECTED}
"""The counters `counters_by_route()` reads back, by the name the admin API gives them."""

INBOUND = "-"
"""The destination label of what has none yet (inbound rejections, raw dead letters)."""


# --- inbound outcomes (called by the runtime) ---------------------------------------------------
def received(route: str, count: int = 1) -> None:
    """`count` messages were made from one inbound input of `route`."""
    RECEIVED.labels(route).inc(count)


def published(route: str, destinations: Iterable[str]) -> None:
    """One message was confirmed by the broker for each of `destinations`."""
    for destination in destinations:
        PUBLISHED.labels(route, destination).inc()


def rejected(route: str, error: BaseException) -> None:
    """An inbound input was refused; the reason label is the error's kind (`validation`, ...)."""
    REJECTED.labels(route, rejection_reason(error)).inc()


def raw_dead_lettered(route: str) -> None:
    """A polled source's refused raw input was stored in the route's inbound dead-letter queue."""
    DEAD_LETTERED.labels(route, INBOUND, "input").inc()


def file_set_aside(route: str, reason: str) -> None:
    """A polled source set one input file aside (`refused`, `empty`, `not_regular`, `error`, ...)."""
    FILES_SET_ASIDE.labels(route, reason).inc()


def observe_inbound(route: str, seconds: float) -> None:
    INBOUND_SECONDS.labels(route).observe(seconds)


def rejection_reason(error: BaseException) -> str:
    """`ValidationError` -> `validation`, `DecodeError` -> `decode`, `InputError` -> `input`."""
    name = type(error).__name__
    name = name[: -len("Error")] if name.endswith("Error") and name != "Error" else name
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_") or "unknown"


# --- outbound outcomes (transport hooks) -------------------------------------------------------
class MetricsEvents(TransportEvents):
    """Counts the outcomes the transport reports. Chain it with other hooks with `ChainedEvents`."""

    def connected(self) -> None:
        BROKER_CONNECTED.set(1)

    def disconnected(self, error: BaseException | None) -> None:
        BROKER_CONNECTED.set(0)

    def __init__(self) -> None:
        self._delivered: dict[tuple[str, str | None], tuple[Any, Any, Any, Any]] = {}

    def acked(self, delivery: Delivery, seconds: float) -> None:
        # the labelled children of a destination, looked up once: .labels() costs about a microsecond
        # each (a lock, a tuple, a dict), four times per delivered message
        labels = (delivery.route, delivery.destination)
        children = self._delivered.get(labels)
        if children is None:
            children = self._delivered[labels] = (
                DELIVERED.labels(*labels), PROCESSING_SECONDS.labels(*labels), LAST_SUCCESS.labels(*labels),
                END_TO_END_SECONDS.labels(*labels))
        delivered, processing, last_success, end_to_end = children
        delivered.inc()
        processing.observe(seconds)
        now = time.time()
        last_success.set(now)
        latency = end_to_end_seconds(delivery, now)
        if latency is not None:
            end_to_end.observe(latency)

    def retried(self, delivery: Delivery, error: BaseException, delay: float) -> None:
        RETRIED.labels(delivery.route, delivery.destination).inc()

    def dead_lettered(self, delivery: Delivery, error: BaseException, reason: str) -> None:
        DEAD_LETTERED.labels(delivery.route, delivery.destination or INBOUND, reason).inc()


class ChainedEvents(TransportEvents):
    """Calls each of `events` in turn; one that raises is logged and does not stop the others."""

    def __init__(self, *events: TransportEvents):
        self.events = events

    def _each(self, hook: str, *args: Any) -> None:
        for events in self.events:
            try:
                getattr(events, hook)(*args)
            except Exception:  # hooks must not raise into the transport's threads
                log.exception("transport event hook %s.%s failed", type(events).__name__, hook)

    def connected(self) -> None:
        self._each("connected")

    def disconnected(self, error: BaseException | None) -> None:
        self._each("disconnected", error)

    def acked(self, delivery: Delivery, seconds: float) -> None:
        self._each("acked", delivery, seconds)

    def retried(self, delivery: Delivery, error: BaseException, delay: float) -> None:
        self._each("retried", delivery, error, delay)

    def dead_lettered(self, delivery: Delivery, error: BaseException, reason: str) -> None:
        self._each("dead_lettered", delivery, error, reason)


def end_to_end_seconds(delivery: Delivery, now: float | None = None) -> float | None:
    """Seconds since the bus received the message (its `esb-received-at` header), or None."""
    value = delivery.headers.get(H_RECEIVED_AT) if delivery.headers else None
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8", "replace")
    if not value:
        return None
    try:
        received_at = parse_rfc3339(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, (now or time.time()) - received_at)


# --- broker queues --------------------------------------------------------------------------------
class QueueCollector:
    """`esb_queue_messages` and `esb_queue_consumers` per queue of the topology, read from the broker."""

    def __init__(self, transport: Transport, *, ttl: float = QUEUE_STATS_TTL):
        self.transport = transport
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[int, int]] = {}
        self._cached_at = float("-inf")

    def stats(self) -> dict[str, tuple[int, int]]:
        """{queue name: (messages, consumers)}; {} when the broker cannot be read."""
        with self._lock:
            if time.monotonic() - self._cached_at > self.ttl:
                try:
                    self._cached = dict(self.transport.queue_stats())
                except Exception as error:  # a scrape must answer even when the broker does not
                    log.warning("could not read queue depths from the broker: %s", error)
                    self._cached = {}
                self._cached_at = time.monotonic()
            return dict(self._cached)

    def collect(self):
        labels = ["queue", "route", "destination", "kind"]
        messages = GaugeMetricFamily("esb_queue_messages", "Messages ready in a broker queue", labels=labels)
        consumers = GaugeMetricFamily("esb_queue_consumers", "Consumers of a broker queue", labels=labels)
        stats = self.stats()
        for spec in self.transport.topology.queues:
            if spec.name not in stats:
                continue
            count, consumer_count = stats[spec.name]
            values = [spec.name, spec.route, spec.destination or INBOUND, spec.kind]
            messages.add_metric(values, count)
            consumers.add_metric(values, consumer_count)
        yield messages
        yield consumers

    def depth(self, route: str, destination: str | None, kind: str, *, fresh: bool = False,
              inbound: bool = False) -> int | None:
        """Messages in the queues of one kind of a route (and destination), plus its inbound
        dead-letter queue when `inbound`; None when unknown. `fresh` reads the broker now."""
        kinds = {kind, "inbound-dead-letter"} if inbound else {kind}
        return self._sum(route, destination, kinds, 0, fresh)

    def consumers(self, route: str, destination: str | None, kind: str) -> int | None:
        """Consumers of the queues of one kind of a route (and destination); None when unknown."""
        return self._sum(route, destination, {kind}, 1, False)

    def _sum(self, route: str, destination: str | None, kinds: set[str], column: int,
             fresh: bool) -> int | None:
        if fresh:
            with self._lock:
                self._cached_at = float("-inf")
        stats = self.stats()
        specs = [q for q in self.transport.topology.queues
                 if q.route == route and q.kind in kinds
                 and (destination is None or q.destination == destination)]
        if not specs or any(q.name not in stats for q in specs):
            return None
        return sum(stats[q.name][column] for q in specs)


# --- exposition -----------------------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) or None


def registry() -> CollectorRegistry:
    """The registry `/metrics` shows: every process's samples summed in multiprocess mode."""
    if multiprocess_dir() is None:
        return REGISTRY
    from prometheus_client import multiprocess

    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated)
    return aggregated


def scrape(queues: QueueCollector | None = None, *collectors: Any) -> bytes:
    """The Prometheus text exposition of the bus's metrics (and the broker's queues, and what
    other collectors read at scrape time: the inventory accuracy per warehouse)."""
    text = generate_latest(registry())
    for collector in (queues, *collectors):
        if collector is None:
            continue
        extra = CollectorRegistry(auto_describe=False)
        extra.register(collector)
        text += generate_latest(extra)
    return text


def clear_multiprocess_dir() -> None:
    """Empty the multiprocess directory at start, so counters of an earlier run do not add up."""
    directory = multiprocess_dir()
    if directory:
        for path in Path(directory).glob("*.db"):
            path.unlink(missing_ok=True)


def process_exited(pid: int) -> None:
    """Tell prometheus_client a worker ended (its live gauges stop counting)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def counters_by_route() -> dict[str, dict[str, Any]]:
    """{route: {"total": {counter: n}, "destinations": {destination: {counter: n}}, "last_success": t}}
    read back from the registry `/metrics` shows (so every process counts)."""
    routes: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"total": defaultdict(float), "destinations": defaultdict(lambda: defaultdict(float)),
                 "last_success": None})
    names = {f"{counter._name}_total": what for what, counter in COUNTERS.items()}
    for family in registry().collect():
        for sample in family.samples:
            route = sample.labels.get("route")
            if route is None:
                continue
            if sample.name in names:
                what = names[sample.name]
                routes[route]["total"][what] += sample.value
                destination = sample.labels.get("destination")
                if destination is not None:
                    routes[route]["destinations"][destination][what] += sample.value
            elif sample.name == "esb_last_success_timestamp_seconds":
                last = routes[route]["last_success"]
                routes[route]["last_success"] = max(last or 0.0, sample.value)
    return {route: {"total": {k: int(v) for k, v in facts["total"].items()},
                    "destinations": {d: {k: int(v) for k, v in c.items()}
                                     for d, c in facts["destinations"].items()},
                    "last_success": facts["last_success"]}
            for route, facts in routes.items()}


def latency_by_destination(quantiles: tuple[float, ...] = (0.5, 0.99),
                           ) -> dict[tuple[str, str], dict[str, Any]]:
    """{(route, destination): {"p50": seconds, "p99": seconds, "count": n}} of the end-to-end latency
    since start, estimated from the histogram's buckets (linear inside a bucket, as Prometheus's
    histogram_quantile does); None where nothing was delivered yet."""
    buckets: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in registry().collect():
        for sample in family.samples:
            if sample.name != f"{END_TO_END_SECONDS._name}_bucket":
                continue
            key = (sample.labels.get("route"), sample.labels.get("destination"))
            buckets[key][float(sample.labels["le"])] += sample.value  # summed over the processes
    found = {}
    for key, cumulative in buckets.items():
        bounds = sorted(cumulative)
        total = cumulative[bounds[-1]] if bounds else 0.0
        found[key] = {"count": int(total), **{f"p{round(q * 100)}": _quantile(q, bounds, cumulative, total)
                                              for q in quantiles}}
    return found


def _quantile(q: float, bounds: list[float], cumulative: dict[float, float], total: float) -> float | None:
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last bucket: its lower edge is all that is known
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower
