"""The watermark source on real PostgreSQL, MariaDB and SQLite: rows past the last (updated_at,
key) seen are read oldest first; the watermark is kept only once their messages are stored or
dead-lettered; the tables are never written."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from adapters.table import WatermarkSource
from tests.table.tables import Bus, PurchaseOrders, system

START = datetime(2026, 11, 24, 8, 0)


@pytest.fixture
def orders(sql_url):
    tables = PurchaseOrders.create(sql_url)
    yield tables
    tables.drop()


def watermark_source(orders: PurchaseOrders, bus: Bus, tmp_path, **options) -> WatermarkSource:
    options = {"mode": "watermark", "watermark_column": "updated_at", "processed_at_column": None,
               "message_id_column": None, "error_column": None, **options}
    source = WatermarkSource(orders.source(**options), system(orders.url), "erp-po")
    source.start(bus.context(tmp_path))
    return source


def numbers(envelopes) -> list[str]:
    return [envelope.payload["order_number"] for envelope in envelopes]


def test_rows_past_the_watermark_are_read_once_oldest_first_and_the_table_is_not_written(orders, tmp_path):
    for n in range(1, 6):
        orders.add(n, updated_at=START + timedelta(minutes=10 - n))  # the newest row has the lowest id
    before = orders.rows()
    bus = Bus()
    source = watermark_source(orders, bus, tmp_path, batch=2, concurrency=1)  # 1: in the table's order

    source.poll_once()
    orders.add(6, updated_at=START + timedelta(hours=1))
    source.poll_once()

    assert numbers(bus.stored) == [f"45{n:08d}" for n in (5, 4, 3, 2, 1, 6)]
    assert len(bus.calls) == 6
    assert {k: v for k, v in orders.rows().items() if k != 6} == before
    assert source.watermarks.load()["key"] == [6]


def test_rows_with_the_same_time_on_both_sides_of_a_batch_are_all_read(orders, tmp_path):
    orders.add(1, 5, updated_at=START)
    bus = Bus()
    source = watermark_source(orders, bus, tmp_path, batch=2)

    source.poll_once()
    source.poll_once()

    assert sorted(numbers(bus.stored)) == [f"45{n:08d}" for n in range(1, 6)] and len(bus.calls) == 5


def test_a_changed_row_is_read_again_as_a_new_message(orders, tmp_path):
    orders.add(1, updated_at=START)
    bus = Bus()
    source = watermark_source(orders, bus, tmp_path)
    source.poll_once()

    with orders.engine.begin() as connection:
        connection.execute(sa.update(orders.header).values(note="changed", updated_at=START + timedelta(1)))
    source.poll_once()

    first, second = bus.stored
    assert first.payload["order_number"] == second.payload["order_number"] and first.id != second.id
    assert second.payload["notes"] == "changed"


def test_a_refused_row_is_dead_lettered_and_the_watermark_moves_past_it(orders, tmp_path):
    orders.add(1, updated_at=START)
    orders.add(2, plant=None, updated_at=START + timedelta(minutes=1))
    orders.add(3, updated_at=START + timedelta(minutes=2))
    bus = Bus()
    source = watermark_source(orders, bus, tmp_path)

    counts = source.poll_once()
    source.poll_once()

    assert counts["dead_lettered"] == 1 and numbers(bus.stored) == ["4500000001", "4500000003"]
    [(body, error)] = bus.dead
    assert body["po_number"] == "4500000002" and "warehouse" in str(error)
    assert len(bus.calls) == 3


def test_when_the_bus_cannot_store_the_watermark_stays_before_what_was_not_stored(orders, tmp_path):
    # one at a time, so that the first two are the stored ones (several at a time: see the next test)
    for n in range(1, 5):
        orders.add(n, updated_at=START + timedelta(minutes=n))
    bus = Bus(unavailable_after=2)
    source = watermark_source(orders, bus, tmp_path, concurrency=1)

    source.poll_once()
    assert source.watermarks.load()["key"] == [2]
    bus.unavailable_after = None
    source.poll_once()

    assert numbers(bus.stored) == [f"45{n:08d}" for n in range(1, 5)]


def test_with_several_submits_at_a_time_the_watermark_stops_at_the_first_document_not_stored(
        orders, tmp_path):
    for n in range(1, 9):
        orders.add(n, updated_at=START + timedelta(minutes=n))
    bus = Bus(unavailable_after=4, delay=0.01)
    source = watermark_source(orders, bus, tmp_path, concurrency=8)

    source.poll_once()
    stored = sorted(int(envelope.payload["order_number"][2:]) for envelope in bus.stored)
    first_missing = next(n for n in range(1, 10) if n not in stored)
    kept = source.watermarks.load()
    assert (kept["key"] if kept else [0]) == [first_missing - 1]
    bus.unavailable_after = None
    source.poll_once()

    assert sorted(numbers(bus.stored)) == [f"45{n:08d}" for n in range(1, 9)]
