"""`esb demo`: a simulated ERP and a simulated WMS wired through the bus, in one process, with a day
of traffic through every flow of the reference integration (`esb.demo.flows`).

What it runs:
- the shipped `routes.yaml` and mappings, unchanged except that ERP_URL, ERP_TOKEN, ERP_SOAP_URL,
  ERP_SOAP_USER, ERP_SOAP_PASSWORD, WMS_URL, WMS_API_KEY, WMS_EXPORT_DIR and RECONCILIATION_DIR
  point at the simulators and a temporary directory, and every poll (files, SOAP) runs every
  0.5 s instead of every 10 s to 1 h, file sources with no min_age (the simulated WMS renames
  a finished file into place), so the demo does not wait for them;
- a simulated ERP (`esb.demo.erp`): REST endpoints with a bearer token, and a real SOAP service
  described by `esb/demo/erp.wsdl` (purchase order changes, goods receipts, book stock) with
  basic authentication; and a simulated WMS (REST with an API key, and its export directory).
  Small Flask apps served by esb.http_server on free loopback ports; they record every call and answer
  like the real systems (their own ids, the same id again for a repeated Idempotency-Key). The
  WMS answers its first ASN 503 ("busy"), so the demo shows a retry;
- the bus: the embedded transport in the temporary directory, unless `--broker` or
  `ESB_BROKER_URL` names a RabbitMQ. On a broker the routes are renamed `demo-<hex>-<route>` so the
  demo never consumes a real bus's queues, and their queues are deleted when the demo ends.

The traffic (`esb.demo.traffic`) is made of the mappings' own test inputs, with some bad input
that lands in dead-letter queues or is refused. The demo waits (at most `timeout` seconds) until
every flow settled, prints a summary per flow (`esb.demo.report`), and returns 0 when every flow
delivered, dead-lettered and refused exactly what it should.

The package, one module per concern: `simulator` (a recording REST system), `soap` (a SOAP 1.1
service from a WSDL), `erp` (the simulated ERP), `flows` (what each flow must give), `traffic`
(the day), `bus` (the runtime that notes what it accepted; the routes pointed at the
simulators), `runner` (the `Demo`), `report` (what it prints), `partners` (the trading partner of
`partners.yaml`: a 3PL's SFTP server, `sftp_server`, in-process on paramiko, and its AS2 server).
"""


from esb.demo.bus import FILE_POLL, demo_config
from esb.demo.flows import FLOWS, Flow
from esb.demo.report import directions, summary
from esb.demo.runner import DEFAULT_TIMEOUT, PO_SAMPLE, PROJECT, SHIPPED_ROUTES, Demo, FlowResult, port_free
from esb.demo.simulator import Call, Simulator

__all__ = ["DEFAULT_TIMEOUT", "FILE_POLL", "FLOWS", "PO_SAMPLE", "PROJECT", "SHIPPED_ROUTES", "Call", "Demo",
           "Flow", "FlowResult", "Simulator", "demo_config", "directions", "port_free", "summary"]
