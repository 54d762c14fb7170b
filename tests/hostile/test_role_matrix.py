"""Every endpoint × every role, generated: the API's operations from the OpenAPI document (the
role each needs is its `x-esb-role`), the inbound endpoints from the routes. No caller gets more
than its role: a sender key only on its own route, a viewer read-only, an admin no sender; no key
is a 401. A new endpoint is covered without a new test, and one that is neither documented nor
an inbound endpoint fails `test_every_served_endpoint_is_in_the_matrix`."""

from __future__ import annotations

import re

import pytest
import requests

from esb.config import load_config
from esb.monitoring import OPENAPI
from tests.hostile.conftest import KEYS, ROUTES, SOAP_ACTION, soap_call

CONFIG = load_config(ROUTES, {})
ROUTE = CONFIG.routes[0].name
CALLERS = ["no key", "unknown key", *KEYS]
OPEN = {"/healthz", "/dashboard", "/dashboard/<asset>", "/readyz"}
"""Open by design (the dashboard's files hold no data; /readyz answers 401 unless opened)."""


def inbound_endpoints() -> list[tuple[str, str, str]]:
    """(method, path, role) of every push source of the routes."""
    endpoints = []
    for route in CONFIG.routes:
        if route.source.adapter == "rest":
            endpoints.append(("POST", f"/in/{route.name}", f"sender={route.name}"))
        elif route.source.adapter == "soap" and route.source.options.get("inbound"):
            endpoints.append(("POST", f"/soap/{route.name}", f"sender={route.name}"))
    return endpoints


def api_operations() -> list[tuple[str, str, str]]:
    """(method, path, role) of every documented operation, its path parameters filled."""
    fill = {"route": ROUTE, "message_id": "no-such-message"}
    return [(method.upper(), re.sub(r"{([^}]+)}", lambda m: fill[m.group(1)], path), operation["x-esb-role"])
            for path, item in OPENAPI["paths"].items() for method, operation in item.items()]


MATRIX = [(caller, *endpoint) for endpoint in api_operations() + inbound_endpoints() for caller in CALLERS]


def may(caller: str, role: str) -> bool:
    if role.startswith("sender="):
        return caller == role.removeprefix("sender=")
    return caller == "admin" or (caller == "viewer" and role == "viewer")


def call(bus, caller: str, method: str, path: str) -> requests.Response:
    headers = {"X-API-Key": KEYS.get(caller, "k-nobody")} if caller != "no key" else {}
    if path.startswith("/soap/"):
        headers |= {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'}
        return requests.post(bus.url + path, data=soap_call(), headers=headers, timeout=10)
    query = {"message_id": "no-such-message"} if path == "/api/trace" else {}
    body = {"ids": []} if method == "POST" else None  # an admin action on nothing: changes nothing
    return requests.request(method, bus.url + path, json=body, params=query, headers=headers, timeout=10)


@pytest.mark.parametrize(("caller", "method", "path", "role"), MATRIX,
                         ids=[f"{c}-{m}-{p}" for c, m, p, _ in MATRIX])
def test_no_caller_gets_more_than_its_role(hostile_bus, caller, method, path, role):
    response = call(hostile_bus, caller, method, path)
    if caller in ("no key", "unknown key"):
        assert response.status_code == 401, response.text
    elif may(caller, role):
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500 or path.startswith("/soap/"), response.text
    else:
        assert response.status_code == 403, response.text


def test_every_served_endpoint_is_in_the_matrix(hostile_bus):
    documented = {(method.upper(), re.sub(r"{[^}]+}", "{}", path))
                  for path, item in OPENAPI["paths"].items() for method in item}
    covered = documented | {(method, path) for method, path, _ in inbound_endpoints()}
    for rule in hostile_bus.runtime.app.url_map.iter_rules():
        if rule.rule.startswith("/static") or rule.rule in OPEN:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method == "GET" and rule.rule.startswith("/soap/"):
                continue  # GET /soap/<route>?wsdl: the service description, open by design
            served = (method, re.sub(r"<[^>]+>", "{}", rule.rule))
            assert served in covered, f"{method} {rule.rule}: neither documented nor an inbound endpoint"


@pytest.mark.parametrize("path", ["/in/../api/audit", "/in/%2e%2e/api/audit", "/IN/" + ROUTE,
                                  f"/in/{ROUTE}%00", f"/in/{ROUTE}/..%2f..%2fapi%2faudit",
                                  "/api/routes/%2e%2e/audit"])
def test_path_tricks_reach_nothing(hostile_bus, path):
    response = requests.post(hostile_bus.url + path, data=b"{}", timeout=10,
                             headers={"X-API-Key": KEYS["admin"], "Content-Type": "application/json"})
    assert response.status_code in (404, 405), response.text
