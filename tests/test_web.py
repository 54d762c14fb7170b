"""Health and readiness of the HTTP app, through the test client and once over real HTTP."""

from __future__ import annotations

import requests

from esb.http_server import HttpServer
from esb.web import create_app


def test_readiness_lists_every_failing_check_with_its_reason():
    def broken():
        raise RuntimeError("journal locked")

    checks = {"broker": lambda: None, "topology": lambda: "not declared", "journal": broken}
    app = create_app(readiness=checks)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failing"] == {"topology": "not declared", "journal": "RuntimeError: journal locked"}


def test_a_ready_bus_answers_200_and_names_its_checks():
    response = create_app(readiness={"broker": lambda: None}).test_client().get("/readyz")
    assert response.status_code == 200 and response.json["checks"] == ["broker"]


def test_the_app_is_served_over_real_http_and_errors_are_json():
    server = HttpServer(create_app(), port=0).start()
    try:
        assert requests.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
        missing = requests.get(f"{server.url}/nowhere", timeout=5)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        answer = requests.get(f"{server.url}/healthz", timeout=5)
        assert answer.headers["Date"].endswith(" GMT")
        assert answer.headers["Content-Length"] == str(len(answer.content))
    finally:
        server.stop()
