"""The monitoring app through Flask's test client, on a stand-in transport (no broker):
credentials and roles, endpoints an operator opens, a broker that is down, the audit file."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import pytest
from openapi_spec_validator import validate

from esb.audit import AuditLog
from esb.credentials import Credentials
from esb.journal import Journal
from esb.monitoring import OPENAPI, create_app
from esb.monitoring.dashboard import ASSETS
from esb.routes import Config, Destination, Endpoint, Route
from esb.transport.contract import DeadLetter
from esb.transport.errors import BrokerUnavailable
from esb.transport.topology import Topology

ROUTE = Route("orders", Endpoint("rest", {}), (Destination("wms", Endpoint("rest", {})),))


class StandInTransport:
    """Dead letters in a list; `down` makes every broker call fail like an unreachable broker."""

    def __init__(self):
        self.topology = Topology.from_routes([ROUTE])
        self.connected = True
        self.down = False
        self.letters = [
            DeadLetter("orders", "wms", f"id-{n}", None, "t", "application/json", b"{}", {"esb-attempts": 1})
            for n in range(5)
        ]

    def _check(self):
        if self.down:
            raise BrokerUnavailable("cannot reach amqp://broker")

    paused_destinations: set = set()

    def pause(self, route, destination=None):
        chosen = [destination] if destination else [d.name for d in ROUTE.destinations]
        self.paused_destinations = self.paused_destinations | set(chosen)
        return chosen

    def resume(self, route, destination=None):
        chosen = [destination] if destination else [d.name for d in ROUTE.destinations]
        self.paused_destinations = self.paused_destinations - set(chosen)
        return chosen

    def paused(self, route):
        return set(self.paused_destinations)

    def queue_stats(self):
        self._check()
        return {
            q.name: (len(self.letters) if q.kind == "dead-letter" else 0, 1) for q in self.topology.queues
        }

    def dead_letters(self, route, destination=None, *, limit=None):
        self._check()
        return self.letters[:limit] if limit is not None else list(self.letters)

    def replay_dead_letters(self, route, destination=None, *, ids=None):
        self._check()
        chosen = [d for d in self.letters if ids is None or d.message_id in ids]
        self.letters = [d for d in self.letters if d not in chosen]
        return len(chosen)

    purge_dead_letters = replay_dead_letters


@pytest.fixture
def runtime(tmp_path):
    keys = "ops:admin:admin-key;grafana:viewer:viewer-key;erp:sender=orders:sender-key"
    hashed = tmp_path / "keys.yaml"
    hashed.write_text(
        f"- {{name: auditor, roles: [viewer], key_sha256: {hashlib.sha256(b'file-key').hexdigest()}}}\n"
    )
    credentials = Credentials.from_environment({"ESB_API_KEYS": keys, "ESB_CREDENTIALS_FILE": str(hashed)})
    journal = Journal(tmp_path / "journal.sqlite")
    yield SimpleNamespace(
        config=Config("routes.yaml", {}, (ROUTE,)),
        transport=StandInTransport(),
        journal=journal,
        options=SimpleNamespace(credentials=credentials, data_dir=tmp_path),
        readiness_checks=lambda: {"broker": lambda: None},
    )
    journal.close()


def client(runtime, **options):
    return create_app(runtime, **options).test_client()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_the_openapi_document_is_valid_openapi_3():
    validate(OPENAPI)


def test_a_key_from_the_credentials_file_is_checked_against_its_hash(runtime):
    answer = client(runtime).get("/api/whoami", headers={"X-API-Key": "file-key"})
    assert answer.status_code == 200 and answer.json == {
        "name": "auditor",
        "roles": ["viewer"],
        "admin": False,
    }


def test_without_a_key_nothing_but_healthz_and_the_dashboard_page_answers(runtime):
    http = client(runtime)
    for path in (
        "/metrics",
        "/api/routes",
        "/api/routes/orders/dead-letters",
        "/api/audit",
        "/api/openapi.json",
    ):
        answer = http.get(path)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert http.post("/api/routes/orders/dead-letters/replay", json={"all": True}).status_code == 401
    assert http.get("/healthz").status_code == 200
    page = http.get("/dashboard")
    assert page.status_code == 200 and b'src="/dashboard/dashboard.js"' in page.data
    script = http.get("/dashboard/dashboard.js")
    assert script.status_code == 200 and b"Replay DLQ" in script.data


def test_an_operator_can_open_metrics_or_every_read_endpoint_but_never_admin_actions(runtime):
    metrics_open = client(runtime, open_endpoints={"metrics"})
    assert metrics_open.get("/metrics").status_code == 200
    assert metrics_open.get("/api/routes").status_code == 401

    read_open = client(runtime, open_endpoints={"read"})
    assert read_open.get("/api/routes").status_code == 200
    assert read_open.post("/api/routes/orders/dead-letters/replay", json={"all": True}).status_code == 401


def test_a_sender_key_is_not_a_viewer_and_a_viewer_is_not_an_admin(runtime):
    http = client(runtime)
    assert http.get("/api/routes", headers=bearer("sender-key")).status_code == 403
    assert (
        http.post(
            "/api/routes/orders/dead-letters/purge", json={"all": True}, headers=bearer("viewer-key")
        ).status_code
        == 403
    )
    assert len(runtime.transport.letters) == 5


def test_pages_of_dead_letters_follow_each_other_to_the_end(runtime):
    http = client(runtime)
    seen, offset = [], 0
    while offset is not None:
        page = http.get(
            f"/api/routes/orders/dead-letters?limit=2&offset={offset}", headers=bearer("viewer-key")
        ).json
        seen += [item["id"] for item in page["items"]]
        offset = page["next_offset"]
    assert seen == [f"id-{n}" for n in range(5)] and page["total"] == 5


def test_a_full_page_of_dead_letters_holds_each_ones_headers_and_body(runtime):
    http = client(runtime)
    summary = http.get("/api/routes/orders/dead-letters?limit=2", headers=bearer("viewer-key")).json
    full = http.get("/api/routes/orders/dead-letters?limit=2&view=full", headers=bearer("viewer-key")).json

    assert "body" not in summary["items"][0]
    assert [item["id"] for item in full["items"]] == ["id-0", "id-1"]
    assert full["items"][0]["body"] == "{}" and full["items"][0]["headers"] == {"esb-attempts": 1}
    wrong = http.get("/api/routes/orders/dead-letters?view=everything", headers=bearer("viewer-key"))
    assert wrong.status_code == 400 and "view" in wrong.json["message"]


def test_every_dashboard_file_is_served_and_no_other(runtime):
    http = client(runtime)
    for name, media_type in ASSETS.items():
        answer = http.get(f"/dashboard/{name}")
        assert answer.status_code == 200 and answer.mimetype == media_type and answer.data, name
    assert http.get("/dashboard/dashboard.html").status_code == 404  # served at /dashboard only
    assert http.get("/dashboard/..%2fapi.py").status_code == 404


def test_the_audit_limit_is_bounded_as_its_document_says(runtime):
    http = client(runtime)
    documented = OPENAPI["components"]["parameters"]["audit_limit"]["schema"]
    for limit, status in ((documented["maximum"], 200), (documented["maximum"] + 1, 400), (0, 400)):
        answer = http.get(f"/api/audit?limit={limit}", headers=bearer("admin-key"))
        assert answer.status_code == status, (limit, answer.data)


def test_bad_paging_and_selection_are_400s_that_say_why(runtime):
    http = client(runtime)
    assert (
        http.get("/api/routes/orders/dead-letters?limit=abc", headers=bearer("viewer-key")).status_code == 400
    )
    assert (
        http.get("/api/routes/orders/dead-letters?limit=501", headers=bearer("viewer-key")).status_code == 400
    )
    admin = bearer("admin-key")
    both = http.post(
        "/api/routes/orders/dead-letters/replay", json={"all": True, "ids": ["id-1"]}, headers=admin
    )
    assert both.status_code == 400 and "either" in both.json["message"]
    assert (
        http.post("/api/routes/orders/dead-letters/replay", json={"ids": []}, headers=admin).status_code
        == 400
    )
    assert (
        http.post(
            "/api/routes/orders/dead-letters/replay", json={"all": True, "destination": "erp"}, headers=admin
        ).status_code
        == 404
    )


def test_a_broker_that_is_down_is_a_503_and_the_failed_action_is_audited(runtime):
    http = client(runtime)
    runtime.transport.down = True
    assert http.get("/api/routes/orders/dead-letters", headers=bearer("viewer-key")).status_code == 503
    assert http.get("/api/routes", headers=bearer("viewer-key")).status_code == 200  # depths unknown
    assert (
        http.post(
            "/api/routes/orders/dead-letters/replay", json={"all": True}, headers=bearer("admin-key")
        ).status_code
        == 503
    )
    runtime.transport.down = False  # the listing before the action failed: nothing was attempted


def test_every_admin_action_is_one_json_line_with_who_what_when_and_outcome(runtime, tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    http = client(runtime, audit=audit)
    http.post(
        "/api/routes/orders/dead-letters/replay", json={"ids": ["id-1", "id-9"]}, headers=bearer("admin-key")
    )
    http.post("/api/routes/orders/dead-letters/purge", json={"all": True}, headers=bearer("admin-key"))

    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]

    assert [(e["who"], e["action"]) for e in lines] == [
        ("ops", "dead-letters.replay"),
        ("ops", "dead-letters.purge"),
    ]
    assert lines[0]["target"] == {"route": "orders", "destination": None, "ids": ["id-1", "id-9"]}
    assert lines[0]["outcome"] == {"count": 1, "ids": ["id-1"], "missing": ["id-9"]}
    assert lines[1]["outcome"]["count"] == 4 and lines[1]["at"].endswith("+00:00")
    assert audit.entries(1)[0]["action"] == "dead-letters.purge"


def test_readiness_says_what_fails_to_viewers_only_unless_opened_for_probes(runtime):
    guarded = client(runtime)
    assert guarded.get("/readyz").status_code == 401
    assert guarded.get("/readyz", headers=bearer("sender-key")).status_code == 403
    ready = guarded.get("/readyz", headers=bearer("viewer-key"))
    assert ready.status_code == 200 and ready.json["checks"] == ["broker"]

    assert client(runtime, open_endpoints={"readyz"}).get("/readyz").status_code == 200
