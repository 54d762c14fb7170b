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


def test_a_repeated_key_returns_the_first_message_id(store):
    key = f"erp:PO-{uuid.uuid4().hex[:8]}:0"
    assert store.claim("r1", key, "id-1") is None
    assert store.claim("r1", key, "id-2") == "id-1"
    assert store.claim("other-route", key, "id-3") is None


def test_a_released_key_can_be_claimed_again(store):
    key = f"k-{uuid.uuid4().hex}"
    store.claim("r1", key, "id-1")
    store.release("r1", key, "id-1")
    assert store.claim("r1", key, "id-2") is None


def test_concurrent_claims_of_one_key_have_exactly_one_winner(store):
    key = f"k-{uuid.uuid4().hex}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: store.claim("r1", key, f"id-{n}"), range(16)))
    winners = [n for n, answer in enumerate(answers) if answer is None]
    assert len(winners) == 1
    assert {answer for answer in answers if answer is not None} == {f"id-{winners[0]}"}


def test_keys_survive_a_restart(tmp_path):
    path = tmp_path / "ids.sqlite"
    IdempotencyStore(path).claim("r1", "k", "id-1")
    assert IdempotencyStore(path).claim("r1", "k", "id-2") == "id-1"
