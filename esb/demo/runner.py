"""The `Demo`: the simulators and the bus started together, the day's traffic, the wait until every
flow settled, and the results per flow (what to print is `esb.demo.report`)."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path

from esb.credentials import Credentials, Principal, digest
from esb.demo.bus import _DemoRuntime, demo_config
from esb.demo.erp import SimulatedErp
from esb.demo.flows import FLOWS, Flow
from esb.demo.partners import PARTNER_ROUTES, Partner, files_waiting
from esb.demo.simulator import Call, Simulator
from esb.demo.traffic import Traffic
from esb.monitoring import create_app
from esb.routes import Config
from esb.runtime import RuntimeOptions

log = logging.getLogger("esb.demo")

PROJECT = Path(__file__).resolve().parent.parent.parent
SHIPPED_ROUTES = PROJECT / "routes.yaml"
PO_SAMPLE = "mappings/erp/purchase_order.in.cases/two_lines_cartons_and_pieces.input.xml"
DEFAULT_TIMEOUT = 30.0
"""Seconds `wait()` gives the flows to settle before it reports what it has."""


@dataclasses.dataclass
class FlowResult:
    flow: Flow
    route: str  # its name on the bus (prefixed on a broker)
    sent: list[str]  # message ids the bus accepted
    delivered: int  # deliveries (one per message and destination), from the bus's trace
    dead: int  # dead letters: raw input refused by a polled source, and messages a target refused
    rejected: int  # inputs answered 4xx, never stored
    retried: int
    calls: dict[str, Call]  # message id -> the first successful call of a simulator that carried it
    note: str = ""

    @property
    def name(self) -> str:
        return self.flow.route

    @property
    def settled(self) -> bool:
        """Every message has its outcome: waiting longer changes nothing."""
        return self.delivered + self.dead >= self.flow.delivered + self.flow.dead

    @property
    def ok(self) -> bool:
        """Delivered, dead-lettered and rejected exactly what the day's traffic should give."""
        flow = self.flow
        return (self.delivered, self.dead, self.rejected) == (flow.delivered, flow.dead, flow.rejected)


class Demo:
    """Simulators + bus + traffic. `start()`, `play()`, `wait()`, `stop()`; `esb.demo.report` prints."""

    def __init__(self, *, broker_url: str | None = None, port: int = 0, routes_path: Path = SHIPPED_ROUTES,
                 timeout: float = DEFAULT_TIMEOUT, root: Path = PROJECT):
        self.broker_url = broker_url or None
        self.port = port
        self.routes_path = Path(routes_path)
        self.root = root
        self.timeout = timeout
        self.prefix = f"demo-{secrets.token_hex(3)}-" if self.broker_url else ""
        self.keys = {"erp": secrets.token_urlsafe(16), "wms": secrets.token_urlsafe(16),
                     "admin": secrets.token_urlsafe(16)}
        self._erp_token = secrets.token_urlsafe(16)
        self._wms_api_key = secrets.token_urlsafe(16)
        self._soap_password = secrets.token_urlsafe(16)
        self._tmp = tempfile.TemporaryDirectory(prefix="esb-demo-")
        base = Path(self._tmp.name)
        self.data_dir = base / "data"
        self.export_dir = base / "wms" / "out"
        self.reconciliation_dir = base / "reconciliation"
        self.alerts_dir = base / "alerts"
        self.erp = SimulatedErp(check_auth=lambda h: h.get("Authorization") == f"Bearer {self._erp_token}",
                                soap_user="esb", soap_password=self._soap_password)
        self.wms = Simulator("wms", check_auth=lambda h: h.get("X-Api-Key") == self._wms_api_key)
        self.wms.fail_first.add("/asns")  # the WMS is busy at first: the demo shows a retry
        self.partner = Partner(base / "partner")
        self.runtime: _DemoRuntime | None = None
        self.config: Config | None = None
        self.traffic: Traffic | None = None
        self.started_at = time.monotonic()

    def route(self, flow: str) -> str:
        return self.prefix + flow

    # --- starting and stopping ------------------------------------------------------------------
    def start(self) -> Demo:
        self.erp.start()
        self.wms.start()
        self.partner.start()
        self.export_dir.mkdir(parents=True)
        environ = {**os.environ, "ERP_URL": self.erp.url, "ERP_TOKEN": self._erp_token,
                   "ERP_SOAP_URL": self.erp.soap_url, "ERP_SOAP_USER": "esb",
                   "ERP_SOAP_PASSWORD": self._soap_password,
                   "WMS_URL": self.wms.url, "WMS_API_KEY": self._wms_api_key,
                   "WMS_EXPORT_DIR": str(self.export_dir), "RECONCILIATION_DIR": str(self.reconciliation_dir),
                   "ALERTS_DIR": str(self.alerts_dir),
                   "ESB_BROKER_URL": self.broker_url or "", **self.partner.environ()}
        self.config = demo_config(self.routes_path, environ, self.prefix, extra=(PARTNER_ROUTES,))
        options = RuntimeOptions(broker_url=self.broker_url, data_dir=self.data_dir, port=self.port,
                                 credentials=self._credentials(), transport_options={})
        try:
            self.runtime = _DemoRuntime(self.config, options)
            self.runtime.start(app=create_app(self.runtime))
        except BaseException:
            self.stop()
            raise
        self.traffic = Traffic(root=self.root, bus_url=self.bus_url, route=self.route, keys=self.keys,
                               export_dir=self.export_dir, erp=self.erp, partner=self.partner,
                               items_known=self._wait_for_item_units)
        return self

    def _wait_for_item_units(self, timeout: float = 10.0) -> None:
        """Until the bus keeps the units of the day's items (the reconciliation converts with them)."""
        from esb.units import ItemUnits

        units, deadline = ItemUnits(self.runtime.state_target), time.monotonic() + timeout
        while ("12345", "CT") not in units.conversions() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _credentials(self) -> Credentials:
        """A sender key for each system, allowed on the routes it sends to; an admin key."""
        credentials = Credentials()
        for system in ("erp", "wms"):
            roles = {f"sender={route.name}" for route in self.config.routes
                     if route.source.adapter == "rest" and route.source.system == system}
            credentials.add(digest(self.keys[system]), Principal(system, frozenset(roles)))
        credentials.add(digest(self.keys["admin"]), Principal("demo-admin", frozenset({"admin"})))
        return credentials

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
            if self.broker_url:
                self._delete_queues()
        self.erp.stop()
        self.wms.stop()
        self.partner.stop()
        self._tmp.cleanup()

    def _delete_queues(self) -> None:
        """On a broker, the demo's queues (named after its prefixed routes) go when it ends."""
        import pika

        try:
            connection = pika.BlockingConnection(pika.URLParameters(self.broker_url))
            channel = connection.channel()
            for queue in self.runtime.transport.topology.queues:
                channel.queue_delete(queue.name)
            connection.close()
        except Exception as error:  # the demo's result stands; say what is left behind
            log.warning("could not delete the demo's queues (%s*): %s", self.prefix, error)

    # --- the traffic and its outcome --------------------------------------------------------------
    @property
    def bus_url(self) -> str:
        return self.runtime.server.url

    def play(self) -> None:
        """The day's traffic through every flow (see `esb.demo.traffic`)."""
        self.traffic.play()

    def results(self) -> list[FlowResult]:
        return [self._result(flow) for flow in FLOWS]

    def _result(self, flow: Flow) -> FlowResult:
        route = self.route(flow.route)
        with self.runtime._accepted_lock:
            sent = list(self.runtime.accepted.get(route, []))
            raw_dead = self.runtime.raw_dead_letters.get(route, 0)
        steps = self._steps(sent)

        def count(step: str) -> int:
            return sum(trace.count(step) for trace in steps.values())

        calls: dict[str, Call] = {}
        for system, path in flow.targets:
            if system != "file":
                simulator = self.simulator(system)
                calls.update({i: c for i, c in simulator.delivered(path).items() if i in sent})
        note = ""
        if flow.route in ("wms-receipts-to-erp", "wms-stock-to-erp") and self._waiting_files(flow.route):
            note = "a file is still waiting to be picked up"
        if flow.route == "3pl-orders-to-wms" and self.partner.waiting():
            note = "a file is still waiting on the 3PL's SFTP server"
        return FlowResult(flow, route, sent, count("delivered"), count("dead_lettered") + raw_dead,
                          self.traffic.rejected.get(flow.route, 0) if self.traffic else 0, count("retried"),
                          calls, note)

    def simulator(self, system: str) -> Simulator:
        """The simulated system called `system` (erp, wms, or the 3PL's AS2 server, acme3pl)."""
        return {"erp": self.erp, "wms": self.wms, "acme3pl": self.partner.as2}[system]

    def _waiting_files(self, route: str) -> bool:
        pattern = "STOCK_*.txt" if route == "wms-stock-to-erp" else "GR_*.csv"
        return files_waiting(self.export_dir, pattern)

    def _steps(self, message_ids: list[str]) -> dict[str, list[str]]:
        """The bus's own trace of each message (received, published, retried, delivered, ...)."""
        if not message_ids:
            return {}
        self.runtime.journal.flush(2)
        return {i: [entry.step for entry in self.runtime.journal.trace(message_id=i)] for i in message_ids}

    def wait(self, stop: threading.Event | None = None) -> list[FlowResult]:
        """Until every flow settled (each message delivered or dead-lettered, the files picked up),
        the timeout, or `stop` is set (Ctrl-C)."""
        deadline = time.monotonic() + self.timeout
        stop = stop or threading.Event()
        while True:
            results = self.results()
            if all(r.settled and not r.note for r in results) or time.monotonic() > deadline:
                return results
            if stop.wait(0.1):
                return results

    def received_files(self) -> list[Path]:
        """What the bus wrote into the reconciliation directory."""
        return sorted(self.reconciliation_dir.glob("*.json")) if self.reconciliation_dir.is_dir() else []

    def discrepancies(self) -> list[dict]:
        """The inventory discrepancies the reconciliation wrote into its report directory."""
        return _documents(self.reconciliation_dir / "discrepancies")

    def alerts(self) -> list[dict]:
        """The alerts the alert rules fired, as the alerts route wrote them."""
        return _documents(self.alerts_dir)


def _documents(directory: Path) -> list[dict]:
    import json

    if not directory.is_dir():
        return []
    return [json.loads(path.read_bytes()) for path in sorted(directory.glob("*.json"))]


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
