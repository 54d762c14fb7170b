"""The admin API, /metrics and the audit log on a real bus: real RabbitMQ, real HTTP in and out."""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest
import requests
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from esb import metrics
from esb.config import load_config
from esb.credentials import Credentials
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions
from tests.integration.test_rest_runtime import ORDER, SENDER_KEY, _delete_queues, post, target, write_routes

__all__ = ["target"]  # a fixture, imported to be used here

pytestmark = pytest.mark.broker

VIEWER_KEY = "viewer-secret"
ADMIN_KEY = "admin-secret"


def start_monitored_bus(tmp_path, route: str, target_url: str, broker_url: str) -> Runtime:
    """A bus serving the monitoring app built from it, as `esb run` does."""
    config = load_config(write_routes(tmp_path, route, target_url, broker_url, attempts=2))
    keys = f"erp:sender={route}:{SENDER_KEY};grafana:viewer:{VIEWER_KEY};ops:admin:{ADMIN_KEY}"
    options = RuntimeOptions(broker_url=broker_url, data_dir=tmp_path / "data", port=0,
                             credentials=Credentials.from_environment({"ESB_API_KEYS": keys}))
    runtime = Runtime(config, options)
    return runtime.start(app=create_app(runtime))


@pytest.fixture
def bus(tmp_path, unique_name, target, broker_url):
    runtime = start_monitored_bus(tmp_path, unique_name, target.url, broker_url)
    yield runtime
    runtime.stop()
    _delete_queues(broker_url, runtime)


def order(number: str | None = None) -> dict:
    document = copy.deepcopy(ORDER)
    document["order_number"] = number or f"PO-{uuid.uuid4().hex[:8]}"
    return document


def api(runtime: Runtime, method: str, path: str, key: str | None = VIEWER_KEY,
        **options) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(method, f"{runtime.server.url}{path}", headers=headers, timeout=30, **options)


def dead_letter_orders(runtime: Runtime, target, route: str, count: int) -> list[str]:
    """Post `count` orders the WMS refuses (400): each ends in the wms dead-letter queue."""
    target.script["/wms/orders"] = [400] * count
    ids = []
    for _ in range(count):
        response = post(runtime, route, order())
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    wait_until(lambda: len(runtime.transport.dead_letters(route, "wms")) == count)
    return ids


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


# --- /metrics --------------------------------------------------------------------------------------
def test_a_scrape_shows_what_a_route_received_dead_lettered_and_its_queues(bus, target, unique_name):
    dead_letter_orders(bus, target, unique_name, 1)
    assert post(bus, unique_name, "not an order").status_code == 422
    wait_until(lambda: len(target.calls["/archive/orders"]) == 1)

    response = api(bus, "GET", "/metrics")

    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    route = ("route", unique_name)
    assert samples[("esb_messages_received_total", (route,))] == 1
    assert samples[("esb_messages_rejected_total", (("reason", "validation"), route))] == 1
    assert samples[("esb_messages_dead_lettered_total", (("destination", "wms"), ("reason", "permanent"),
                                                          route))] == 1
    wait_until(lambda: metrics.counters_by_route()[unique_name]["destinations"]["archive"].get("delivered"))
    assert samples[("esb_end_to_end_seconds_count", (("destination", "archive"), route))] >= 0
    dlq = ("esb_queue_messages", (("destination", "wms"), ("kind", "dead-letter"),
                                  ("queue", f"esb.{unique_name}.wms.dlq"), route))
    assert samples[dlq] == 1
    work = ("esb_queue_consumers", (("destination", "wms"), ("kind", "work"),
                                    ("queue", f"esb.{unique_name}.wms"), route))
    assert samples[work] >= 1


def test_metrics_and_the_api_need_a_valid_key(bus):
    for path in ("/metrics", "/api/routes", "/api/openapi.json"):
        assert api(bus, "GET", path, key=None).status_code == 401
        assert api(bus, "GET", path, key="wrong").status_code == 401
        assert api(bus, "GET", path, key=SENDER_KEY).status_code == 403
    assert api(bus, "GET", "/healthz", key=None).status_code == 200


# --- reading -----------------------------------------------------------------------------------------
def test_the_openapi_document_is_served_and_valid(bus):
    document = api(bus, "GET", "/api/openapi.json").json()
    validate(document)
    assert "/api/routes/{route}/dead-letters/replay" in document["paths"]


def test_routes_show_their_state_counters_and_dead_letter_depth(bus, target, unique_name):
    dead_letter_orders(bus, target, unique_name, 2)
    bus.journal.flush()

    body = api(bus, "GET", "/api/routes").json()

    assert body["broker_connected"] is True
    route = next(r for r in body["routes"] if r["name"] == unique_name)
    assert route["state"] == "running"
    assert route["dead_letter_depth"] == 2
    assert route["counters"]["dead_lettered"] == 2 and route["counters"]["received"] == 2
    assert "400" in route["last_error"]["detail"]
    wms = next(d for d in route["destinations"] if d["name"] == "wms")
    assert wms["dead_letter_depth"] == 2 and wms["consumers"] >= 1
    assert api(bus, "GET", f"/api/routes/{unique_name}").json()["name"] == unique_name


def test_an_unknown_route_is_a_404_that_suggests_the_right_name(bus, unique_name):
    response = api(bus, "GET", f"/api/routes/{unique_name}x/dead-letters")
    assert response.status_code == 404 and unique_name in response.json()["message"]


def test_dead_letters_are_listed_page_by_page_and_shown_with_headers_and_body(bus, target, unique_name):
    ids = dead_letter_orders(bus, target, unique_name, 3)
    path = f"/api/routes/{unique_name}/dead-letters"

    first = api(bus, "GET", path, params={"destination": "wms", "limit": 2}).json()
    second = api(bus, "GET", path, params={"destination": "wms", "limit": 2, "offset": 2}).json()

    assert first["total"] == 3 and first["next_offset"] == 2 and len(first["items"]) == 2
    assert second["next_offset"] is None and len(second["items"]) == 1
    assert sorted(i["id"] for i in first["items"] + second["items"]) == sorted(ids)
    assert api(bus, "GET", path, params={"limit": 0}).status_code == 400
    one = api(bus, "GET", f"{path}/{ids[0]}").json()
    assert one["reason"] == "permanent" and one["headers"]["esb-attempts"] == 1
    assert json.loads(one["body"])["order_number"].startswith("PO-")
    assert api(bus, "GET", f"{path}/{uuid.uuid4()}").status_code == 404


def test_a_trace_shows_every_hop_by_message_id_or_correlation_id(bus, target, unique_name):
    document = order()
    message_id = post(bus, unique_name, document).json()["id"]
    target.wait_for("/wms/orders", 1)
    target.wait_for("/archive/orders", 1)

    def hops():
        return api(bus, "GET", "/api/trace", params={"message_id": message_id}).json().get("hops", [])

    wait_until(lambda: len([h for h in hops() if h["step"] == "delivered"]) == 2)
    steps = [h["step"] for h in hops()]
    assert steps[:2] == ["received", "published"] and all(h["at"] for h in hops())
    by_correlation = api(bus, "GET", "/api/trace", params={"correlation_id": document["order_number"]}).json()
    assert {h["message_id"] for h in by_correlation["hops"]} == {message_id}
    assert api(bus, "GET", "/api/trace").status_code == 400
    assert api(bus, "GET", "/api/trace", params={"message_id": "nope"}).status_code == 404


# --- admin actions ---------------------------------------------------------------------------------------
def test_a_viewer_cannot_replay_or_purge_and_the_refusal_is_audited(bus, target, unique_name):
    ids = dead_letter_orders(bus, target, unique_name, 1)
    path = f"/api/routes/{unique_name}/dead-letters"

    assert api(bus, "POST", f"{path}/replay", json={"all": True}).status_code == 403
    assert api(bus, "POST", f"{path}/purge", json={"ids": ids}).status_code == 403
    assert api(bus, "POST", f"{path}/{ids[0]}/replay").status_code == 403
    assert api(bus, "GET", "/api/audit").status_code == 403

    entries = api(bus, "GET", "/api/audit", key=ADMIN_KEY).json()["entries"]
    assert [e["who"] for e in entries[:3]] == ["grafana"] * 3
    assert all("refused" in e["outcome"] for e in entries[:3])
    assert len(bus.transport.dead_letters(unique_name, "wms")) == 1


def test_an_admin_replays_many_dead_letters_and_they_are_delivered_and_audited(bus, target, unique_name):
    ids = dead_letter_orders(bus, target, unique_name, 3)
    unknown = str(uuid.uuid4())

    response = api(bus, "POST", f"/api/routes/{unique_name}/dead-letters/replay", key=ADMIN_KEY,
                   json={"ids": ids[:2] + [unknown], "destination": "wms"})

    assert response.status_code == 200, response.text
    done = response.json()
    assert done["count"] == 2 and sorted(done["ids"]) == sorted(ids[:2]) and done["missing"] == [unknown]
    delivered = target.wait_for("/wms/orders", 5)  # 3 refused, then the 2 replayed
    assert {c["headers"]["Idempotency-Key"] for c in delivered[3:]} == set(ids[:2])
    assert [d.message_id for d in bus.transport.dead_letters(unique_name, "wms")] == [ids[2]]
    entry = api(bus, "GET", "/api/audit", key=ADMIN_KEY).json()["entries"][0]
    assert entry["who"] == "ops" and entry["action"] == "dead-letters.replay"
    assert entry["target"]["ids"] == ids[:2] + [unknown] and entry["outcome"]["count"] == 2 and entry["at"]


def test_an_admin_replays_one_then_all_then_purges_with_confirmation_of_each(bus, target, unique_name):
    ids = dead_letter_orders(bus, target, unique_name, 4)
    path = f"/api/routes/{unique_name}/dead-letters"

    one = api(bus, "POST", f"{path}/{ids[0]}/replay", key=ADMIN_KEY).json()
    assert one["count"] == 1 and one["ids"] == [ids[0]]
    target.script["/wms/orders"] = [400, 400, 400]  # the replay of all fails again
    everything = api(bus, "POST", f"{path}/replay", key=ADMIN_KEY, json={"all": True}).json()
    assert everything["count"] == 3 and sorted(everything["ids"]) == sorted(ids[1:])
    wait_until(lambda: len(bus.transport.dead_letters(unique_name, "wms")) == 3)

    assert api(bus, "POST", f"{path}/purge", key=ADMIN_KEY, json={}).status_code == 400
    purged = api(bus, "POST", f"{path}/purge", key=ADMIN_KEY, json={"all": True, "destination": "wms"}).json()

    assert purged["count"] == 3 and purged["action"] == "purge"
    assert bus.transport.dead_letters(unique_name, "wms") == []
    actions = [e["action"] for e in api(bus, "GET", "/api/audit", key=ADMIN_KEY).json()["entries"][:3]]
    assert actions == ["dead-letters.purge", "dead-letters.replay", "dead-letters.replay"]


def test_an_admin_pauses_a_destination_its_messages_wait_and_flow_again_on_resume(bus, target, unique_name):
    path = f"/api/routes/{unique_name}"
    assert api(bus, "POST", f"{path}/pause", params={"destination": "wms"}).status_code == 403  # viewer

    paused = api(bus, "POST", f"{path}/pause", key=ADMIN_KEY, params={"destination": "wms"})
    assert paused.status_code == 200 and paused.json()["paused"] == ["wms"]
    post(bus, unique_name, order())
    target.wait_for("/archive/orders", 1)  # the other destination keeps flowing
    time.sleep(0.5)
    assert target.calls["/wms/orders"] == []
    state = api(bus, "GET", path).json()
    assert [d["paused"] for d in state["destinations"]] == [True, False]

    resumed = api(bus, "POST", f"{path}/resume", key=ADMIN_KEY)
    assert resumed.status_code == 200 and resumed.json()["paused"] == []
    target.wait_for("/wms/orders", 1)
    actions = [e["action"] for e in api(bus, "GET", "/api/audit", key=ADMIN_KEY).json()["entries"]]
    assert "route.pause" in actions and "route.resume" in actions
