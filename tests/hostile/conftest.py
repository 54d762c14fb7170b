"""The bus the hostile suite attacks: `tests/hostile/routes.yaml` (JSON REST, IDoc XML and SOAP
push endpoints with the shipped mappings) on the embedded transport, its whole HTTP app (inbound
endpoints, monitoring, admin API, dashboard) served over real HTTP on a free loopback port.
Consumers do not run: accepted messages stay queued, no target is called."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from esb.config import load_config
from esb.credentials import Credentials
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

HERE = Path(__file__).resolve().parent
ROUTES = HERE / "routes.yaml"
IDOC = PROJECT / "mappings/erp/purchase_order.in.cases/two_lines_cartons_and_pieces.input.xml"
SHIPMENT = PROJECT / "mappings/wms/shipment_confirmation.in.cases/local_time_lots_and_serials.input.json"

KEYS = {
    "erp-po-to-wms": "k-sender-po",
    "wms-shipments-to-erp": "k-sender-shipments",
    "erp-receipts-soap": "k-sender-soap",
    "viewer": "k-viewer",
    "admin": "k-admin",
}
"""One key per role: a sender key per route, a viewer and an admin."""

API_KEYS = ";".join([
    *(f"{route}:sender={route}:{key}" for route, key in KEYS.items() if "-" in route),
    f"ops-viewer:viewer:{KEYS['viewer']}",
    f"ops-admin:admin:{KEYS['admin']}",
])

SOAP_ACTION = "urn:example:erp:PostGoodsReceipt"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class HostileBus:
    runtime: Runtime
    url: str
    host: str
    port: int

    def post(self, route: str, body: bytes | str, content_type: str, **headers: str) -> requests.Response:
        """POST to a route's inbound endpoint with its sender key."""
        path = f"/soap/{route}" if route == "erp-receipts-soap" else f"/in/{route}"
        extra = {"SOAPAction": f'"{SOAP_ACTION}"'} if path.startswith("/soap/") else {}
        return requests.post(self.url + path, data=body, timeout=10, headers={
            "Content-Type": content_type, "X-API-Key": KEYS[route], **extra, **headers})

    def healthy(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=10)


@pytest.fixture(scope="package")
def hostile_bus(tmp_path_factory) -> Iterator[HostileBus]:
    data_dir = tmp_path_factory.mktemp("hostile-bus")
    options = RuntimeOptions(broker_url=None, data_dir=data_dir, port=0, consumers=False,
                             credentials=Credentials.from_environment({"ESB_API_KEYS": API_KEYS}))
    runtime = Runtime(load_config(ROUTES, {}), options)
    runtime.start(app=create_app(runtime))
    server = runtime.server
    yield HostileBus(runtime, server.url, server.host, server.port)
    runtime.stop()


def unique(prefix: str) -> str:
    """A document number no other post used: re-posting one is a duplicate (200, not 202)."""
    return prefix + uuid.uuid4().hex[:12].upper()


def shipment(quantity: str = "20", line_number: str = "1") -> bytes:
    """The shipped WMS shipment confirmation with a fresh shipment id, its first line's quantity
    and line number replaced (as JSON text)."""
    text = SHIPMENT.read_text(encoding="utf-8").replace("SHP-0099123", unique("SHP-"), 1)
    text = text.replace('"qtyShipped": 20', f'"qtyShipped": {quantity}', 1)
    return text.replace('"lineNo": 1,', f'"lineNo": {line_number},', 1).encode()


def idoc(quantity: str = "12.000", position: str = "00010") -> bytes:
    """The shipped ORDERS05 IDoc with a fresh order number, its first MENGE and POSEX replaced."""
    text = IDOC.read_text(encoding="utf-8").replace("<BELNR>4500012345</BELNR>",
                                                    f"<BELNR>45{uuid.uuid4().int % 10**8:08d}</BELNR>", 1)
    text = text.replace("<MENGE>12.000</MENGE>", f"<MENGE>{quantity}</MENGE>", 1)
    return text.replace("<POSEX>00010</POSEX>", f"<POSEX>{position}</POSEX>", 1).encode()


def soap_call(receipt: str | None = None, quantity: str = "2.5", line: str = "1", *,
              bodies: int = 1) -> bytes:
    """A SOAP 1.1 PostGoodsReceipt call (`bodies` Body elements, each holding the call)."""
    receipt = receipt or unique("GR-")
    call = (f'<e:PostGoodsReceipt xmlns:e="urn:example:erp"><e:ReceiptNumber>{receipt}</e:ReceiptNumber>'
            "<e:PurchaseOrder>PO-7</e:PurchaseOrder><e:Warehouse>WH1</e:Warehouse>"
            "<e:ReceivedAt>2026-05-01T10:00:00+08:00</e:ReceivedAt>"
            f"<e:Line><e:LineNumber>{line}</e:LineNumber><e:Sku>A-1</e:Sku><e:Quantity>{quantity}</e:Quantity>"
            "<e:Unit>EA</e:Unit></e:Line></e:PostGoodsReceipt>")
    body = f"<s:Body>{call}</s:Body>" * bodies
    return f'<?xml version="1.0"?><s:Envelope xmlns:s="{SOAP11}">{body}</s:Envelope>'.encode()
