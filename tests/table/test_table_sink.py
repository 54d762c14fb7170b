"""The table sink on real PostgreSQL, MariaDB and SQLite: a goods receipt rendered by the shipped
mapping is written as one header row and its lines in one transaction, upserted by its number, so
a redelivery writes it once; bad documents are permanent errors naming the column."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from adapters.table import TableSink
from esb.envelope import Envelope
from esb.errors import Permanent, Retryable
from esb.mapping import load_mapping
from esb.schemas import default_registry
from tests.table.tables import GR_MAPPING, endpoint, system

RECEIPT = default_registry().schema("goods_receipt")["examples"][0]


@pytest.fixture
def receipts(sql_url):
    suffix = uuid.uuid4().hex[:8]
    metadata = sa.MetaData()
    header = sa.Table(f"gr_header_{suffix}", metadata,
                      sa.Column("gr_number", sa.String(30), primary_key=True),
                      sa.Column("plant", sa.String(10), nullable=False),
                      sa.Column("received_at", sa.DateTime),
                      sa.Column("po_number", sa.String(20)),
                      sa.Column("message_id", sa.String(36)),
                      sa.Column("status", sa.String(10), server_default="new"))
    lines = sa.Table(f"gr_line_{suffix}", metadata,
                     sa.Column("gr_number", sa.String(30), primary_key=True),
                     sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("po_line_no", sa.Integer),
                     sa.Column("material", sa.String(20), nullable=False),
                     sa.Column("quantity", sa.Numeric(12, 3), nullable=False),
                     sa.Column("unit", sa.String(5), nullable=False),
                     sa.Column("batch", sa.String(20)))
    engine = sa.create_engine(sql_url)
    metadata.create_all(engine)
    yield sql_url, engine, header, lines
    metadata.drop_all(engine)
    engine.dispose()


def sink_for(url: str, header: sa.Table, lines: sa.Table, **options) -> TableSink:
    defaults = {"system": "erp_db", "table": header.name, "key": "gr_number",
                "message_id_column": "message_id", "lines": {"table": lines.name, "key": "gr_number"},
                "timezone": "Asia/Shanghai"}
    return TableSink(endpoint("sink", **{**defaults, **options}), system(url))


def rendered(payload: dict) -> tuple[Envelope, bytes]:
    mapping = load_mapping(str(GR_MAPPING))
    envelope = Envelope(type="goods_receipt", payload=payload, source="wms")
    return envelope, mapping.encode(mapping.apply(payload))


def table_rows(engine, table, order_by) -> list[dict]:
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sa.select(table).order_by(order_by))]


def test_a_document_is_written_as_a_header_and_its_lines(receipts):
    url, engine, header, lines = receipts
    envelope, body = rendered(RECEIPT)

    target_id = sink_for(url, header, lines).deliver(envelope, body, "application/json")

    assert target_id == RECEIPT["receipt_number"]
    [row] = table_rows(engine, header, header.c.gr_number)
    assert row["plant"] == "1000" and row["message_id"] == envelope.id and row["status"] == "new"
    assert row["received_at"].replace(tzinfo=None) == datetime(2026, 12, 1, 17, 12, 45)  # 10:12:45+01:00
    written = table_rows(engine, lines, lines.c.line_no)
    assert [(r["line_no"], r["material"], float(r["quantity"]), r["unit"]) for r in written] == [
        (1, "100-2040", 118.0, "ST"), (2, "100-2040", 2.0, "ST"), (3, "310-5500", 250.5, "KG")]
    assert {r["gr_number"] for r in written} == {RECEIPT["receipt_number"]}


def test_a_redelivered_or_changed_document_is_written_once_by_its_key(receipts):
    url, engine, header, lines = receipts
    sink = sink_for(url, header, lines)
    envelope, body = rendered(RECEIPT)
    sink.deliver(envelope, body, "application/json")
    sink.deliver(envelope, body, "application/json")

    changed = {**RECEIPT, "lines": RECEIPT["lines"][:1]}
    sink.deliver(*rendered(changed), "application/json")

    assert len(table_rows(engine, header, header.c.gr_number)) == 1
    assert [r["line_no"] for r in table_rows(engine, lines, lines.c.line_no)] == [1]


def test_a_field_without_a_column_is_a_permanent_error_naming_it_and_nothing_is_written(receipts):
    url, engine, header, lines = receipts
    envelope, body = rendered(RECEIPT)
    document = json.loads(body)
    document["plnat"] = document.pop("plant")

    with pytest.raises(Permanent, match='no column "plnat" \\(did you mean "plant"\\?\\)'):
        sink_for(url, header, lines).deliver(envelope, json.dumps(document).encode(), "application/json")

    assert table_rows(engine, header, header.c.gr_number) == []


def test_a_null_in_a_not_null_column_rolls_back_the_header_too(receipts):
    url, engine, header, lines = receipts
    envelope, body = rendered(RECEIPT)
    document = json.loads(body)
    document["lines"][1]["material"] = None

    with pytest.raises(Permanent, match=f"table {header.name}"):
        sink_for(url, header, lines).deliver(envelope, json.dumps(document).encode(), "application/json")

    assert table_rows(engine, header, header.c.gr_number) == []


def test_a_database_that_does_not_answer_is_a_retryable_error_shown_on_readyz():
    url = "mysql+pymysql://root@127.0.0.1:1/none"
    sink = TableSink(endpoint("sink", system="erp_db", table="gr_header", key="gr_number"), system(url))
    envelope, body = rendered(RECEIPT)

    with pytest.raises(Retryable, match="does not answer"):
        sink.deliver(envelope, body, "application/json")
    assert "does not answer" in sink.readiness()
