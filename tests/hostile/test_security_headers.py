"""Every answer of the bus carries the security headers (`esb.web.SECURITY_HEADERS`): the
dashboard, the API, the inbound endpoints, errors; and the dashboard needs no inline script or
style, so its Content-Security-Policy can forbid them."""

from __future__ import annotations

import re

import pytest
import requests

from esb.web import SECURITY_HEADERS
from tests.hostile.conftest import KEYS, shipment


def served_get_paths(hostile_bus) -> list[str]:
    """Every GET rule of the running app, with placeholders filled (an unknown name is a 404)."""
    rules = hostile_bus.runtime.app.url_map.iter_rules()
    return sorted({re.sub(r"<[^>]+>", "nothing", rule.rule) for rule in rules if "GET" in rule.methods})


def assert_secured(response: requests.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, f"{response.request.method} {response.url}: {name}"


@pytest.mark.parametrize("key", [None, KEYS["viewer"]])
def test_every_get_answer_carries_the_security_headers(hostile_bus, key):
    headers = {"X-API-Key": key} if key else {}
    for path in served_get_paths(hostile_bus):
        assert_secured(requests.get(hostile_bus.url + path, headers=headers, timeout=10))


def test_posts_and_errors_carry_the_security_headers(hostile_bus):
    assert_secured(hostile_bus.post("wms-shipments-to-erp", shipment(), "application/json"))  # 202
    assert_secured(hostile_bus.post("wms-shipments-to-erp", b"{", "application/json"))  # 400
    assert_secured(requests.post(hostile_bus.url + "/in/wms-shipments-to-erp", data=b"{}", timeout=10))  # 401
    assert_secured(requests.get(hostile_bus.url + "/no/such/page", timeout=10))  # 404


def test_the_dashboard_has_no_inline_script_or_style(hostile_bus):
    page = requests.get(hostile_bus.url + "/dashboard", timeout=10).text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert "<style" not in page and " style=" not in page and not re.search(r"\son[a-z]+=", page)
    for asset in re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', page):
        answer = requests.get(hostile_bus.url + asset, timeout=10)
        assert answer.status_code == 200 and answer.content, asset
        assert_secured(answer)
