"""The simulated ERP: a REST API (bearer token) and a real SOAP service described by `erp.wsdl`
(HTTP basic authentication), on one loopback port.

REST: every `POST /erp/<path>` is recorded and answered 201 with an ERP document number (see
`Simulator`). SOAP at `/erp/soap` (`GET /erp/soap?wsdl` gives the WSDL with this address):
- `GetPurchaseOrderChanges(ChangedSince)`: the purchase order revisions of its change log that
  changed at or after ChangedSince, oldest first. The log grows as the day goes on: a revision
  published `after_polls=n` shows only from the (n+1)-th call, so the watermark is seen at work;
- `PostGoodsReceipt`: answers a material document number (the same one for a repeated
  Idempotency-Key); a receipt for a plant the ERP does not know is a Client fault;
- `GetBookStock(Plant)`: the book stock the ERP holds for the plant.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Response, request
from lxml import etree

from esb.demo.simulator import Call, Simulator
from esb.demo.soap import SoapService, SoapServiceFault, text

WSDL_PATH = Path(__file__).with_name("erp.wsdl")
PLANTS = ("1000", "2000")


class SimulatedErp(Simulator):
    def __init__(self, *, check_auth: Callable[[Any], bool], soap_user: str, soap_password: str):
        super().__init__("erp", check_auth=check_auth)
        self._soap_credentials = (soap_user, soap_password)
        self._change_log: list[tuple[int, dict]] = []  # (visible after this many polls, revision)
        self._book_stock: dict[str, dict] = {}
        self._documents: dict[str, str] = {}  # Idempotency-Key -> material document
        self._log_lock = threading.Lock()
        self.polls = 0
        self.asked_since: list[str | None] = []  # the ChangedSince of every poll, in order
        self.soap = SoapService(WSDL_PATH, {"GetPurchaseOrderChanges": self._purchase_order_changes,
                                            "PostGoodsReceipt": self._post_goods_receipt,
                                            "GetBookStock": self._book_stock_of})
        self.app.add_url_rule("/erp/soap", "soap", self._soap_view, methods=["GET", "POST"])

    @property
    def soap_url(self) -> str:
        return f"{self.url}/soap"

    # --- what the ERP holds ---------------------------------------------------------------------
    def publish_purchase_order(self, revision: dict, *, after_polls: int = 0) -> None:
        """Add a purchase order revision (the WSDL's PurchaseOrder fields) to the change log."""
        with self._log_lock:
            self._change_log.append((after_polls, revision))

    def set_book_stock(self, plant: str, snapshot: dict) -> None:
        self._book_stock[plant] = snapshot

    # --- the SOAP service -----------------------------------------------------------------------
    def _soap_view(self):
        if request.method == "GET":
            if "wsdl" not in request.args:
                return Response("GET ?wsdl for the WSDL; POST SOAP 1.1 requests", 404)
            return Response(self.soap.wsdl(self.soap_url), 200, content_type="text/xml; charset=utf-8")
        if not self._soap_authorized():
            key = request.headers.get("Idempotency-Key")
            self.record(Call(self.name, "/soap", 401, key, request.get_data()))
            return Response("unauthorized", 401, headers={"WWW-Authenticate": 'Basic realm="erp"'})
        return self.soap.answer(self._recorded)

    def _soap_authorized(self) -> bool:
        expected = base64.b64encode(":".join(self._soap_credentials).encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def _recorded(self, operation: str, element: etree._Element, call: Callable[[], etree._Element]):
        key = request.headers.get("Idempotency-Key")
        try:
            answer = call()
        except SoapServiceFault:
            self.record(Call(self.name, f"/soap/{operation}", 500, key, request.get_data()))
            raise
        answered = text(answer, "MaterialDocument")
        self.record(Call(self.name, f"/soap/{operation}", 200, key, request.get_data(), answered))
        return answer

    def _purchase_order_changes(self, element: etree._Element) -> etree._Element:
        since = text(element, "ChangedSince")
        threshold = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        with self._log_lock:
            self.asked_since.append(since)
            visible = [revision for after, revision in self._change_log if after <= self.polls]
            self.polls += 1
        chosen = sorted((r for r in visible if threshold is None
                         or datetime.fromisoformat(r["ChangedAt"]) >= threshold),
                        key=lambda r: datetime.fromisoformat(r["ChangedAt"]))
        limit = int(text(element, "MaxRecords") or 100)
        return self.soap.element("GetPurchaseOrderChangesResponse", PurchaseOrder=chosen[:limit])

    def _post_goods_receipt(self, element: etree._Element) -> etree._Element:
        plant = text(element, "Plant")
        if plant not in PLANTS:
            raise SoapServiceFault(f"plant {plant} does not exist (known: {', '.join(PLANTS)})")
        key = request.headers.get("Idempotency-Key") or ""
        with self.lock:
            document = self._documents.get(key)
            status = "DUPLICATE" if document else "POSTED"
            if document is None:
                self._counter += 1
                document = f"{5000000000 + self._counter}"
                if key:
                    self._documents[key] = document
        return self.soap.element("PostGoodsReceiptResponse", MaterialDocument=document, Status=status)

    def _book_stock_of(self, element: etree._Element) -> etree._Element:
        plant = text(element, "Plant")
        snapshot = self._book_stock.get(plant)
        if snapshot is None:
            raise SoapServiceFault(f"no book stock for plant {plant}")
        return self.soap.element("GetBookStockResponse", Snapshot=snapshot)
