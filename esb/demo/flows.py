"""The flows of the reference integration, as the demo plays them: for each shipped route, what it
carries, where its messages land, and what the day's traffic (`esb.demo.traffic`) must give:
deliveries, dead letters (bad input a polled source met, or a target refused for good) and
rejections (bad input a sender was answered 4xx for, never stored)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Flow:
    route: str  # the shipped route's name
    what: str  # source, format -> canonical type -> destination, for people
    targets: tuple[tuple[str, str], ...]  # (system, path) where it lands; ("file", name) for a directory
    delivered: int  # deliveries the day's traffic must give (one per message and destination)
    dead: int = 0  # dead letters it must give
    rejected: int = 0  # inputs the bus must refuse at the door


FLOWS: tuple[Flow, ...] = (
    Flow("erp-items-to-wms", "ERP MATMAS05 IDoc (XML, POST) -> item -> WMS PUT /items/{code} + the item "
         "units the reconciliation converts with", (("wms", "/items"),), delivered=4),
    Flow("erp-po-to-wms", "ERP ORDERS05 IDoc (XML, POST) -> purchase_order -> WMS /inbound-orders",
         (("wms", "/inbound-orders"),), delivered=1),
    Flow("erp-po-changes-to-wms", "ERP SOAP GetPurchaseOrderChanges (poll, watermark) -> purchase_order "
         "-> WMS /inbound-orders", (("wms", "/inbound-orders"),), delivered=3, dead=1),
    Flow("erp-asn-to-wms", "ERP DELVRY07 DESADV IDoc (XML, POST) -> inbound_notice -> WMS /asns",
         (("wms", "/asns"),), delivered=1),
    Flow("wms-receipts-to-erp", "WMS GR_*.csv drop (GBK CSV) -> goods_receipt -> ERP SOAP PostGoodsReceipt",
         (("erp", "/soap/PostGoodsReceipt"),), delivered=2, dead=1),
    Flow("erp-sales-orders-to-wms", "ERP sales order (S/4 OData JSON, POST) -> shipment_order, split per "
         "warehouse -> WMS /outbound-orders", (("wms", "/outbound-orders"),), delivered=3),
    Flow("wms-shipments-to-erp", "WMS ship-confirm webhook (JSON) -> shipment_confirmation -> ERP "
         "/goods-issues (WH1) or SHPCON IDoc /idocs (WH2)", (("erp", "/goods-issues"), ("erp", "/idocs")),
         delivered=2),
    Flow("wms-stock-to-erp", "WMS STOCK_*.txt nightly file (fixed-width GBK) -> inventory_snapshot -> ERP "
         "/inventory-snapshots + reconciliation dir + aggregator + alert rules",
         (("erp", "/inventory-snapshots"), ("file", "reconciliation")), delivered=4),
    Flow("erp-book-stock", "ERP SOAP GetBookStock (poll) -> inventory_snapshot -> reconciliation dir + "
         "aggregator (snapshots and counts)", (("file", "reconciliation"),), delivered=3),
    Flow("reconcile-stock", "book stock (erp-book-stock) and shelf stock (wms-stock-to-erp) of one warehouse "
         "and cut-off -> inventory_discrepancy -> report dir + alert rules", (("file", "report"),),
         delivered=2),
    Flow("reconcile-counts", "a cycle count (wms-counts-to-erp) against the book stock of its day -> "
         "inventory_discrepancy -> report dir + alert rules", (("file", "report"),), delivered=2),
    Flow("stock-alerts", "the alerts the rules fired (accuracy under the floor, a big difference, dead "
         "letters growing) -> alert -> alerts dir", (("file", "alerts"),), delivered=5),
    Flow("wms-adjustments-to-erp", "WMS adjustment (JSON, POST) -> inventory_adjustment -> ERP "
         "/goods-movements", (("erp", "/goods-movements"),), delivered=1, rejected=1),
    Flow("wms-counts-to-erp", "WMS cycle count (JSON, POST) -> stock_count -> ERP /physical-inventory-counts",
         (("erp", "/physical-inventory-counts"),), delivered=2),
    # the trading-partner flow (esb/demo/partners.yaml): Acme 3PL over SFTP and AS2
    Flow("3pl-orders-to-wms", "3PL X12 940 file on its SFTP server -> shipment_order -> WMS /outbound-orders",
         (("wms", "/outbound-orders"),), delivered=1),
    Flow("wms-shipments-to-3pl", "WMS ship-confirm webhook (JSON) -> shipment_confirmation -> 3PL over AS2 "
         "(signed, encrypted, signed MDN)", (("acme3pl", "/as2"),), delivered=1),
)
