"""The claim source on real PostgreSQL, MariaDB and SQLite: new rows become documents (header and
lines), are submitted through the real mapping and schema, and are marked in the same
transaction; bad rows are marked error with the reason; several nodes share one table."""

from __future__ import annotations

import threading
import uuid
from datetime import date

import pytest
import sqlalchemy as sa

from adapters.table import ClaimSource, connect_problems, message_id
from tests.table.tables import Bus, PurchaseOrders, endpoint, system


@pytest.fixture
def orders(sql_url):
    tables = PurchaseOrders.create(sql_url)
    yield tables
    tables.drop()


def claim_source(orders: PurchaseOrders, bus: Bus, tmp_path, **options) -> ClaimSource:
    source = ClaimSource(orders.source(**options), system(orders.url), "erp-po")
    source.start(bus.context(tmp_path))
    return source


def test_new_rows_become_documents_with_their_lines_and_are_marked_done_with_the_message_id(orders, tmp_path):
    orders.add(1, 3)
    bus = Bus()

    counts = claim_source(orders, bus, tmp_path).poll_once()

    assert counts["submitted"] == 3
    payloads = {envelope.payload["order_number"]: envelope.payload for envelope in bus.stored}
    assert payloads["4500000001"]["lines"][1] == {"line_number": 20, "sku": "100-0001", "quantity": 12.5,
                                                  "uom": "EA"}
    first = payloads["4500000001"]
    assert first["warehouse"] == "WH1" and first["supplier"]["id"] == "100020"
    rows = orders.rows()
    for envelope in bus.stored:
        row = rows[int(envelope.payload["order_number"][2:])]
        assert row["status"] == "done" and row["processed_at"] is not None
        assert row["message_id"] == envelope.id


def test_the_message_id_is_derived_from_the_table_and_the_row_key(orders, tmp_path):
    orders.add(5)
    bus = Bus()

    claim_source(orders, bus, tmp_path).poll_once()

    [envelope] = bus.stored
    identity = f"table:erp_db:{orders.header.name}:5"
    assert envelope.id == message_id(identity) and envelope.idempotency_key == identity
    assert uuid.UUID(envelope.id).version == 5


def test_a_row_with_a_null_required_field_is_marked_error_with_the_reason_and_the_others_go_on(
        orders, tmp_path):
    orders.add(1, 2)
    orders.add(3, plant=None)
    orders.add(4, 2)
    bus = Bus()

    counts = claim_source(orders, bus, tmp_path).poll_once()

    assert counts["submitted"] == 4 and counts["refused"] == 1
    rows = orders.rows()
    assert rows[3]["status"] == "error" and rows[3]["message_id"] is None
    assert "warehouse" in rows[3]["error_text"] and "required" in rows[3]["error_text"]
    assert all(rows[n]["status"] == "done" for n in (1, 2, 4, 5))


def test_batches_are_claimed_until_the_table_has_nothing_new(orders, tmp_path):
    orders.add(1, 25)
    bus = Bus()

    counts = claim_source(orders, bus, tmp_path, batch=7).poll_once()

    assert counts["submitted"] == 25
    assert {row["status"] for row in orders.rows().values()} == {"done"}


def test_when_the_bus_cannot_store_the_stored_rows_are_marked_and_the_rest_stay_new(orders, tmp_path):
    orders.add(1, 5)
    bus = Bus(unavailable_after=2)

    claim_source(orders, bus, tmp_path).poll_once()

    statuses = {key: row["status"] for key, row in orders.rows().items()}
    assert statuses == {1: "done", 2: "done", 3: "new", 4: "new", 5: "new"}
    bus.unavailable_after = None
    claim_source(orders, bus, tmp_path).poll_once()
    assert len(bus.stored) == 5 and {row["status"] for row in orders.rows().values()} == {"done"}


def test_a_row_read_again_after_a_crash_before_its_mark_is_a_duplicate_marked_with_the_first_id(
        orders, tmp_path, monkeypatch):
    orders.add(1, 3)
    bus = Bus()
    crashing = claim_source(orders, bus, tmp_path)

    def crash(*_arguments):
        raise ConnectionError("the node died between publish and mark")

    monkeypatch.setattr(crashing, "_mark", crash)
    with pytest.raises(ConnectionError):
        crashing.poll_once()
    assert len(bus.stored) == 3 and {row["status"] for row in orders.rows().values()} == {"new"}

    counts = claim_source(orders, bus, tmp_path).poll_once()

    assert counts["duplicate"] == 3 and len(bus.stored) == 3
    rows = orders.rows()
    assert {rows[int(e.payload["order_number"][2:])]["message_id"] for e in bus.stored} == {
        e.id for e in bus.stored}


def test_a_flat_table_grouped_by_a_column_makes_one_document_per_group_and_marks_every_row(sql_url, tmp_path):
    metadata = sa.MetaData()
    flat = sa.Table(f"po_flat_{uuid.uuid4().hex[:8]}", metadata,
                    sa.Column("row_id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column("po_number", sa.String(20)), sa.Column("supplier_id", sa.String(20)),
                    sa.Column("plant", sa.String(10)), sa.Column("order_date", sa.Date),
                    sa.Column("line_no", sa.Integer), sa.Column("material", sa.String(20)),
                    sa.Column("quantity", sa.Numeric(12, 3)), sa.Column("unit", sa.String(5)),
                    sa.Column("status", sa.String(10), server_default="new"))
    engine = sa.create_engine(sql_url)
    metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(sa.insert(flat), [
                {"row_id": n, "po_number": f"PO-{1 + n // 3}", "supplier_id": "7", "plant": "2000",
                 "order_date": date(2026, 11, 24), "line_no": n + 1, "material": f"M-{n}", "quantity": n,
                 "unit": "KG"}
                for n in range(9)])
        bus = Bus()
        options = endpoint("source", system="erp_db", table=flat.name, key="row_id", group_by="po_number",
                           batch=4)
        source = ClaimSource(options, system(sql_url), "erp-po")
        source.start(bus.context(tmp_path))

        source.poll_once()

        by_number = {e.payload["order_number"]: [line["line_number"] for line in e.payload["lines"]]
                     for e in bus.stored}
        assert by_number == {"PO-1": [1, 2, 3], "PO-2": [4, 5, 6], "PO-3": [7, 8, 9]}
        with engine.connect() as connection:
            assert set(connection.execute(sa.select(flat.c.status)).scalars()) == {"done"}
    finally:
        flat.drop(engine)
        engine.dispose()


def test_several_nodes_sharing_one_table_take_each_row_once(server_url, tmp_path):
    orders = PurchaseOrders.create(server_url)
    try:
        orders.add(1, 120, lines=1)
        bus = Bus(delay=0.002)  # every node holds its batch a while, so that they overlap
        nodes = [claim_source(orders, bus, tmp_path / str(n), batch=5) for n in range(4)]
        threads = [threading.Thread(target=node.poll_once) for node in nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert len(bus.calls) == 120 and len(set(bus.calls)) == 120 and len(bus.stored) == 120
        assert {row["status"] for row in orders.rows().values()} == {"done"}
    finally:
        orders.drop()


def test_a_renamed_column_is_named_by_the_check_and_on_readyz(orders, tmp_path):
    renamed = orders.source(status_column="state", lines={"table": orders.lines.name, "key": "po_ref"})

    problems = connect_problems(renamed, system(orders.url), "source")

    assert any('status_column: table' in p and 'no column "state"' in p and 'did you mean "status"' in p
               for p in problems)
    assert any('lines.key' in p and '"po_ref"' in p for p in problems)
    source = ClaimSource(renamed, system(orders.url), "erp-po")
    source.start(Bus().context(tmp_path))
    source.poll()
    assert 'no column "state"' in source.readiness()


def test_a_database_that_does_not_answer_shows_on_readyz_and_in_the_check(tmp_path):
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
    unreachable = PurchaseOrders(url, None, sa.table("po_header"), sa.table("po_line")).source()

    [problem] = connect_problems(unreachable, system(url), "source")

    assert "postgresql+psycopg://postgres@127.0.0.1:1/none does not answer" in problem
    source = ClaimSource(unreachable, system(url), "erp-po")
    source.start(Bus().context(tmp_path))
    source.poll()
    assert "does not answer" in source.readiness()
