"""The state databases on the machine's real PostgreSQL: several nodes starting at once on a
fresh database each create the tables, and none of them fails for it."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from adapters.as2.receipt_store import ReceiptStore
from esb.accuracy import AccuracyHistory
from esb.aggregator import AggregationStore
from esb.alerts import AlertOutbox
from esb.idempotency import IdempotencyStore
from esb.journal import Journal
from esb.ledger import DocumentLedger
from esb.units import ItemUnits
from esb.watch import Watch

ADMIN_DSN = os.environ.get("ESB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1/test")


@pytest.fixture
def fresh_postgres() -> str:
    psycopg = pytest.importorskip("psycopg")
    name = "esb_schema_" + uuid.uuid4().hex[:10]
    try:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {ADMIN_DSN}: {error}")
        pytest.skip(f"PostgreSQL not reachable: {error}")
    yield ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_nodes_starting_at_once_on_a_fresh_postgresql_all_create_their_tables(fresh_postgres):
    nodes = 6
    barrier = threading.Barrier(nodes)
    errors: list[Exception] = []

    def start_a_node() -> None:
        barrier.wait()
        try:
            Journal(fresh_postgres).close()  # every store a node opens on its state database
            IdempotencyStore(fresh_postgres, scope="s")
            AggregationStore(fresh_postgres)
            AccuracyHistory(fresh_postgres)
            AlertOutbox(fresh_postgres)
            DocumentLedger(fresh_postgres, writer=False)
            ItemUnits(fresh_postgres)
            Watch(fresh_postgres, [])
            ReceiptStore(fresh_postgres)
        except Exception as error:  # the assertion below names it
            errors.append(error)

    threads = [threading.Thread(target=start_a_node) for _ in range(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
