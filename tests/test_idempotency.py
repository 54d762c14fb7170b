"""De-duplication by business key, on a real SQLite file and the machine's PostgreSQL."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from esb.idempotency import IdempotencyStore
from tests.test_journal import _postgres_or_skip


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    target = str(tmp_path / "ids.sqlite") if request.param == "sqlite" else _postgres_or_skip()
    return IdempotencyStore(target)


def test_a_repeated_key_returns_the_first_message_id_once_it_is_confirmed(store):
    key = f"erp:PO-{uuid.uuid4().hex[:8]}:0"
    assert store.claim("r1", key, "id-1") == (None, False)
    assert store.claim("r1", key, "id-2") == ("id-1", False)  # still being stored
    store.confirm("r1", key, "id-1")
    assert store.claim("r1", key, "id-2") == ("id-1", True)
    assert store.claim("other-route", key, "id-3") == (None, False)


def test_a_pending_claim_of_a_process_that_died_is_taken_over(store):
    key = f"k-{uuid.uuid4().hex}"
    store.claim("r1", key, "id-of-dead-process")
    assert store.claim("r1", key, "id-2", stale_after=60) == ("id-of-dead-process", False)
    assert store.claim("r1", key, "id-2", stale_after=0) == (None, False)
    store.confirm("r1", key, "id-2")
    assert store.claim("r1", key, "id-3", stale_after=0) == ("id-2", True)


def test_a_released_key_can_be_claimed_again(store):
    key = f"k-{uuid.uuid4().hex}"
    store.claim("r1", key, "id-1")
    store.release("r1", key, "id-1")
    assert store.claim("r1", key, "id-2") == (None, False)


def test_concurrent_claims_of_one_key_have_exactly_one_winner(store):
    key = f"k-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: store.claim("r1", key, f"id-{n}"), range(16)))
    winners = [n for n, (holder, _) in enumerate(answers) if holder is None]
    assert len(winners) == 1
    assert {holder for holder, _ in answers if holder is not None} == {f"id-{winners[0]}"}


def test_keys_survive_a_restart(tmp_path):
    path = tmp_path / "ids.sqlite"
    first = IdempotencyStore(path)
    first.claim("r1", "k", "id-1")
    first.confirm("r1", "k", "id-1")
    assert IdempotencyStore(path).claim("r1", "k", "id-2") == ("id-1", True)
