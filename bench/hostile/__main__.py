"""The hostile run of issue 21 at long counts, against a bus in a process of its own: every category
of attack, each answer counted, and whether the bus still answers `/healthz` after it.

    python -m bench.hostile [--examples 500] [--idle 1000] [--slowloris 300] [--only CATEGORY ...]

Prints one row per category: tried, 2xx, 4xx, 5xx (SOAP 1.1 Client faults, sent as HTTP 500,
counted apart), wrongly accepted (a 2xx, or more than the role allows, for input that must be
refused), healthy after. Goal: 0 5xx, 0 wrongly accepted, healthy after every one. (Stuck files,
the file source's column, are `bench/hostile`'s part for the file source.)
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Iterable

import requests
from hypothesis import HealthCheck, given, settings

from bench import hostile_connections
from bench.hostile.bus import BusProcess
from tests.hostile import strategies
from tests.hostile.conftest import KEYS, SOAP_ACTION, shipment, soap_call, unique
from tests.hostile.rawhttp import exchange, statuses
from tests.hostile.test_role_matrix import MATRIX, may

ROUTE_OF = {"json": "wms-shipments-to-erp", "xml": "erp-po-to-wms", "soap": "erp-receipts-soap"}
CONTENT_TYPE = {"json": "application/json", "xml": "application/xml", "soap": "text/xml; charset=utf-8"}


class Tally:
    def __init__(self, name: str):
        self.name, self.counts = name, Counter()

    def count(self, status: int, *, must_refuse: bool, client_fault: bool = False) -> None:
        self.counts["tried"] += 1
        if client_fault:
            self.counts["client faults"] += 1
        elif status >= 500 or status == 0:
            self.counts["5xx"] += 1
        elif status >= 400:
            self.counts["4xx"] += 1
        else:
            self.counts["2xx"] += 1
            self.counts["wrongly accepted"] += must_refuse


def post(bus, kind: str, body: bytes) -> requests.Response:
    path = f"/soap/{ROUTE_OF[kind]}" if kind == "soap" else f"/in/{ROUTE_OF[kind]}"
    headers = {"Content-Type": CONTENT_TYPE[kind], "X-API-Key": KEYS[ROUTE_OF[kind]]}
    if kind == "soap":
        headers["SOAPAction"] = f'"{SOAP_ACTION}"'
    return requests.post(bus.url + path, data=body, headers=headers, timeout=30)


def send_all(bus, tally: Tally, kind: str, bodies: Iterable[bytes], *, must_refuse: bool) -> None:
    for body in bodies:
        try:
            response = post(bus, kind, body)
        except requests.RequestException:
            tally.count(0, must_refuse=must_refuse)
            continue
        fault = response.status_code == 500 and strategies.is_refused_well(response)
        tally.count(response.status_code, must_refuse=must_refuse, client_fault=fault)


def generated(bus, tally: Tally, kind: str, strategy, examples: int) -> None:
    @settings(max_examples=examples, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(body=strategy)
    def attack(body):
        send_all(bus, tally, kind, [body], must_refuse=False)

    attack()


def numbers() -> Iterable[bytes]:
    for text in strategies.HOSTILE_NUMBERS:
        if text != "-0":
            yield shipment(quantity=text)
            yield shipment(line_number=text)


def controls() -> Iterable[bytes]:
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        document = json.loads(shipment())
        document["data"]["shipmentId"] = f"SHP-{chr(code)}{unique('')}"
        yield json.dumps(document).encode()


FRAMING = [
    b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: b\r\nContent-Length: 5\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: b\r\n\r\n",
    b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: b\r\n\r\n",
    b"POST /in/wms-shipments-to-erp HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"POST /in/wms-shipments-to-erp HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\n\r\n", b"GET /healthz HTTP/1.2\r\n\r\n", b"GET /healthz HTTP/2.0\r\n\r\n",
    b"GET /healthz\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: b\r\nX: a\r\n b\r\n\r\n",
]


def framing(bus, tally: Tally) -> None:
    versions = 0
    for raw in FRAMING:
        answered = statuses(exchange(bus.host, bus.port, raw))
        # one answer, a refusal: a second one would be a smuggled request answered
        status = answered[0] if len(answered) == 1 else 200
        versions += status == 505
        tally.count(400 if status == 505 else status, must_refuse=True)
    tally.note = f"4xx includes {versions} × 505 (HTTP version not supported)"


def roles(bus, tally: Tally) -> None:
    from tests.hostile.test_role_matrix import call

    for caller, method, path, role in MATRIX:
        response = call(bus, caller, method, path)
        allowed = caller in KEYS and may(caller, role)
        got_in = response.status_code not in (401, 403)
        status = response.status_code if allowed or not got_in else 200
        fault = path.startswith("/soap/") and strategies.is_refused_well(response)
        tally.count(status, must_refuse=not allowed, client_fault=fault)


def connections(bus, tally: Tally, idle: int, slowloris: int) -> None:
    result = hostile_connections.run(bus.url, bus.host, bus.port, idle=idle, slowloris=slowloris,
                                     posts=300, clients=8)
    tally.counts.update({key: result[key] for key in ("tried", "2xx", "4xx", "5xx")})
    tally.counts["5xx"] += result["no answer"]
    tally.note = f"p99 {result['p99'] * 1000:.0f} ms with {idle} idle + {slowloris} slowloris held"


def categories(args) -> dict[str, Callable[[object, Tally], None]]:
    examples = args.examples
    return {
        "numbers (JSON)": lambda bus, t: send_all(bus, t, "json", numbers(), must_refuse=True),
        "depth (JSON)": lambda bus, t: send_all(bus, t, "json", (
            shipment().replace(b'"event"', b'"x": ' + b"[" * d + b"]" * d + b', "event"', 1)
            for d in (65, 100, 1_000, 10_000, 100_000)), must_refuse=True),
        "control characters": lambda bus, t: send_all(bus, t, "json", controls(), must_refuse=True),
        "SOAP two bodies": lambda bus, t: send_all(bus, t, "soap", [soap_call(bodies=2), soap_call(bodies=0)],
                                                   must_refuse=True),
        "generated JSON": lambda bus, t: generated(bus, t, "json", strategies.json_bodies(), examples),
        "generated IDoc XML": lambda bus, t: generated(bus, t, "xml", strategies.xml_bodies(), examples),
        "generated SOAP": lambda bus, t: generated(bus, t, "soap", strategies.soap_bodies(), examples),
        "HTTP framing": framing,
        "role matrix": roles,
        "connections": lambda bus, t: connections(bus, t, args.idle, args.slowloris),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="generated bodies per generated category")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slowloris", type=int, default=300)
    parser.add_argument("--only", nargs="*", help="run only the categories whose name contains one of these")
    args = parser.parse_args()
    columns = ["tried", "2xx", "4xx", "5xx", "client faults", "wrongly accepted"]
    print(f"| category | {' | '.join(columns)} | healthy after | note |")
    print("|" + " --- |" * (len(columns) + 3))
    with BusProcess() as bus:
        for name, attack in categories(args).items():
            if args.only and not any(part in name for part in args.only):
                continue
            tally = Tally(name)
            tally.note = ""
            attack(bus, tally)
            try:
                healthy = requests.get(bus.url + "/healthz", timeout=10).status_code == 200
            except requests.RequestException:
                healthy = False
            cells = " | ".join(str(tally.counts[column]) for column in columns)
            print(f"| {name} | {cells} | {'yes' if healthy else 'NO'} | {tally.note} |", flush=True)


if __name__ == "__main__":
    main()
