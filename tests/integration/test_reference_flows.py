"""The reference integration end to end, flow by flow: the shipped routes.yaml and mappings, the
simulated ERP (REST and its SOAP service) and WMS on loopback, the day's traffic of `esb demo`,
once on the embedded transport and once on the real RabbitMQ. Each test reads what the target
system received (or what the bus dead-lettered or wrote) and checks the business content."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from esb.demo import FLOWS, Demo


@pytest.fixture(scope="module", params=["embedded", "rabbitmq"])
def day(request, tmp_path_factory):
    """One demo per transport, its traffic played and settled; shared by the tests of this module."""
    broker_url = request.getfixturevalue("broker_url") if request.param == "rabbitmq" else None
    demo = Demo(broker_url=broker_url, timeout=60).start()
    try:
        demo.play()
        results = {result.name: result for result in demo.wait()}
        demo.results_by_flow = results
        yield demo
    finally:
        demo.stop()


def received(simulator, path: str) -> list[tuple[str, bytes]]:
    """(path, body) of each message the simulator took at `path` or below, in the order delivered."""
    return [(call.path, call.body) for call in simulator.delivered(path).values()]


def received_json(simulator, path: str) -> list[dict]:
    return [json.loads(body) for _, body in received(simulator, path)]


def soap_requests(demo, operation: str) -> list[etree._Element]:
    """The body element of each successful SOAP call of `operation` the ERP took."""
    elements = []
    for _, body in received(demo.erp, f"/soap/{operation}"):
        envelope = etree.fromstring(body)
        elements.append(envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")[0])
    return elements


def texts(element: etree._Element, name: str) -> list[str]:
    return [node.text for node in element.iter(f"{{urn:esb:demo:erp}}{name}")]


def test_every_flow_delivers_dead_letters_and_refuses_what_it_should(day):
    assert {name: result.ok for name, result in day.results_by_flow.items()} == {f.route: True for f in FLOWS}


def test_item_master_idocs_become_item_upserts_in_the_wms(day):
    items = {path: body for path, body in ((p, json.loads(b)) for p, b in received(day.wms, "/items"))}

    assert set(items) == {"/items/12345", "/items/ACM/1100-002"}
    oil = items["/items/12345"]
    assert oil["name"] == "特级初榨橄榄油 1升装" and oil["baseUnit"] == "PCS" and oil["batchManaged"] is True
    assert oil["packs"] == [{"unit": "CS", "qtyPerPack": 12, "barcode": "14012345678908"},
                            {"unit": "PLT", "qtyPerPack": 720}]
    assert items["/items/ACM/1100-002"]["status"] == "HOLD"  # MSTAE set: blocked


def test_a_posted_orders05_idoc_becomes_a_new_inbound_order(day):
    orders = [o for o in received_json(day.wms, "/inbound-orders") if o["externalId"] == "4500012345"]

    assert len(orders) == 1 and orders[0]["action"] == "NEW"
    assert [(line["lineNo"], line["qty"], line["unit"]) for line in orders[0]["lines"]] == [
        (10, 12, "CS"), (20, 250.5, "PCS")]


def test_polled_purchase_order_revisions_reach_the_wms_as_new_update_and_cancel(day):
    orders = received_json(day.wms, "/inbound-orders")
    revisions = sorted((o for o in orders if o["externalId"] == "4500012400"), key=lambda o: o["revision"])

    assert [(o["revision"], o["action"]) for o in revisions] == [(0, "NEW"), (1, "UPDATE"), (2, "CANCEL")]
    assert [line["lineNo"] for line in revisions[1]["lines"]] == [10]  # the deleted item is not expected
    # the watermark: the second poll asked from the highest change time of the first
    assert day.erp.asked_since[:2] == [None, "2026-11-24T11:00:00+08:00"]
    # the order of an unknown plant went to the route's dead-letter queue, once, with its error
    (dead,) = day.runtime.transport.dead_letters(day.route("erp-po-changes-to-wms"))
    assert json.loads(dead.body)["Plant"] == "9000" and "warehouse_of_plant" in dead.summary()["last_error"]


def test_an_inbound_delivery_idoc_becomes_an_asn_in_the_wms_after_one_retry(day):
    (asn,) = received_json(day.wms, "/asns")

    assert asn["asnNo"] == "180000123" and asn["eta"] == "2026-11-30T09:00:00+08:00"
    assert asn["lines"][0] == {"lineNo": 10, "sku": "12345", "qty": 12, "unit": "CS", "batch": "L2611-07",
                               "expiryDate": "2028-05-31", "poRef": "4500012345", "poLineNo": 10}
    assert day.results_by_flow["erp-asn-to-wms"].retried == 1


def test_goods_receipt_files_post_goods_receipts_over_soap_and_a_bad_file_is_set_aside(day):
    calls = soap_requests(day, "PostGoodsReceipt")
    receipts = {texts(element, "ReceiptNumber")[0]: element for element in calls}

    assert set(receipts) == {"GR-2026-000123", "GR-2026-000124"}
    first = receipts["GR-2026-000123"]
    assert texts(first, "Material") == ["000000000000012345", "000000000000067890", "000000000000067890"]
    assert texts(first, "StockType") == ["UNRESTRICTED", "UNRESTRICTED", "BLOCKED"]  # the damaged line
    assert texts(first, "Batch") == ["L2611-07"] and texts(first, "ExpiryDate") == ["2028-11-30"]
    assert texts(receipts["GR-2026-000124"], "StockType") == ["QUALITY"]
    assert (day.export_dir / "error" / "GR_20261130_000125.csv").is_file()
    (dead,) = day.runtime.transport.dead_letters(day.route("wms-receipts-to-erp"))
    assert "unit_of_wms_unit" in dead.summary()["last_error"]


def test_a_sales_order_from_two_plants_becomes_one_wms_order_per_site(day):
    orders = sorted((o["externalId"], o["facility"], [line["lineNo"] for line in o["lines"]])
                    for o in received_json(day.wms, "/outbound-orders")
                    if o["externalId"] != "SO-88231")  # the 3PL's order: see the partner test

    assert orders == [("700231", "KS01", [10]), ("700231", "SH02", [20, 40]), ("700232", "SH02", [20, 40])]


def test_shipment_confirmations_post_goods_issue_or_a_shpcon_idoc_by_plant(day):
    (issue,) = received_json(day.erp, "/goods-issues")
    ((_, idoc),) = received(day.erp, "/idocs")

    assert issue["DeliveryDocument"] == "0080001234" and issue["Carrier"] == "SF"
    assert [unit["HandlingUnitExternalID"] for unit in issue["HandlingUnits"]] == [
        "340123450000001014", "340123450000001021"]
    assert issue["Items"][0]["OpenQuantity"] == "4.000"  # shipped 20 of 24: a backorder of 4
    assert [batch["Batch"] for batch in issue["Items"][0]["Batches"]] == ["L2611-07", "L2611-08"]
    document = etree.fromstring(idoc)
    assert document.findtext("IDOC/EDI_DC40/MESTYP") == "SHPCON"
    assert document.findtext("IDOC/E1EDL20/VBELN") == "0080001240"
    assert document.findtext("IDOC/E1EDL20/E1EDL18/QUALF") == "PGI"


def test_the_nightly_stock_file_and_the_book_stock_land_for_reconciliation(day):
    (snapshot,) = received_json(day.erp, "/inventory-snapshots")
    files = {path.name.split("_")[0]: json.loads(path.read_bytes()) for path in day.received_files()}

    assert snapshot["snapshot_id"] == "STK-20261130-KS1" and len(snapshot["lines"]) == 4
    assert set(files) == {"shelf", "book"}
    assert files["shelf"] == snapshot  # the canonical document, as the ERP got it
    assert files["book"]["source"] == "erp" and files["book"]["snapshot_id"] == "BOOK-1000-20261130"


def test_adjustments_and_counts_post_goods_movements_and_physical_inventory(day):
    (movement,) = received_json(day.erp, "/goods-movements")
    (count,) = received_json(day.erp, "/physical-inventory-counts")

    items = movement["to_MaterialDocumentItem"]["results"]
    assert [(i["GoodsMovementType"], i["QuantityInEntryUnit"]) for i in items] == [("551", "2.000"),
                                                                                    ("701", "0.500")]
    assert [item["PhysInventoryItemIsZero"] for item in count["Items"]] == [False, False, True]
    assert day.results_by_flow["wms-adjustments-to-erp"].rejected == 1  # the unknown reason code


def test_a_3pl_order_over_sftp_reaches_the_wms_and_the_confirmation_goes_back_over_as2(day):
    (order,) = [o for o in received_json(day.wms, "/outbound-orders") if o["externalId"] == "SO-88231"]
    (confirmation,) = received_json(day.partner.as2, "/as2")

    assert (order["customerPo"], order["facility"], len(order["lines"])) == ("PO-4471", "KS01", 2)
    assert (day.partner.outbound / "processed" / "SO-88231_940.edi").exists()  # moved on the 3PL's server
    assert (confirmation["shipment_number"], confirmation["order_number"]) == ("SHP-3PL-0001", "SO-88231")
    (call,) = day.partner.as2.delivered("/as2").values()
    assert call.answered_id.startswith("MDN <mdn-")  # the 3PL's signed receipt, checked by the bus
