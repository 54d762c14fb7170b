"""`python -m esb.demo.standalone`: the simulated ERP and WMS on their own, for docker-compose (the
`simulators` service), where the bus runs in its own container with `esb run`.

The ERP serves its REST endpoints and its SOAP service (erp.wsdl) on `--erp-port`, the WMS its REST
endpoints on `--wms-port`; the ERP holds the purchase order revisions and the book stock of the
demo's day for the bus to poll. With `--bus-url`, once the bus answers `/healthz`, the day's traffic
is sent to it (posts with the sender keys, files into `--export-dir`). Credentials come from the
environment, as the bus's routes.yaml takes them: ERP_TOKEN (bearer token of the ERP's REST API),
ERP_SOAP_USER / ERP_SOAP_PASSWORD (basic authentication of its SOAP service), WMS_API_KEY, and
ERP_SENDER_KEY / WMS_SENDER_KEY (the keys the simulators send to the bus with, which the bus
knows from ESB_API_KEYS). SIGTERM or Ctrl-C stops them.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from esb.demo.erp import SimulatedErp
from esb.demo.runner import PROJECT
from esb.demo.simulator import Simulator
from esb.demo.traffic import Traffic

BUS_WAIT = 180.0
"""Seconds to wait for the bus's /healthz before the traffic is given up."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m esb.demo.standalone", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--erp-port", type=int, default=8081)
    parser.add_argument("--wms-port", type=int, default=8082)
    parser.add_argument("--export-dir", type=Path, default=Path("data/wms/out"),
                        help="the WMS's export directory, shared with the bus")
    parser.add_argument("--bus-url", help="send the day's traffic to this bus once it is up")
    args = parser.parse_args(argv)
    env = os.environ
    token, api_key = env.get("ERP_TOKEN", ""), env.get("WMS_API_KEY", "")
    erp = SimulatedErp(check_auth=lambda h: not token or h.get("Authorization") == f"Bearer {token}",
                       soap_user=env.get("ERP_SOAP_USER", "esb"),
                       soap_password=env.get("ERP_SOAP_PASSWORD", ""), host=args.host, port=args.erp_port)
    wms = Simulator("wms", check_auth=lambda h: not api_key or h.get("X-Api-Key") == api_key,
                    host=args.host, port=args.wms_port)
    args.export_dir.mkdir(parents=True, exist_ok=True)
    traffic = Traffic(root=PROJECT, bus_url=(args.bus_url or "").rstrip("/"), route=lambda name: name,
                      keys={"erp": env.get("ERP_SENDER_KEY", ""), "wms": env.get("WMS_SENDER_KEY", "")},
                      export_dir=args.export_dir, erp=erp)
    traffic.seed_erp()
    erp.start()
    wms.start()
    print(f"simulated ERP on {erp.url} (SOAP {erp.soap_url}?wsdl), simulated WMS on {wms.url}", flush=True)
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    try:
        if args.bus_url and _bus_is_up(args.bus_url, stop):
            traffic.send()
            for flow, answers in traffic.answers.items():
                for answer in answers:
                    print(f"{flow}: {answer[:160]}", flush=True)
        stop.wait()
    finally:
        erp.stop()
        wms.stop()
    return 0


def _bus_is_up(bus_url: str, stop: threading.Event) -> bool:
    deadline = time.monotonic() + BUS_WAIT
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if requests.get(f"{bus_url.rstrip('/')}/healthz", timeout=2).ok:
                return True
        except requests.RequestException:
            pass
        stop.wait(1.0)
    print(f"the bus at {bus_url} did not answer /healthz; no traffic sent", flush=True)
    return False


if __name__ == "__main__":
    raise SystemExit(main())
