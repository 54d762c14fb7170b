"""Alert rules, one function each, and the de-duplicating outbox on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from esb.alerts import AlertOutbox, evaluate
from esb.schemas import default_registry
from tests.test_journal import _postgres_or_skip

DISCREPANCY = {"warehouse": "WH1", "as_of": "2026-12-01T02:00:00+01:00", "book_snapshot_id": "B",
               "shelf_snapshot_id": "S", "accuracy": Decimal("0.975"), "compared_lines": 40,
               "lines": [{"sku": "310-5500", "book_quantity": 250, "shelf_quantity": 238, "difference": -12,
                          "uom": "KGM", "location": "B-10-01"},
                         {"sku": "100-2040", "book_quantity": 5, "shelf_quantity": 4, "difference": -1,
                          "uom": "EA"}]}
SNAPSHOT = {"snapshot_id": "S", "warehouse": "WH1", "as_of": "2026-12-01T02:00:00+01:00", "source": "wms",
            "lines": [{"sku": "A", "quantity": 3, "uom": "EA", "lot": "L1", "expiry_date": "2026-12-20"},
                      {"sku": "B", "quantity": 50, "uom": "EA", "lot": "L2", "expiry_date": "2027-06-01"}]}


def fire(rule: dict, payload: dict) -> list[dict]:
    alerts = [fired.payload for fired in evaluate([rule], payload, "0b5d3c6e-3f0e-4a53-9d0b-6f7f1c2a9e41")]
    for alert in alerts:
        default_registry().validate("alert", alert, 1)
    return alerts


def test_accuracy_under_the_floor_fires_with_the_observed_value_and_threshold():
    (alert,) = fire({"name": "accuracy-floor", "accuracy_below": 0.98}, DISCREPANCY)

    assert (alert["observed_value"], alert["threshold"]) == (Decimal("0.975"), Decimal("0.98"))
    assert "97.5 % is below 98.0 %" in alert["subject"] and alert["warehouse"] == "WH1"
    assert alert["message_ids"] == ["0b5d3c6e-3f0e-4a53-9d0b-6f7f1c2a9e41"]
    assert fire({"name": "accuracy-floor", "accuracy_below": 0.97}, DISCREPANCY) == []


def test_a_difference_over_the_tolerance_names_the_offending_lines_worst_first():
    (alert,) = fire({"name": "big-difference", "difference_over": 0.5, "severity": "error"}, DISCREPANCY)

    assert alert["severity"] == "error" and alert["observed_value"] == 12
    assert alert["text"].index("310-5500/B-10-01: difference -12") < alert["text"].index("100-2040")
    assert fire({"name": "big-difference", "difference_over": 20}, DISCREPANCY) == []


def test_stock_below_a_threshold_and_a_lot_expiring_within_n_days_fire_on_snapshots():
    (low,) = fire({"name": "low-stock", "stock_below": 5}, SNAPSHOT)
    (expiring,) = fire({"name": "expiring", "expires_within_days": 30}, SNAPSHOT)

    assert low["observed_value"] == 3 and "A/L1: quantity 3" in low["text"]
    assert expiring["observed_value"] == 19 and "A/L1: expiry_date 2026-12-20" in expiring["text"]
    assert fire({"name": "expiring", "expires_within_days": 10}, SNAPSHOT) == []


def test_a_rule_for_another_type_does_not_fire():
    assert fire({"name": "low-stock", "stock_below": 1000}, DISCREPANCY) == []
    assert fire({"name": "accuracy-floor", "accuracy_below": 1}, SNAPSHOT) == []


@pytest.fixture(params=["sqlite", "postgres"])
def outbox(request, tmp_path):
    target = str(tmp_path / "state.sqlite") if request.param == "sqlite" else _postgres_or_skip()
    return AlertOutbox(target), "alerts-" + uuid.uuid4().hex[:8]


def test_the_same_alert_is_queued_once_until_repeat_after_passed(outbox):
    box, name = outbox
    (fired,) = evaluate([{"name": "low-stock", "stock_below": 5}], SNAPSHOT)

    assert box.put(name, fired, repeat_after=3600, now=1000.0) is True
    assert box.put(name, fired, repeat_after=3600, now=2000.0) is False
    [(fingerprint, firings, payload)] = box.pending(name)
    box.sent(name, fingerprint, firings)
    assert box.pending(name) == []
    assert box.put(name, fired, repeat_after=3600, now=5000.0) is True
    assert [(f, n) for f, n, _ in box.pending(name)] == [(fingerprint, 2)]
    assert payload["rule"] == "low-stock"
