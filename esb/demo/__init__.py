"""`esb demo`: a simulated ERP and a simulated WMS wired through the bus, in one process.

What it runs:
- the shipped `routes.yaml` and mappings, unchanged except that ERP_URL, ERP_TOKEN, WMS_URL,
  WMS_API_KEY and WMS_EXPORT_DIR point at the simulators and a temporary directory, and the file
  poll runs every 0.5 s instead of 10 s with no min_age (the simulated WMS renames a finished
  file into place), so the demo does not wait for it;
- a simulated ERP (`POST /erp/goods-receipts`, `POST /erp/goods-issues`, bearer token) and a
  simulated WMS (`POST /wms/inbound-orders`, API key), small Flask apps served by waitress on free
  loopback ports. They record every call and answer like the real systems: 201 with their id,
  the same id again for a repeated Idempotency-Key. The WMS answers its very first call 503
  ("busy"), so the demo shows a retry;
- the bus: the embedded transport in the temporary directory, unless `--broker` or
  `ESB_BROKER_URL` names a RabbitMQ. On a broker the routes are renamed `demo-<hex>-<route>` so the
  demo never consumes a real bus's queues, and their queues are deleted when the demo ends.

The sample traffic is the mappings' own test inputs (`mappings/*/*.cases/*.input.*`): the ERP posts
an ORDERS05 IDoc to `/in/erp-po-to-wms`, the WMS drops a GBK goods-receipt CSV in its export
directory, and posts a shipment confirmation to `/in/wms-shipments-to-erp`, each with an API key
the demo made for it. The demo then waits (at most `timeout` seconds) until every message the
bus accepted was delivered, prints a summary per flow, and returns 0 when every flow delivered.

The package, one module per concern: `simulator` (a simulated system on loopback), `bus` (the
runtime that notes what it accepted, and the shipped routes pointed at the simulators), `runner`
(the `Demo`: start, traffic, wait, summary).
"""

from esb.demo.bus import FILE_POLL, demo_config
from esb.demo.runner import (
    DEFAULT_TIMEOUT,
    FLOWS,
    PO_SAMPLE,
    PROJECT,
    RECEIPT_SAMPLE,
    SHIPMENT_SAMPLE,
    SHIPPED_ROUTES,
    Demo,
    FlowResult,
    port_free,
)
from esb.demo.simulator import Call, Simulator

__all__ = ["DEFAULT_TIMEOUT", "FILE_POLL", "FLOWS", "PO_SAMPLE", "PROJECT", "RECEIPT_SAMPLE",
           "SHIPMENT_SAMPLE", "SHIPPED_ROUTES", "Call", "Demo", "FlowResult", "Simulator", "demo_config",
           "port_free"]
