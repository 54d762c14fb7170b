"""A day of traffic through every flow of `esb.demo.flows`, made of the mappings' own test inputs
(`mappings/*/*.cases/*.input.*`), so the demo shows the formats the mappings are tested with.

The ERP posts its IDocs and sales orders to the bus, holds purchase order revisions and book
stock in its SOAP service for the bus to poll, the WMS drops its files in its export directory
(written aside, then renamed, as a WMS does) and posts its events. Some of it is bad on purpose:
a purchase order revision for a plant nobody knows (dead-lettered by the poll), a goods-receipt
file with a unit the mapping does not know (moved to error/ and dead-lettered), an adjustment
with an unknown reason code (answered 422, never stored). The trading partner (`esb.demo.partners`)
leaves an X12 940 on its SFTP server, and gets a shipment confirmation over AS2.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import requests

CASES = "mappings/{system}/{mapping}.cases/{case}.input.{ext}"


def case_input(root: Path, system: str, mapping: str, case: str, ext: str) -> bytes:
    return (root / CASES.format(system=system, mapping=mapping, case=case, ext=ext)).read_bytes()


class Traffic:
    """Plays the day; `answers[route]` says what each sender got back, `rejected[route]` counts the
    inputs the bus refused."""

    def __init__(self, *, root: Path, bus_url: str, route: Callable[[str], str], keys: dict[str, str],
                 export_dir: Path, erp, partner=None, items_known: Callable[[], None] | None = None):
        self.root, self.bus_url, self.route, self.keys = root, bus_url, route, keys
        self.export_dir, self.erp, self.partner = export_dir, erp, partner
        self.items_known = items_known  # waits until the bus keeps the items' units (before stock comes)
        self.answers: dict[str, list[str]] = {}
        self.rejected: dict[str, int] = {}

    def play(self) -> None:
        self.seed_erp()
        self.send()

    def seed_erp(self) -> None:
        """What the ERP holds for the bus to poll."""
        self.erp_publishes_purchase_order_revisions()
        self.erp_publishes_book_stock()

    def send(self) -> None:
        """What the ERP and the WMS send: posts to the bus and files in the WMS's export directory."""
        self.post_case("erp-items-to-wms", "erp", "item.in", "olive_oil_with_cartons.xml")
        if self.items_known is not None:  # the master data before the day's stock, as in a warehouse
            self.items_known()
        self.post_case("erp-po-to-wms", "erp", "purchase_order.in", "two_lines_cartons_and_pieces.xml")
        self.post_case("erp-asn-to-wms", "erp", "inbound_notice.in", "two_items_with_batches.xml")
        self.sales_orders()
        self.drop("GR_20261130_000123.csv", self.input("wms", "goods_receipt.in", "two_receipts_gbk", "csv"))
        self.drop("GR_20261130_000125.csv", self.input("wms", "goods_receipt.in", "unknown_unit", "csv"))
        self.drop("STOCK_20261130_KS01.txt", self.input("wms", "inventory_snapshot.in",
                                                        "nightly_gbk_fixed_width", "txt"))
        self.shipments()
        self.post_case("wms-adjustments-to-erp", "wms", "inventory_adjustment.in", "loss_and_gain.json")
        self.post_case("wms-adjustments-to-erp", "wms", "inventory_adjustment.in", "unknown_reason.json")
        self.post_case("wms-counts-to-erp", "wms", "stock_count.in", "cycle_count_with_an_empty_bin.json")
        if self.partner is not None:
            self.partner_flow()

    # --- the trading partner (esb.demo.partners) --------------------------------------------------
    def partner_flow(self) -> None:
        """The 3PL leaves a 940 on its SFTP server; the WMS confirms a shipment of the 3PL's."""
        from esb.demo.partners import ORDER_CASE

        self.answers["3pl-orders-to-wms"] = [
            self.partner.leave_order("SO-88231_940.edi", (self.root / ORDER_CASE).read_bytes())]
        event = self.json("wms", "shipment_confirmation.in", "local_time_lots_and_serials")
        event["eventId"] = "evt_3PL_0001"
        event["data"].update(shipmentId="SHP-3PL-0001", orderRef="SO-88231")
        self.post("wms-shipments-to-3pl", "wms", _dumps(event))

    # --- the ERP's side ---------------------------------------------------------------------------
    def erp_publishes_purchase_order_revisions(self) -> None:
        """Revision 0 and 1 of an order are there from the start; the cancellation (revision 2)
        comes after the first poll, so the second poll asks only for what changed since revision 1."""
        change = self.json("erp", "purchase_order.soap.in", "change_with_a_deleted_item")
        opened = copy.deepcopy(change)
        opened.update(Revision=0, Status="OPEN", ChangedAt="2026-11-24T09:15:00+08:00")
        for item in opened["Item"]:
            item["Deleted"] = False
        self.erp.publish_purchase_order(_element_fields(opened))
        self.erp.publish_purchase_order(_element_fields(change))
        self.erp.publish_purchase_order(_element_fields(self.json("erp", "purchase_order.soap.in",
                                                                  "unknown_plant")))
        self.erp.publish_purchase_order(_element_fields(self.json("erp", "purchase_order.soap.in",
                                                                  "cancellation")), after_polls=1)
        self.answers["erp-po-changes-to-wms"] = [
            "the ERP holds 3 revisions of order 4500012400 (the cancellation from its second poll on) "
            "and one order of an unknown plant, for GetPurchaseOrderChanges"]

    def erp_publishes_book_stock(self) -> None:
        snapshot = self.json("erp", "inventory_snapshot.soap.in", "book_stock_of_plant_1000")
        self.erp.set_book_stock("1000", _element_fields(snapshot))
        self.answers["erp-book-stock"] = [f"the ERP holds book stock {snapshot['SnapshotId']} of plant 1000, "
                                          "for GetBookStock"]

    def sales_orders(self) -> None:
        """One order with lines from both plants (two WMS orders), one from plant 2000 only."""
        order = self.json("erp", "shipment_order.in", "two_plants")
        self.post("erp-sales-orders-to-wms", "erp", _dumps(order))
        second = copy.deepcopy(order)
        second["d"]["SalesOrder"] = "0000700232"
        second["d"]["to_Item"]["results"] = [line for line in second["d"]["to_Item"]["results"]
                                             if line["ProductionPlant"] == "2000"]
        self.post("erp-sales-orders-to-wms", "erp", _dumps(second))

    # --- the WMS's side ---------------------------------------------------------------------------
    def shipments(self) -> None:
        """A partial shipment from KS01 (WH1, S/4 goods issue) and one from SH02 (WH2, SHPCON IDoc)."""
        event = self.json("wms", "shipment_confirmation.in", "local_time_lots_and_serials")
        self.post("wms-shipments-to-erp", "wms", _dumps(event))
        other = copy.deepcopy(event)
        other["eventId"] = "evt_01JD7K9Z2B4C"
        other["data"].update(shipmentId="SHP-0099124", orderRef="0080001240", facility="SH02")
        self.post("wms-shipments-to-erp", "wms", _dumps(other))

    def drop(self, name: str, body: bytes) -> None:
        hidden = self.export_dir / f".{name}.part"  # written aside, then renamed: as a WMS would
        hidden.write_bytes(body)
        hidden.rename(self.export_dir / name)
        route = "wms-stock-to-erp" if name.startswith("STOCK_") else "wms-receipts-to-erp"
        self.answers.setdefault(route, []).append(f"file {name} dropped in {self.export_dir}")

    # --- helpers ----------------------------------------------------------------------------------
    def input(self, system: str, mapping: str, case: str, ext: str) -> bytes:
        return case_input(self.root, system, mapping, case, ext)

    def json(self, system: str, mapping: str, case: str) -> dict:
        return json.loads(self.input(system, mapping, case, "json"))

    def post_case(self, flow: str, sender: str, mapping: str, case_file: str) -> None:
        """Post the input of a case of one of the sender's mappings (`name.ext`)."""
        case, _, ext = case_file.rpartition(".")
        self.post(flow, sender, self.input(sender, mapping, case, ext))

    def post(self, flow: str, sender: str, body: bytes) -> None:
        content_type = "application/xml" if body.lstrip().startswith(b"<") else "application/json"
        route = self.route(flow)
        url = f"{self.bus_url}/in/{route}"
        try:
            response = requests.post(url, data=body, timeout=30,
                                     headers={"Content-Type": content_type, "X-API-Key": self.keys[sender]})
            answer = f"POST /in/{route} -> {response.status_code} {' '.join(response.text.split())}"
            if 400 <= response.status_code < 500:
                self.rejected[flow] = self.rejected.get(flow, 0) + 1
        except requests.RequestException as error:
            answer = f"POST /in/{route} failed: {error}"
        self.answers.setdefault(flow, []).append(answer)


def _element_fields(document: dict) -> dict:
    """A case's JSON as the SOAP service's element fields: nulls left out, lists and dicts kept."""
    if isinstance(document, dict):
        return {key: _element_fields(value) for key, value in document.items() if value is not None}
    if isinstance(document, list):
        return [_element_fields(item) for item in document]
    return document


def _dumps(document: dict) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")
