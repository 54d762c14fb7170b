"""De-duplication by request key and business key, on a real SQLite file and the machine's
PostgreSQL."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from esb.errors import Conflict
from esb.idempotency import TABLE, IdempotencyStore, Key
from tests.test_journal import _postgres_or_skip


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    target = str(tmp_path / "ids.sqlite") if request.param == "sqlite" else _postgres_or_skip()
    return IdempotencyStore(target, scope=f"test-{uuid.uuid4().hex[:8]}")


ME, DEAD = "this-process", "a-process-that-died"


def keys(*texts: str) -> list[Key]:
    return [Key(text) for text in texts]


def test_a_repeated_key_returns_the_first_message_id_once_it_is_confirmed(store):
    key = keys(f"erp:PO-{uuid.uuid4().hex[:8]}:0")
    assert store.claim("r1", key, "id-1", owner=ME).outcome == "new"
    assert store.claim("r1", key, "id-2", owner=ME).outcome == "busy"  # still being stored here
    store.confirm("r1", key, "id-1")
    repeat = store.claim("r1", key, "id-2", owner=ME)
    assert (repeat.outcome, repeat.message_id) == ("duplicate", "id-1")
    assert store.claim("other-route", key, "id-3", owner=ME).outcome == "new"


def test_a_new_request_key_does_not_bypass_the_business_key(store):
    business = Key(f"erp:purchase_order:PO-{uuid.uuid4().hex[:8]}:0")
    first = store.claim("r1", [Key("header-1", "digest-a"), business], "id-1", owner=ME)
    store.confirm("r1", [Key("header-1", "digest-a"), business], "id-1")

    second = store.claim("r1", [Key("header-2", "digest-a"), business], "id-2", owner=ME)

    assert first.outcome == "new"
    assert (second.outcome, second.message_id) == ("duplicate", "id-1")
    again = store.claim("r1", keys("header-2"), "id-3", owner=ME)  # the new header now points to id-1
    assert (again.outcome, again.message_id) == ("duplicate", "id-1")


def test_the_same_request_key_with_another_body_is_a_conflict_naming_the_key(store):
    store.claim("r1", [Key("key-7", "digest-a")], "id-1", owner=ME)
    store.confirm("r1", [Key("key-7", "digest-a")], "id-1")

    with pytest.raises(Conflict, match='"key-7"'):
        store.claim("r1", [Key("key-7", "digest-b"), Key("erp:purchase_order:PO-9:0")], "id-2", owner=ME)
    # the conflicting claim left nothing behind: the business key is free
    assert store.claim("r1", keys("erp:purchase_order:PO-9:0"), "id-3", owner=ME).outcome == "new"


def test_a_claim_left_unconfirmed_by_another_process_is_adopted_at_once_under_its_id(store):
    key = keys(f"k-{uuid.uuid4().hex}")
    store.claim("r1", key, "id-of-dead-process", owner=DEAD)

    adopted = store.claim("r1", key, "id-2", owner=ME)

    assert (adopted.outcome, adopted.message_id) == ("adopted", "id-of-dead-process")
    assert store.claim("r1", key, "id-3", owner=ME).outcome == "busy"  # ours now, being stored
    store.confirm("r1", key, "id-of-dead-process")
    assert store.claim("r1", key, "id-3", owner=ME).message_id == "id-of-dead-process"


def test_a_stale_claim_of_this_process_is_taken_over_under_its_id(store):
    key = keys(f"k-{uuid.uuid4().hex}")
    store.claim("r1", key, "id-1", owner=ME)
    assert store.claim("r1", key, "id-2", owner=ME, stale_after=60).outcome == "busy"
    taken = store.claim("r1", key, "id-2", owner=ME, stale_after=0)
    assert (taken.outcome, taken.message_id) == ("adopted", "id-1")


def test_a_disowned_claim_is_published_again_under_the_same_id(store):
    key = keys(f"k-{uuid.uuid4().hex}")
    store.claim("r1", key, "id-1", owner=ME)
    store.disown("r1", key, "id-1")  # the publish was not confirmed: maybe stored, maybe not
    again = store.claim("r1", key, "id-2", owner=ME)
    assert (again.outcome, again.message_id) == ("adopted", "id-1")


def test_concurrent_claims_of_one_key_have_exactly_one_winner(store):
    key = keys(f"k-{uuid.uuid4().hex}")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: store.claim("r1", key, f"id-{n}", owner=ME), range(16)))
    winners = [n for n, claim in enumerate(answers) if claim.outcome == "new"]
    assert len(winners) == 1
    assert {claim.message_id for claim in answers} == {f"id-{winners[0]}"}


def test_keys_survive_a_restart(tmp_path):
    path = tmp_path / "ids.sqlite"
    first = IdempotencyStore(path, scope="embedded:x")
    first.claim("r1", keys("k"), "id-1", owner=ME)
    first.confirm("r1", keys("k"), "id-1")
    restarted = IdempotencyStore(path, scope="embedded:x")
    assert restarted.claim("r1", keys("k"), "id-2", owner=ME).message_id == "id-1"


def test_keys_of_one_transport_mean_nothing_on_another(tmp_path):
    path = tmp_path / "ids.sqlite"
    embedded = IdempotencyStore(path, scope="embedded:/data/transport.sqlite")
    embedded.claim("r1", keys("k"), "id-1", owner=ME)
    embedded.confirm("r1", keys("k"), "id-1")

    on_rabbitmq = IdempotencyStore(path, scope="amqp://127.0.0.1:5672/")

    assert on_rabbitmq.claim("r1", keys("k"), "id-2", owner=ME).outcome == "new"


def test_keys_stored_before_scopes_belong_to_the_transport_of_the_first_start(tmp_path):
    import sqlite3

    path = tmp_path / "ids.sqlite"
    legacy = sqlite3.connect(path)
    legacy.execute("CREATE TABLE esb_idempotency_keys (route TEXT NOT NULL, key TEXT NOT NULL, "
                   "message_id TEXT NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0, "
                   "at_epoch DOUBLE PRECISION NOT NULL, PRIMARY KEY (route, key))")
    legacy.execute("INSERT INTO esb_idempotency_keys VALUES ('r1', 'k', 'id-1', 1, strftime('%s','now'))")
    legacy.commit()
    legacy.close()

    store = IdempotencyStore(path, scope="amqp://127.0.0.1:5672/")

    assert store.claim("r1", keys("k"), "id-2", owner=ME).message_id == "id-1"
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert TABLE in tables and "esb_idempotency_keys" not in tables
