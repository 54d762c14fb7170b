"""The SOAP poll: records of an operation's answer become raw JSON messages; a watermark kept in the
data dir makes the next poll (and a restart) ask only for what is new, without losing anything."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.soap import SoapPollSource, answer_records
from esb import jsonfmt
from esb.errors import FieldProblem, MappingError, Unavailable
from esb.plugins import Accepted, SourceContext
from esb.routes import Endpoint
from tests.test_soap_responder import ERP_WSDL, NAV_NAMESPACE, Reply, SoapResponder, element, fault, nav_wsdl

START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class Bus:
    """What the runtime gives a source: submit (de-duplicating by key) and dead_letter."""

    def __init__(self):
        self.stored, self.dead, self.keys = [], [], {}
        self.refuse = lambda record: None  # returns an exception to raise for a record, or None

    def submit(self, raw, *, idempotency_key=None):
        record = jsonfmt.loads(raw.body)
        problem = self.refuse(record)
        if problem is not None:
            raise problem
        if idempotency_key in self.keys:
            return Accepted((self.keys[idempotency_key],), duplicate=True)
        self.keys[idempotency_key] = message_id = str(uuid.uuid4())
        self.stored.append(record)
        return Accepted((message_id,))

    def dead_letter(self, raw, error):
        self.dead.append((jsonfmt.loads(raw.body), error))

    def context(self, data_dir) -> SourceContext:
        return SourceContext(route="erp-po", submit=self.submit, add_url_rule=None, data_dir=data_dir,
                             dead_letter=self.dead_letter)


class OpenOrders:
    """The ERP's open purchase orders; GetOpenPurchaseOrders answers those changed at or after
    ChangedSince (inclusive, as many ERPs do), oldest first, at most MaxRecords."""

    def __init__(self, count: int):
        self.orders = [(f"PO-{n}", START + timedelta(minutes=n)) for n in range(1, count + 1)]
        self.asked_since = []

    def __call__(self, request):
        since = request.xpath("string(//*[local-name()='ChangedSince'])")
        self.asked_since.append(since or None)
        limit = int(request.xpath("string(//*[local-name()='MaxRecords'])") or 1000)
        threshold = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        chosen = [(number, changed) for number, changed in self.orders
                  if threshold is None or changed >= threshold][:limit]
        return element("GetOpenPurchaseOrdersResponse", PurchaseOrder=[
            element("PurchaseOrder", OrderNumber=number, ChangedAt=changed.isoformat(), Warehouse="WH1",
                    Line=[element("Line", LineNumber=1, Sku="A-1", Quantity="5")])
            for number, changed in chosen])


@pytest.fixture
def orders():
    return OpenOrders(5)


@pytest.fixture
def erp(orders):
    service = SoapResponder(ERP_WSDL, handlers={"GetOpenPurchaseOrders": orders}).start()
    yield service
    service.stop()


def poller(service, bus, data_dir, **options) -> SoapPollSource:
    endpoint = Endpoint("soap", {"system": "erp", "operation": "GetOpenPurchaseOrders", "poll": 60.0,
                                 "params": {"MaxRecords": 2}, "watermark": "ChangedAt",
                                 "watermark_param": "ChangedSince", **options})
    system = {"wsdl": str(service.wsdl), "endpoint_url": service.url, "timeout": 5.0}
    source = SoapPollSource(endpoint, system, "erp-po")
    source.start(bus.context(data_dir))
    return service.client(source)


def test_each_returned_order_is_submitted_as_json_and_the_next_poll_asks_from_the_watermark(
        erp, orders, tmp_path):
    bus = Bus()
    source = poller(erp, bus, tmp_path)

    first = source.poll_once()
    second = source.poll_once()

    assert source.poll_interval == 60.0
    assert first == {"submitted": 2, "duplicate": 0, "dead_lettered": 0, "skipped": 0}
    assert [record["OrderNumber"] for record in bus.stored] == ["PO-1", "PO-2", "PO-3"]
    assert bus.stored[0]["Line"] == [{"LineNumber": 1, "Sku": "A-1", "Quantity": 5}]
    assert orders.asked_since == [None, "2024-05-01T08:02:00+00:00"]
    # PO-2 again (ChangedSince is inclusive): the watermark file knows it was handled, so it is skipped
    assert second["skipped"] == 1 and second["duplicate"] == 0


def test_a_restarted_poll_continues_from_the_saved_watermark_and_misses_nothing(erp, orders, tmp_path):
    bus = Bus()
    poller(erp, bus, tmp_path).poll_once()

    restarted = poller(erp, bus, tmp_path)
    while restarted.poll_once()["submitted"]:
        pass

    saved = json.loads((tmp_path / "watermarks" / "soap-erp-po.json").read_text())
    assert [record["OrderNumber"] for record in bus.stored] == ["PO-1", "PO-2", "PO-3", "PO-4", "PO-5"]
    assert orders.asked_since[1] == "2024-05-01T08:02:00+00:00"
    assert saved["watermark"] == "2024-05-01T08:05:00+00:00" and saved["operation"] == "GetOpenPurchaseOrders"
    assert [path.name for path in (tmp_path / "watermarks").iterdir()] == ["soap-erp-po.json"]


def test_a_refused_record_is_dead_lettered_with_its_error_and_the_others_go_on(erp, tmp_path):
    bus = Bus()
    bus.refuse = lambda record: MappingError("no warehouse", [FieldProblem("warehouse", "a known code")]) \
        if record["OrderNumber"] == "PO-1" else None
    source = poller(erp, bus, tmp_path)

    counts = source.poll_once()

    assert counts["dead_lettered"] == 1 and counts["submitted"] == 1
    assert bus.dead[0][0]["OrderNumber"] == "PO-1" and "no warehouse" in str(bus.dead[0][1])
    assert source.watermarks.load() == "2024-05-01T08:02:00+00:00"


def test_when_the_bus_cannot_store_the_poll_stops_and_keeps_the_old_watermark(erp, orders, tmp_path):
    bus = Bus()
    source = poller(erp, bus, tmp_path)
    source.poll_once()
    source.poll_once()
    bus.refuse = lambda record: Unavailable("broker down") if record["OrderNumber"] == "PO-4" else None

    source.poll_once()
    kept = source.watermarks.load()
    bus.refuse = lambda record: None
    source.poll_once()

    assert kept == "2024-05-01T08:03:00+00:00"
    assert source.watermarks.load() == "2024-05-01T08:04:00+00:00"
    assert orders.asked_since[2:] == ["2024-05-01T08:03:00+00:00", "2024-05-01T08:03:00+00:00"]
    assert [record["OrderNumber"] for record in bus.stored] == ["PO-1", "PO-2", "PO-3", "PO-4"]


def test_a_fault_stops_the_poll_without_submitting_or_moving_the_watermark(erp, tmp_path):
    def busy(request):
        raise Reply(*fault("1.1", False, "database busy"))

    erp.handlers["GetOpenPurchaseOrders"] = busy
    bus = Bus()
    source = poller(erp, bus, tmp_path)

    counts = source.poll_once()
    source.poll()  # what the scheduler calls: logs, never raises

    assert counts["failed"] == 1 and bus.stored == [] and source.watermarks.load() is None


def test_a_refused_record_at_the_watermark_is_dead_lettered_once_not_on_every_poll(erp, orders, tmp_path):
    bus = Bus()
    bus.refuse = lambda record: MappingError("no warehouse", [FieldProblem("warehouse", "a known code")]) \
        if record["OrderNumber"] == "PO-2" else None
    source = poller(erp, bus, tmp_path, params={"MaxRecords": 2})

    first = source.poll_once()  # PO-1 stored, PO-2 (the watermark) refused
    orders.orders = orders.orders[:2]  # nothing new changes in the ERP
    again = [source.poll_once() for _ in range(3)]  # each asks from PO-2's time, inclusive

    assert first["dead_lettered"] == 1
    assert [counts["dead_lettered"] for counts in again] == [0, 0, 0]
    assert [counts["skipped"] for counts in again] == [1, 1, 1]
    assert len(bus.dead) == 1


def test_a_record_at_the_watermark_that_changed_is_submitted_again(erp, orders, tmp_path):
    bus = Bus()
    source = poller(erp, bus, tmp_path, params={"MaxRecords": 2})
    source.poll_once()
    orders.orders = orders.orders[:2]
    number, changed = orders.orders[1]
    orders.orders[1] = (number + "-REV1", changed)  # same change time, other content

    counts = source.poll_once()

    assert counts["submitted"] == 1 and bus.stored[-1]["OrderNumber"] == "PO-2-REV1"


def test_records_older_than_the_watermark_are_skipped_when_the_service_ignores_it(erp, orders, tmp_path):
    bus = Bus()
    source = poller(erp, bus, tmp_path, watermark_param=None, params={})
    source.poll_once()
    orders.orders.append(("PO-6", START + timedelta(minutes=6)))

    counts = source.poll_once()

    assert counts == {"submitted": 1, "duplicate": 0, "dead_lettered": 0, "skipped": 5}
    assert bus.stored[-1]["OrderNumber"] == "PO-6"


def test_the_nav_read_multiple_is_paged_with_its_bookmark_key_as_the_watermark(samples_dir, tmp_path):
    customers = [f"C{n:04d}" for n in range(1, 6)]
    bookmarks = []

    def read_multiple(request):
        bookmark = request.xpath("string(//*[local-name()='bookmarkKey'])")
        size = int(request.xpath("string(//*[local-name()='setSize'])"))
        bookmarks.append(bookmark or None)
        page = [number for number in customers if number > bookmark][:size]
        if not page:
            return element("ReadMultiple_Result", NAV_NAMESPACE)
        listed = element("ReadMultiple_Result", NAV_NAMESPACE, CustomerList=[
            element("CustomerList", NAV_NAMESPACE, No=number, Name=f"Customer {number}") for number in page])
        return element("ReadMultiple_Result", NAV_NAMESPACE, ReadMultiple_Result=[listed])

    service = SoapResponder(nav_wsdl(samples_dir), handlers={"ReadMultiple": read_multiple}).start()
    try:
        bus = Bus()
        source = poller(service, bus, tmp_path, operation="ReadMultiple", watermark="No",
                        watermark_param="bookmarkKey",
                        params={"filter": [{"Field": "No", "Criteria": "C*"}], "setSize": 2})
        for _ in range(4):
            source.poll_once()
    finally:
        service.stop()

    assert [record["No"] for record in bus.stored] == customers
    assert bookmarks == [None, "C0002", "C0004", "C0005"]


@pytest.mark.parametrize(("answer", "records"), [
    ({"PurchaseOrder": [{"a": 1}, {"a": 2}]}, [{"a": 1}, {"a": 2}]),
    ({"Result": {"List": [{"a": 1}]}}, [{"a": 1}]),
    ({"OrderNumber": "PO-1", "Status": "open"}, [{"OrderNumber": "PO-1", "Status": "open"}]),
    ({"PurchaseOrder": None}, []),
    (None, []),
])
def test_an_answer_is_unwrapped_down_to_its_records(answer, records):
    assert answer_records(answer) == records
