"""The `Demo`: the simulators and the bus started together, the sample traffic, the wait until every
flow delivered, and what to print."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from pathlib import Path

import requests

from esb.credentials import Credentials, Principal, digest
from esb.demo.bus import _DemoRuntime, demo_config
from esb.demo.simulator import Call, Simulator
from esb.monitoring import create_app
from esb.routes import Config
from esb.runtime import RuntimeOptions

log = logging.getLogger("esb.demo")

PROJECT = Path(__file__).resolve().parent.parent.parent
SHIPPED_ROUTES = PROJECT / "routes.yaml"
PO_SAMPLE = "mappings/erp/purchase_order.in.cases/two_lines_cartons_and_pieces.input.xml"
RECEIPT_SAMPLE = "mappings/wms/goods_receipt.in.cases/two_receipts_gbk.input.csv"
SHIPMENT_SAMPLE = "mappings/wms/shipment_confirmation.in.cases/local_time_lots_and_serials.input.json"
FLOWS = ("erp-po-to-wms", "wms-receipts-to-erp", "wms-shipments-to-erp")
DEFAULT_TIMEOUT = 30.0


@dataclasses.dataclass
class FlowResult:
    name: str  # the shipped route's name
    route: str  # its name on the bus (prefixed on a broker)
    target: str  # "POST <url>"
    sent: list[str]  # message ids the bus accepted
    delivered: dict[str, Call]
    retried: int
    statuses: dict[str, list[int]]
    note: str = ""
    dead: bool = False  # a message of it was dead-lettered: waiting longer changes nothing

    @property
    def ok(self) -> bool:
        return bool(self.sent) and all(i in self.delivered for i in self.sent)


class Demo:
    """Simulators + bus + traffic. `start()`, `play()`, `wait()`, `summary()`, `stop()`."""

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
        self._tmp = tempfile.TemporaryDirectory(prefix="esb-demo-")
        self.data_dir = Path(self._tmp.name) / "data"
        self.export_dir = Path(self._tmp.name) / "wms" / "out"
        self.erp = Simulator("erp",
                             check_auth=lambda h: h.get("Authorization") == f"Bearer {self._erp_token}")
        self.wms = Simulator("wms", check_auth=lambda h: h.get("X-Api-Key") == self._wms_api_key)
        self.wms.fail_first.add("/inbound-orders")
        self.runtime: _DemoRuntime | None = None
        self.config: Config | None = None
        self.started_at = time.monotonic()
        self.answers: dict[str, str] = {}  # flow -> what the bus answered the sender

    def route(self, flow: str) -> str:
        return self.prefix + flow

    # --- starting and stopping ------------------------------------------------------------------
    def start(self) -> Demo:
        self.erp.start()
        self.wms.start()
        self.export_dir.mkdir(parents=True)
        environ = {**os.environ, "ERP_URL": self.erp.url, "ERP_TOKEN": self._erp_token,
                   "WMS_URL": self.wms.url, "WMS_API_KEY": self._wms_api_key,
                   "WMS_EXPORT_DIR": str(self.export_dir), "ESB_BROKER_URL": self.broker_url or ""}
        self.config = demo_config(self.routes_path, environ, self.prefix)
        credentials = Credentials()
        credentials.add(digest(self.keys["erp"]), Principal("erp", frozenset(
            {f"sender={self.route(FLOWS[0])}"})))
        credentials.add(digest(self.keys["wms"]), Principal("wms", frozenset(
            {f"sender={self.route(FLOWS[1])}", f"sender={self.route(FLOWS[2])}"})))
        credentials.add(digest(self.keys["admin"]), Principal("demo-admin", frozenset({"admin"})))
        options = RuntimeOptions(broker_url=self.broker_url, data_dir=self.data_dir, port=self.port,
                                 credentials=credentials, transport_options={})
        self.runtime = _DemoRuntime(self.config, options)
        try:
            self.runtime.start(app=create_app(self.runtime))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
            if self.broker_url:
                self._delete_queues()
        self.erp.stop()
        self.wms.stop()
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

    # --- the traffic ------------------------------------------------------------------------
    @property
    def bus_url(self) -> str:
        return self.runtime.server.url

    def play(self) -> None:
        """The ERP posts a PO, the WMS drops a goods-receipt file and posts a shipment confirmation."""
        self._post(FLOWS[0], self.keys["erp"], (self.root / PO_SAMPLE).read_bytes(), "application/xml")
        sample = self.root / RECEIPT_SAMPLE
        hidden = self.export_dir / f".{sample.name}.part"  # written aside, then renamed: as a WMS would
        hidden.write_bytes(sample.read_bytes())
        hidden.rename(self.export_dir / "GR_20261130_000123.csv")
        self.answers[FLOWS[1]] = f"file GR_20261130_000123.csv dropped in {self.export_dir}"
        self._post(FLOWS[2], self.keys["wms"], (self.root / SHIPMENT_SAMPLE).read_bytes(), "application/json")

    def _post(self, flow: str, key: str, body: bytes, content_type: str) -> None:
        url = f"{self.bus_url}/in/{self.route(flow)}"
        try:
            response = requests.post(url, data=body, headers={"Content-Type": content_type, "X-API-Key": key},
                                     timeout=30)
            self.answers[flow] = (f"POST /in/{self.route(flow)} -> {response.status_code} "
                                  f"{response.text.strip()}")
        except requests.RequestException as error:
            self.answers[flow] = f"POST /in/{self.route(flow)} failed: {error}"

    def results(self) -> list[FlowResult]:
        targets = {FLOWS[0]: (self.wms, "/inbound-orders"), FLOWS[1]: (self.erp, "/goods-receipts"),
                   FLOWS[2]: (self.erp, "/goods-issues")}
        results = []
        for flow in FLOWS:
            simulator, path = targets[flow]
            with self.runtime._accepted_lock:
                sent = list(self.runtime.accepted.get(self.route(flow), []))
            delivered = simulator.delivered(path)
            note = ""
            if flow == FLOWS[1] and any(self.export_dir.glob("GR_*.csv")):
                note = "the file is still waiting to be picked up"
            steps = self._steps(sent)
            retried = sum(s.count("retried") for s in steps.values())
            dead = [i for i in sent if "dead_lettered" in steps.get(i, ())]
            if dead:
                note = f"{len(dead)} dead-lettered: esb dlq list {self.route(flow)}"
            results.append(FlowResult(flow, self.route(flow), f"POST {simulator.url}{path}", sent,
                                      {i: delivered[i] for i in sent if i in delivered},
                                      retried, {i: simulator.statuses(i) for i in sent}, note,
                                      dead=bool(dead)))
        return results

    def _steps(self, message_ids: list[str]) -> dict[str, list[str]]:
        """The bus's own trace of each message (received, published, retried, delivered, ...)."""
        if not message_ids:
            return {}
        self.runtime.journal.flush(2)
        return {i: [entry.step for entry in self.runtime.journal.trace(message_id=i)] for i in message_ids}

    def wait(self, stop: threading.Event | None = None) -> list[FlowResult]:
        """Until every flow delivered everything it accepted (the file picked up), the timeout, or
        `stop` is set (Ctrl-C)."""
        deadline = time.monotonic() + self.timeout
        stop = stop or threading.Event()
        while True:
            results = self.results()
            if all(r.ok and not r.note or r.dead for r in results) or time.monotonic() > deadline:
                return results
            if stop.wait(0.1):
                return results

    # --- what to print ----------------------------------------------------------------------
    def summary(self, results: list[FlowResult]) -> str:
        where = (f"RabbitMQ {_redacted(self.broker_url)} (routes prefixed {self.prefix})" if self.broker_url
                 else f"embedded transport {self.data_dir / 'transport.sqlite'}")
        lines = [f"esb demo: the shipped routes on {where}", ""]
        for result in results:
            lines.append(f"{result.name}: {'DELIVERED' if result.ok else 'NOT DELIVERED'}")
            lines.append(f"  sender:    {self.answers.get(result.name, '(nothing sent)')[:160]}")
            lines.append(f"  target:    {result.target}")
            lines.append(f"  sent {len(result.sent)}, delivered {len(result.delivered)}, "
                         f"retried {result.retried}" + (f" ({result.note})" if result.note else ""))
            for message_id in result.sent:
                call = result.delivered.get(message_id)
                if call is None:
                    lines.append(f"  - {message_id}  not delivered")
                    continue
                statuses = result.statuses.get(message_id) or [call.status]
                answers = ", then ".join(str(status) for status in statuses)
                lines.append(f"  - {message_id}  answered {answers} (id {call.answered_id})")
                lines.append(f"      received: {_excerpt(call.body)}")
            lines.append("")
        delivered = sum(r.ok for r in results)
        elapsed = time.monotonic() - self.started_at
        lines.append(f"{delivered} of {len(results)} flows delivered in {elapsed:.1f} s")
        return "\n".join(lines)

    def directions(self) -> str:
        """What to try while the demo runs."""
        bus = self.bus_url
        return "\n".join([
            f"bus:        {bus}   (inbound: POST {bus}/in/<route>)",
            f"dashboard:  {bus}/dashboard   (admin key: {self.keys['admin']})",
            f"metrics:    {bus}/metrics   admin API: {bus}/api/routes",
            f"ERP (sim):  {self.erp.url}   what it received: GET {self.erp.url}/_received",
            f"WMS (sim):  {self.wms.url}   what it received: GET {self.wms.url}/_received",
            f"WMS export dir (drop GR_*.csv files here): {self.export_dir}",
            f"keys:       ERP sender {self.keys['erp']}   WMS sender {self.keys['wms']}",
            "try:        curl -H 'X-API-Key: " + self.keys["erp"] + "' -H 'Content-Type: application/xml' "
            f"--data-binary @{PO_SAMPLE} {bus}/in/{self.route(FLOWS[0])}",
            "Ctrl-C stops the demo.",
        ])


def _excerpt(body: bytes, limit: int = 150) -> str:
    try:
        text = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        text = body.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _redacted(url: str) -> str:
    from esb.transport.rabbitmq_connection import redacted

    return redacted(url)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
