"""Metrics: transport hooks and inbound outcomes become Prometheus samples a scraper can parse."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from esb import metrics
from esb.envelope import H_RECEIVED_AT
from esb.errors import DecodeError, ValidationError
from esb.transport.contract import Delivery, TransportEvents
from esb.transport.topology import Topology


def samples(text: bytes | str) -> dict[tuple[str, tuple], float]:
    text = text.decode() if isinstance(text, bytes) else text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def delivery(route: str, destination: str = "wms", received_ago: float | None = 2.0) -> Delivery:
    headers = {}
    if received_ago is not None:
        at = datetime.now(UTC) - timedelta(seconds=received_ago)
        headers[H_RECEIVED_AT] = at.isoformat(timespec="milliseconds")
    return Delivery(route, destination, str(uuid.uuid4()), "c-1", 1, False, headers)


def test_transport_outcomes_and_inbound_outcomes_are_counted_per_route_and_destination():
    route = "r" + uuid.uuid4().hex[:8]
    events = metrics.MetricsEvents()
    metrics.received(route, 3)
    metrics.published(route, ["wms", "archive"])
    metrics.rejected(route, ValidationError("bad"))
    metrics.rejected(route, DecodeError("not json"))
    metrics.observe_inbound(route, 0.02)
    events.acked(delivery(route), 0.05)
    events.retried(delivery(route), RuntimeError("502"), 1.0)
    events.dead_lettered(delivery(route, "archive"), RuntimeError("400"), "permanent")

    scraped = samples(metrics.scrape())

    assert scraped[("esb_messages_received_total", (("route", route),))] == 3
    assert scraped[("esb_messages_published_total", (("destination", "archive"), ("route", route)))] == 1
    assert scraped[("esb_messages_delivered_total", (("destination", "wms"), ("route", route)))] == 1
    assert scraped[("esb_messages_retried_total", (("destination", "wms"), ("route", route)))] == 1
    assert scraped[("esb_messages_dead_lettered_total",
                    (("destination", "archive"), ("reason", "permanent"), ("route", route)))] == 1
    assert scraped[("esb_messages_rejected_total", (("reason", "validation"), ("route", route)))] == 1
    assert scraped[("esb_messages_rejected_total", (("reason", "decode"), ("route", route)))] == 1
    assert scraped[("esb_processing_seconds_count", (("destination", "wms"), ("route", route)))] == 1
    wms = (("destination", "wms"),)
    assert scraped[("esb_end_to_end_seconds_bucket", (*wms, ("le", "1.0"), ("route", route)))] == 0
    assert scraped[("esb_end_to_end_seconds_bucket", (*wms, ("le", "5.0"), ("route", route)))] == 1
    assert scraped[("esb_inbound_seconds_count", (("route", route),))] == 1
    assert scraped[("esb_last_success_timestamp_seconds", (("destination", "wms"), ("route", route)))] > 0


def test_counters_are_read_back_per_route_for_the_admin_api():
    route = "r" + uuid.uuid4().hex[:8]
    metrics.received(route)
    metrics.published(route, ["wms"])
    metrics.MetricsEvents().acked(delivery(route), 0.01)

    counters = metrics.counters_by_route()[route]

    assert counters["total"] == {"received": 1, "published": 1, "delivered": 1}
    assert counters["destinations"]["wms"] == {"published": 1, "delivered": 1}
    assert counters["last_success"] > 0


def test_a_delivery_without_a_receipt_time_has_no_end_to_end_latency():
    assert metrics.end_to_end_seconds(delivery("r", received_ago=None)) is None
    assert 9 < metrics.end_to_end_seconds(delivery("r", received_ago=10)) < 11


def test_rejection_reasons_are_short_snake_case_names():
    assert metrics.rejection_reason(ValidationError("x")) == "validation"
    assert metrics.rejection_reason(DecodeError("x")) == "decode"
    assert metrics.rejection_reason(KeyError("x")) == "key"


def test_chained_events_call_every_hook_even_when_one_raises():
    calls = []

    class Broken(TransportEvents):
        def acked(self, delivery, seconds):
            raise RuntimeError("boom")

    class Recording(TransportEvents):
        def acked(self, delivery, seconds):
            calls.append(delivery.route)

    metrics.ChainedEvents(Broken(), Recording()).acked(delivery("x"), 0.1)
    assert calls == ["x"]


class FakeTransport:
    """A transport whose broker reports fixed queue stats."""

    def __init__(self, routes):
        self.topology = Topology.from_routes(routes)
        self.reads = 0

    def queue_stats(self):
        self.reads += 1
        return {q.name: (7 if q.kind == "dead-letter" else 0, 1) for q in self.topology.queues}


def test_queue_depths_and_consumers_are_scraped_from_the_broker_and_cached():
    from esb.routes import Destination, Endpoint, Route

    route = Route("orders", Endpoint("rest", {}), (Destination("wms", Endpoint("rest", {})),))
    transport = FakeTransport([route])
    collector = metrics.QueueCollector(transport, ttl=60)

    scraped = samples(metrics.scrape(collector))
    metrics.scrape(collector)

    dead_letter_queue = ("esb_queue_messages", (("destination", "wms"), ("kind", "dead-letter"),
                                                ("queue", "esb.orders.wms.dlq"), ("route", "orders")))
    assert scraped[dead_letter_queue] == 7
    assert scraped[("esb_queue_consumers", (("destination", "wms"), ("kind", "work"),
                                            ("queue", "esb.orders.wms"), ("route", "orders")))] == 1
    assert transport.reads == 1
    assert collector.depth("orders", None, "dead-letter") == 7


def test_with_a_multiprocess_dir_a_scrape_sums_the_counters_of_every_worker_process(tmp_path):
    import os
    import subprocess
    import sys

    environment = {**os.environ, metrics.MULTIPROCESS_ENV: str(tmp_path)}
    worker = ("from esb import metrics; metrics.received('orders', 2); "
              "metrics.MetricsEvents().retried(__import__('tests.test_monitoring_metrics', fromlist=['x'])"
              ".delivery('orders'), RuntimeError('x'), 1.0)")
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=environment, check=True, cwd=metrics.Path(
            __file__).parent.parent)
    scrape = "import sys; from esb import metrics; sys.stdout.write(metrics.scrape().decode())"
    text = subprocess.run([sys.executable, "-c", scrape], env=environment, check=True, capture_output=True,
                          text=True, cwd=metrics.Path(__file__).parent.parent).stdout

    scraped = samples(text)
    assert scraped[("esb_messages_received_total", (("route", "orders"),))] == 4
    assert scraped[("esb_messages_retried_total", (("destination", "wms"), ("route", "orders")))] == 2


def test_latency_quantiles_per_destination_come_from_the_end_to_end_buckets():
    route = f"latency-{uuid.uuid4().hex[:8]}"
    assert (route, "wms") not in metrics.latency_by_destination()
    for seconds in [0.2] * 98 + [20.0, 20.0]:  # 98 in (0.1, 0.25], 2 in (10, 30]
        metrics.END_TO_END_SECONDS.labels(route, "wms").observe(seconds)

    latency = metrics.latency_by_destination()[(route, "wms")]
    assert latency["count"] == 100
    assert 0.1 < latency["p50"] <= 0.25  # inside the bucket of the median
    assert 10.0 < latency["p99"] <= 30.0  # the slow tail, not the median's bucket
