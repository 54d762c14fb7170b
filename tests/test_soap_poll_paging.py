"""The SOAP poll follows the pages of an answer, against a real SOAP service on loopback (a page
number, an offset or a continuation token); the watermark is written once every record of every
page was stored or dead-lettered, and a failure half-way keeps it where it was."""

from __future__ import annotations

import logging
import textwrap
from datetime import timedelta

import pytest

from adapters.soap import SoapPollSource, check_endpoint
from esb.config import check_config
from esb.errors import FieldProblem, MappingError, Unavailable
from esb.routes import Endpoint
from tests.test_soap_poll import START, Bus
from tests.test_soap_responder import DATA, Reply, SoapResponder, element, fault

PAGED_WSDL = DATA / "paged_erp.wsdl"
PAGED_NAMESPACE = "urn:example:erp:paged"
ORDERS = [f"PO-{n}" for n in range(1, 8)]  # 7 orders: pages of 3, 3 and 1


class PagedOrders:
    """GetPurchaseOrderPage: the orders changed at or after ChangedSince (inclusive), oldest first,
    PageSize a page, the page asked by PageNumber (from 1), Offset or PageToken; an answer carries
    NextPageToken while more orders follow. `fail_on_call` answers that call (1-based) with a
    fault; `ignore_page` answers the first page whatever is asked."""

    def __init__(self, count: int = len(ORDERS)):
        self.orders = [(f"PO-{n}", START + timedelta(minutes=n)) for n in range(1, count + 1)]
        self.asked: list[dict[str, str | None]] = []
        self.fail_on_call: int | None = None
        self.ignore_page = False

    def __call__(self, request):
        def text(name: str) -> str | None:
            return request.xpath(f"string(//*[local-name()='{name}'])") or None

        asked = {name: text(name) for name in ("ChangedSince", "PageNumber", "Offset", "PageToken")}
        self.asked.append(asked)
        if len(self.asked) == self.fail_on_call:
            raise Reply(*fault("1.1", False, "database busy"))
        since = asked["ChangedSince"]
        chosen = [order for order in self.orders
                  if since is None or order[1] >= START.fromisoformat(since.replace("Z", "+00:00"))]
        size = int(text("PageSize") or 3)
        if self.ignore_page:
            first = 0
        elif asked["PageToken"]:
            first = int(asked["PageToken"].removeprefix("after-"))
        elif asked["Offset"] is not None:
            first = int(asked["Offset"])
        else:
            first = (int(asked["PageNumber"] or 1) - 1) * size
        children = {"PurchaseOrder": [element("PurchaseOrder", PAGED_NAMESPACE, OrderNumber=number,
                                              ChangedAt=changed.isoformat(), Warehouse="WH1")
                                      for number, changed in chosen[first:first + size]]}
        if first + size < len(chosen):
            children["NextPageToken"] = f"after-{first + size}"
        return element("GetPurchaseOrderPageResponse", PAGED_NAMESPACE, **children)

    def sent(self, name: str) -> list[str | None]:
        return [asked[name] for asked in self.asked]


@pytest.fixture
def orders():
    return PagedOrders()


@pytest.fixture
def erp(orders):
    service = SoapResponder(PAGED_WSDL, handlers={"GetPurchaseOrderPage": orders}).start()
    yield service
    service.stop()


BY_TOKEN = {"next_page": "NextPageToken", "page_token_param": "PageToken"}


def paged_poller(service, bus, data_dir, **options) -> SoapPollSource:
    endpoint = Endpoint("soap", {"system": "erp", "operation": "GetPurchaseOrderPage", "poll": 60.0,
                                 "params": {"PageSize": 3}, "watermark": "ChangedAt",
                                 "watermark_param": "ChangedSince", "records": "PurchaseOrder", **options})
    system = {"wsdl": str(service.wsdl), "endpoint_url": service.url, "timeout": 5.0}
    source = SoapPollSource(endpoint, system, "erp-po")
    source.start(bus.context(data_dir))
    return service.client(source)


def count_saves(source: SoapPollSource) -> list:
    saved = []
    save = source.watermarks.save

    def counted(*arguments):
        saved.append(arguments[0])
        save(*arguments)

    source.watermarks.save = counted
    return saved


def stored_numbers(bus: Bus) -> list[str]:
    return [record["OrderNumber"] for record in bus.stored]


def test_a_poll_follows_the_continuation_token_to_the_last_page_and_writes_the_watermark_once(
        erp, orders, tmp_path):
    bus = Bus()
    source = paged_poller(erp, bus, tmp_path, **BY_TOKEN)
    saves = count_saves(source)

    counts = source.poll_once()

    assert counts == {"submitted": 7, "duplicate": 0, "dead_lettered": 0, "skipped": 0, "pages": 3}
    assert orders.sent("PageToken") == [None, "after-3", "after-6"]
    assert stored_numbers(bus) == ORDERS
    assert saves == ["2024-05-01T08:07:00+00:00"]  # once, after the last page


def test_a_poll_asks_page_numbers_until_a_page_has_no_record(erp, orders, tmp_path):
    bus = Bus()
    source = paged_poller(erp, bus, tmp_path, page_param="PageNumber")

    counts = source.poll_once()

    assert orders.sent("PageNumber") == ["1", "2", "3", "4"]
    assert counts["pages"] == 4 and counts["submitted"] == 7
    assert stored_numbers(bus) == ORDERS


def test_offset_paging_sends_the_count_of_records_received_so_far(erp, orders, tmp_path):
    bus = Bus()
    source = paged_poller(erp, bus, tmp_path, page_param="Offset", page_by="offset")

    source.poll_once()

    assert orders.sent("Offset") == ["0", "3", "6", "7"]
    assert stored_numbers(bus) == ORDERS


def test_max_pages_ends_a_poll_and_the_next_one_continues_from_the_watermark(erp, orders, tmp_path):
    bus = Bus()
    source = paged_poller(erp, bus, tmp_path, max_pages=2, **BY_TOKEN)

    first = source.poll_once()
    after_first = source.watermarks.load()
    second = source.poll_once()

    assert (first["pages"], first["submitted"]) == (2, 6)
    assert after_first == "2024-05-01T08:06:00+00:00"
    assert orders.sent("ChangedSince")[2] == "2024-05-01T08:06:00+00:00"
    assert (second["skipped"], second["submitted"]) == (1, 1)  # PO-6 again (inclusive), then PO-7
    assert stored_numbers(bus) == ORDERS


def test_a_fault_on_a_later_page_keeps_the_watermark_and_the_next_poll_stores_nothing_twice(
        erp, orders, tmp_path):
    bus = Bus()
    source = paged_poller(erp, bus, tmp_path, **BY_TOKEN)
    orders.fail_on_call = 2

    failed = source.poll_once()
    kept = source.watermarks.load()
    again = source.poll_once()

    assert failed["failed"] == 1 and failed["submitted"] == 3 and kept is None
    assert again == {"submitted": 4, "duplicate": 3, "dead_lettered": 0, "skipped": 0, "pages": 3}
    assert stored_numbers(bus) == ORDERS
    assert source.watermarks.load() == "2024-05-01T08:07:00+00:00"


def test_an_unavailable_bus_on_a_later_page_keeps_the_watermark(erp, orders, tmp_path):
    bus = Bus()
    source = paged_poller(erp, bus, tmp_path, page_param="PageNumber")
    source.poll_once()  # the watermark at PO-7
    orders.orders += [(f"PO-{n}", START + timedelta(minutes=n)) for n in range(8, 15)]
    bus.refuse = lambda record: Unavailable("broker down") if record["OrderNumber"] == "PO-12" else None

    stopped = source.poll_once()
    kept = source.watermarks.load()
    bus.refuse = lambda record: None
    source.poll_once()

    assert stopped["submitted"] == 4 and kept == "2024-05-01T08:07:00+00:00"  # PO-8..PO-11 stored
    assert stored_numbers(bus) == [f"PO-{n}" for n in range(1, 15)]
    assert source.watermarks.load() == "2024-05-01T08:14:00+00:00"


def test_a_refused_record_on_a_later_page_is_dead_lettered_and_the_watermark_moves_past_it(
        erp, orders, tmp_path):
    bus = Bus()
    bus.refuse = lambda record: MappingError("no warehouse", [FieldProblem("warehouse", "a known code")]) \
        if record["OrderNumber"] == "PO-5" else None
    source = paged_poller(erp, bus, tmp_path, **BY_TOKEN)

    counts = source.poll_once()

    assert (counts["submitted"], counts["dead_lettered"]) == (6, 1)
    assert [record["OrderNumber"] for record, _ in bus.dead] == ["PO-5"]
    assert source.watermarks.load() == "2024-05-01T08:07:00+00:00"


def test_a_service_that_ignores_the_page_number_is_asked_twice_not_max_pages_times(
        erp, orders, tmp_path, caplog):
    orders.ignore_page = True
    bus = Bus()
    source = paged_poller(erp, bus, tmp_path, page_param="PageNumber")

    with caplog.at_level(logging.WARNING, logger="esb.adapters.soap"):
        counts = source.poll_once()

    assert len(orders.asked) == 2 and counts["pages"] == 2
    assert counts["submitted"] == 3 and counts["duplicate"] == 3
    assert "the same page again" in caplog.text


# --- esb check ---------------------------------------------------------------------------------

def paged_endpoint(**options) -> Endpoint:
    return Endpoint("soap", {"system": "erp", "operation": "GetPurchaseOrderPage", "params": {},
                             "watermark": None, "watermark_param": None, "inbound": False, "wsdl": None,
                             "poll": 60.0, "records": "PurchaseOrder", **options})


@pytest.mark.parametrize(("options", "expected"), [
    ({"next_page": "NextPageToken"}, "next_page needs page_token_param: (the request parameter"),
    ({"page_token_param": "PageToken"}, "page_token_param needs next_page: (the JMESPath"),
    ({"next_page": "NextPageToken", "page_token_param": "PageToken", "records": None},
     "next_page needs records: (the JMESPath of the records in the answer"),
    ({"page_param": "PageNumber", **BY_TOKEN}, "use page_param (a page number or offset) or next_page"),
    ({"next_page": "Next[", "page_token_param": "PageToken"}, "next_page is not a valid JMESPath expression"),
    ({"page_by": "offset"}, "page_by and first_page are used only with page_param"),
    ({"max_pages": 5}, "max_pages is used only with page_param or next_page"),
    ({"page_param": "PageNumbr"}, 'page_param: unknown parameter of GetPurchaseOrderPage "PageNumbr" '
                                  '(did you mean "PageNumber"?)'),
    ({"next_page": "NextPageToken", "page_token_param": "Token"},
     'page_token_param: unknown parameter of GetPurchaseOrderPage "Token"'),
    ({"page_param": "PageNumber", "params": {"PageNumber": 1}}, "params: PageNumber is set by the paging"),
])
def test_paging_options_that_do_not_fit_are_reported_naming_the_option(options, expected):
    problems = check_endpoint(paged_endpoint(**options), {"wsdl": str(PAGED_WSDL)}, None)

    assert any(problem.startswith(expected) for problem in problems), problems


def test_paging_options_that_fit_are_not_reported():
    by_offset = {"page_param": "Offset", "page_by": "offset", "max_pages": 10}
    for options in ({"page_param": "PageNumber"}, by_offset, BY_TOKEN):
        assert check_endpoint(paged_endpoint(**options), {"wsdl": str(PAGED_WSDL)}, None) == []


@pytest.mark.parametrize(("paging", "expected"), [
    ("max_pages: 0", (8, "routes[0].from.soap.max_pages: expected an integer >= 1, got 0")),
    ("page_param: Page", (7, 'routes[0].from.soap: page_param: unknown parameter of GetPurchaseOrderPage '
                             '"Page" (did you mean "PageSize"?); known: ChangedSince, Offset, PageNumber, '
                             'PageSize, PageToken')),
    ("next_page: NextPageToken", (7, "routes[0].from.soap: next_page needs page_token_param: (the request "
                                     "parameter that sends the token back)")),
])
def test_esb_check_reports_a_paging_option_with_its_route_and_line(tmp_path, paging, expected):
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""\
        version: 1
        systems:
          erp:
            soap: {{wsdl: "{PAGED_WSDL}", endpoint_url: "http://127.0.0.1:9/erp"}}
        routes:
          - name: orders
            from: {{soap: {{system: erp, operation: GetPurchaseOrderPage, poll: 5m, records: PurchaseOrder,
                           {paging}}}}}
            to:
              - file: {{dir: out}}
        """))

    problems = [(problem.line, problem.what) for problem in check_config(routes, environ={})]

    assert problems == [expected]
