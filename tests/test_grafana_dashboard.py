"""The Grafana dashboard shipped in deploy/grafana/ loads, is importable (its data source is a
variable, every panel has a query), and every metric its queries name is one the bus's `/metrics`
exports: the names are read from a real scrape of the monitoring app, not from a list kept by hand."""

from __future__ import annotations

import json
import re

import pytest

from esb.monitoring import create_app
from tests.conftest import PROJECT
from tests.test_monitoring_api import bearer, runtime  # noqa: F401 - the fixture

DASHBOARD = PROJECT / "deploy" / "grafana" / "esb-inventory.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("", "_count", "_sum", "_created"), "untyped": ("",)}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])] + [
        variable["definition"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]


def exported_names(text: str) -> set[str]:
    """Every series name a scrape can hold: the samples present, and for each family announced
    with `# TYPE` (also one with no sample yet, e.g. no reconciliation so far) its names by type."""
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    for family, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        if kind == "counter":  # announced as name_total by some client versions, as name by others
            family = family.removesuffix("_total")
        names.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return names


def scrape(bus) -> str:
    return create_app(bus).test_client().get("/metrics", headers=bearer("viewer-key")).get_data(as_text=True)


def test_the_dashboard_is_importable_with_a_data_source_variable_and_a_query_per_panel(dashboard):
    assert dashboard["uid"] == "esb-inventory" and dashboard["panels"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and "warehouse" in variables
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(target["expr"].strip() for target in panel["targets"]), panel["title"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_metric_the_dashboard_queries_is_exported_by_the_bus(dashboard, runtime):  # noqa: F811
    text = scrape(runtime)
    exported = exported_names(text)

    queried = {name for query in queries(dashboard) for name in re.findall(r"\besb_[a-z0-9_]+", query)}

    assert queried, "the dashboard queries no esb metric"
    assert sorted(queried - exported) == []
    # the business figures of the dashboard are among them
    assert {"esb_inventory_accuracy", "esb_documents_today", "esb_order_to_shipment_seconds_average",
            "esb_receipt_to_posting_seconds_average", "esb_alerts_open"} <= queried


def test_a_metric_the_bus_does_not_export_would_be_caught(dashboard, runtime):  # noqa: F811
    text = scrape(runtime)

    assert "esb_inventory_acuracy" not in exported_names(text)  # a misspelling fails the test above
    assert "esb_messages_delivered" not in exported_names(text)  # a counter is queried as ..._total
