"""The admin API against its own OpenAPI document (`esb.monitoring.OPENAPI`), with schemathesis.

Every documented operation gets generated requests (valid ones and, separately, ones that break
the document's parameter and body schemas), sent through Flask's WSGI interface to the blueprint
on the stand-in runtime of tests/test_monitoring_api.py: no broker, no network. Each answer must be
no 5xx, a documented status code and content type, and a body matching the documented schema.
Generated route names, message ids and destinations are half the time swapped for ones the
stand-in knows, so the 200 answers are checked too, not only the 404s.

Bounded and repeatable: `derandomize=True`, no example database, a few examples per operation.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from esb.monitoring import OPENAPI
from tests.test_monitoring_api import StandInTransport, client, runtime

__all__ = ["runtime"]  # a fixture, imported to be used here

EXAMPLES = 15
"""Generated cases per operation and generation mode."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,  # valid data: 2xx, or 401/403/404 (an unknown route or message)
    negative_data_rejection,  # invalid data: a 4xx
]

NOT_EXPRESSIBLE = {"GET /api/trace": [positive_data_acceptance]}
"""Rules OpenAPI 3.0 cannot state, only describe: "exactly one of message_id and correlation_id"
(both are optional query parameters, so neither or both is valid data to schemathesis, and a 400)."""

ADMIN = {"X-API-Key": "admin-key"}

KNOWN = {
    "route": ["orders"],
    "message_id": ["id-0", "id-3"],
    "correlation_id": ["corr-1"],
    "destination": ["wms"],
}
"""Values the stand-in runtime has: a generated one is swapped for one of these half the time."""

SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
SCHEMA.config.generation.update(with_security_parameters=False)  # the tests send a real key, or none
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}

BOUNDED = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@pytest.fixture
def app(runtime):
    """The Flask app of tests/test_monitoring_api.py, with a journal that knows one message."""
    runtime.journal.record("received", message_id="id-0", route="orders", correlation_id="corr-1")
    runtime.journal.record("dead_lettered", message_id="id-0", route="orders", destination="wms",
                           correlation_id="corr-1", detail="400 from the WMS")
    runtime.journal.flush(5.0)
    return client(runtime).application


def cases(operation, mode: GenerationMode = GenerationMode.POSITIVE):
    """Generated cases of `operation`; valid ones half the time on a known route and message id,
    invalid ones always (their invalid part is then in the query or the body, not a 404 path)."""
    names = [p.name for p in operation.path_parameters]
    if not names:
        return operation.as_strategy(generation_mode=mode)
    known = st.fixed_dictionaries({name: st.sampled_from(KNOWN[name]) for name in names})
    on_known_path = known.flatmap(
        lambda path: operation.as_strategy(generation_mode=mode, path_parameters=path)
    )
    if mode is GenerationMode.NEGATIVE:
        return on_known_path
    return st.one_of(operation.as_strategy(generation_mode=mode), on_known_path)


def negatable(operation) -> bool:
    """Has a query parameter or a body to break (path parameters are strings: nothing to negate)."""
    return bool(list(operation.query)) or bool(operation.body)


def aim_at_known_things(case, data) -> None:
    """Half the time, swap a generated message id, correlation id or destination for a known one.
    The container is assigned anew (not changed in place): schemathesis then re-judges whether the
    case is still invalid data, which decides the data-acceptance checks."""
    for attribute in ("query", "body"):
        container = getattr(case, attribute)
        if not isinstance(container, dict):
            continue
        swapped = {
            name: data.draw(st.sampled_from(KNOWN[name]), label=name)
            for name in sorted(KNOWN.keys() & container.keys())
            if data.draw(st.booleans(), label=f"known {name}")
        }
        if swapped:
            setattr(case, attribute, {**container, **swapped})


def is_open(path: str, method: str) -> bool:
    """Documented as needing no credentials: an empty `security`, or one alternative that is `{}`."""
    security = OPENAPI["paths"][path][method].get("security", OPENAPI.get("security", []))
    return not security or {} in security


@pytest.mark.parametrize(
    ("label", "mode"),
    [(label, GenerationMode.POSITIVE) for label in sorted(OPERATIONS)]
    + [(label, GenerationMode.NEGATIVE) for label in sorted(OPERATIONS) if negatable(OPERATIONS[label])],
    ids=lambda value: getattr(value, "value", value),
)
def test_every_operation_answers_as_documented(app, runtime, label, mode):
    operation = OPERATIONS[label]
    statuses = []

    @BOUNDED
    @given(case=cases(operation, mode), data=st.data())
    def exercise(case, data):
        runtime.transport.letters = StandInTransport().letters  # what an earlier purge took
        aim_at_known_things(case, data)
        response = case.call(app=app, headers=ADMIN)
        statuses.append(response.status_code)
        case.validate_response(
            response, checks=CHECKS, excluded_checks=NOT_EXPRESSIBLE.get(label), headers=ADMIN
        )

    exercise()
    assert statuses, f"{label}: no case was sent"
    if mode is GenerationMode.POSITIVE:
        assert 200 in statuses, f"{label}: no valid case succeeded; statuses: {sorted(set(statuses))}"


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_without_credentials_every_operation_not_documented_as_open_is_a_401(app, runtime, label):
    operation = OPERATIONS[label]
    open_operation = is_open(operation.path, operation.method.lower())

    @settings(BOUNDED, max_examples=5)
    @given(case=cases(operation), data=st.data())
    def exercise(case, data):
        aim_at_known_things(case, data)
        response = case.call(app=app)
        if open_operation:
            assert response.status_code != 401
        else:
            assert response.status_code == 401, response.text
            headers = {name.lower(): values for name, values in response.headers.items()}
            assert headers["www-authenticate"][0].startswith("Bearer")
        case.validate_response(response, checks=CHECKS)

    exercise()
    if not open_operation:
        assert len(runtime.transport.letters) == 5  # nothing was replayed or purged


def test_the_document_and_the_blueprint_have_the_same_operations(app):
    """Every /api and /metrics route of the app is documented, and every documented one exists."""
    served = {
        (re.sub(r"<[^>]+>", "{}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/", "/metrics"))
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(re.sub(r"{[^}]+}", "{}", path), method.upper())
                  for path, item in OPENAPI["paths"].items() for method in item}
    assert served == documented
