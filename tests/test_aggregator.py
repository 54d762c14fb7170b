"""The aggregator's durable state on SQLite (a file) and on the machine's real PostgreSQL: parts
are kept across store instances (a restart, another node), a group is claimed by one caller only,
and a group is due when complete or timed out."""

from __future__ import annotations

import uuid

import pytest

from esb.aggregator import AggregationStore
from tests.test_journal import _postgres_or_skip

PARTS = ("book", "shelf")


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite")
    return _postgres_or_skip()


@pytest.fixture
def aggregation() -> str:
    return "agg-" + uuid.uuid4().hex[:10]  # unique, so parallel runs on one PostgreSQL never meet


def test_a_group_with_one_part_is_not_due_until_its_timeout(target, aggregation):
    store = AggregationStore(target)
    store.add_part(aggregation, "WH1|t1", "book", "m1", {"n": 1}, now=1000.0)

    assert store.claim_due(aggregation, PARTS, timeout=60, now=1030.0) == []
    (group,) = store.claim_due(aggregation, PARTS, timeout=60, now=1061.0)

    assert group.key == "WH1|t1" and not group.complete and group.missing == ("shelf",)
    assert group.parts == {"book": {"n": 1}}


def test_a_complete_group_survives_a_restart_and_is_claimed_by_one_node_only(target, aggregation):
    AggregationStore(target).add_part(aggregation, "WH1|t1", "book", "m1", {"side": "erp"}, now=1000.0)
    AggregationStore(target).add_part(aggregation, "WH1|t1", "shelf", "m2", {"side": "wms"}, now=1001.0)
    node_a, node_b = AggregationStore(target), AggregationStore(target)

    claimed_by_a = node_a.claim_due(aggregation, PARTS, timeout=3600, now=1002.0)
    claimed_by_b = node_b.claim_due(aggregation, PARTS, timeout=3600, now=1002.0)

    assert [g.key for g in claimed_by_a] == ["WH1|t1"] and claimed_by_b == []
    group = claimed_by_a[0]
    assert group.complete and group.parts["shelf"] == {"side": "wms"}
    assert group.message_ids == {"book": "m1", "shelf": "m2"}


def test_a_claim_whose_node_died_is_taken_again_after_the_claim_timeout(target, aggregation):
    store = AggregationStore(target)
    for part in PARTS:
        store.add_part(aggregation, "k", part, part, {}, now=1000.0)
    assert len(store.claim_due(aggregation, PARTS, timeout=3600, now=1001.0)) == 1

    assert store.claim_due(aggregation, PARTS, timeout=3600, now=1002.0, claim_timeout=300) == []
    assert len(store.claim_due(aggregation, PARTS, timeout=3600, now=1400.0, claim_timeout=300)) == 1


def test_a_finished_group_refuses_a_late_part_and_a_released_one_is_due_again(target, aggregation):
    store = AggregationStore(target)
    for key in ("done", "released"):
        for part in PARTS:
            store.add_part(aggregation, key, part, part, {}, now=1000.0)
    claimed = {g.key for g in store.claim_due(aggregation, PARTS, timeout=3600, now=1001.0)}
    assert claimed == {"done", "released"}

    store.finish(aggregation, "done")
    store.release(aggregation, "released")

    assert store.add_part(aggregation, "done", "book", "late", {}, now=1002.0) is False
    assert [g.key for g in store.claim_due(aggregation, PARTS, timeout=3600, now=1003.0)] == ["released"]
    assert [key for key, _ in store.open_groups(aggregation)] == ["released"]


def test_a_repeated_part_replaces_the_earlier_one(target, aggregation):
    store = AggregationStore(target)
    store.add_part(aggregation, "k", "book", "m1", {"v": 1}, now=1000.0)
    store.add_part(aggregation, "k", "book", "m2", {"v": 2}, now=1001.0)
    store.add_part(aggregation, "k", "shelf", "m3", {"v": 3}, now=1002.0)

    (group,) = store.claim_due(aggregation, PARTS, timeout=3600, now=1003.0)

    assert group.parts["book"] == {"v": 2} and group.message_ids["book"] == "m2"
