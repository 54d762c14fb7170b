"""The table adapter inside the real runtime on the real RabbitMQ: purchase orders claimed from the
ERP's interface tables reach their destination, and goods receipts posted by the WMS are written
into the ERP's receipt tables by the consumer; both through the runtime's publish/confirm path."""

from __future__ import annotations

import json
import time
import uuid

import pika
import pytest
import requests
import sqlalchemy as sa

from esb.config import load_config
from esb.runtime import Runtime, RuntimeOptions
from esb.schemas import default_registry
from tests.table.tables import GR_MAPPING, PO_MAPPING, PurchaseOrders

pytestmark = pytest.mark.broker

ROUTES = """version: 1
settings: {{broker_url: "{broker_url}", data_dir: data}}
systems:
  erp_db:
    table: {{url: "{url}"}}
routes:
  - name: {route}-po
    from:
      table: {{system: erp_db, table: {po_header}, key: id, poll: 100ms,
              lines: {{table: {po_lines}, key: po_id, order_by: line_no}},
              processed_at_column: processed_at, message_id_column: message_id, error_column: error_text}}
    map: {po_mapping}
    validate: purchase_order
    to:
      - file: {{name: wms, dir: out, format: json, name_template: "{{correlation_id}}.{{ext}}"}}
  - name: {route}-gr
    from: {{rest: {{auth: none}}}}
    validate: goods_receipt
    to:
      - table: {{system: erp_db, table: {gr_header}, key: gr_number, message_id_column: message_id,
                lines: {{table: {gr_lines}, key: gr_number}}, map: {gr_mapping}}}
"""


def wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def erp(server_url):
    orders = PurchaseOrders.create(server_url)
    metadata = sa.MetaData()
    suffix = uuid.uuid4().hex[:8]
    header = sa.Table(f"gr_header_{suffix}", metadata,
                      sa.Column("gr_number", sa.String(30), primary_key=True),
                      sa.Column("plant", sa.String(10)), sa.Column("received_at", sa.DateTime),
                      sa.Column("po_number", sa.String(20)), sa.Column("message_id", sa.String(36)))
    lines = sa.Table(f"gr_line_{suffix}", metadata, sa.Column("gr_number", sa.String(30), primary_key=True),
                     sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("po_line_no", sa.Integer), sa.Column("material", sa.String(20)),
                     sa.Column("quantity", sa.Numeric(12, 3)), sa.Column("unit", sa.String(5)),
                     sa.Column("batch", sa.String(20)))
    metadata.create_all(orders.engine)
    yield orders, header, lines
    metadata.drop_all(orders.engine)
    orders.drop()


@pytest.fixture
def runtime(erp, tmp_path, unique_name, broker_url):
    orders, header, lines = erp
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(broker_url=broker_url, url=orders.url, route=unique_name,
                                  po_header=orders.header.name, po_lines=orders.lines.name,
                                  po_mapping=PO_MAPPING, gr_header=header.name, gr_lines=lines.name,
                                  gr_mapping=GR_MAPPING))
    bus = Runtime(load_config(path), RuntimeOptions(broker_url=broker_url, data_dir=tmp_path / "data",
                                                    port=0)).start()
    yield bus
    bus.stop()
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in (q.name for q in bus.transport.topology.queues):
        channel.queue_delete(queue)
    connection.close()


def test_claimed_orders_reach_their_destination_and_a_bad_one_is_marked_error(runtime, erp, tmp_path):
    orders, _, _ = erp
    orders.add(1, 3)
    orders.add(4, plant=None)

    out = tmp_path / "out"
    wait_for(lambda: len(list(out.glob("*.json"))) == 3)

    written = json.loads((out / "4500000002.json").read_text())
    assert written["warehouse"] == "WH1" and len(written["lines"]) == 2
    wait_for(lambda: orders.rows()[4]["status"] == "error")
    rows = orders.rows()
    assert {rows[n]["status"] for n in (1, 2, 3)} == {"done"} and "warehouse" in rows[4]["error_text"]
    message_id = rows[2]["message_id"]
    # the trace is written by the journal's writer thread; the delivery may be traced first
    def traced() -> list[str]:
        return [entry.step for entry in runtime.journal.trace(message_id=message_id)]

    steps = wait_for(lambda: "published" in traced() and traced())
    assert "published" in steps
    assert requests.get(f"{runtime.server.url}/readyz", timeout=10).status_code == 200


def test_a_posted_goods_receipt_is_written_into_the_erp_tables_once(runtime, erp, unique_name):
    orders, header, lines = erp
    receipt = default_registry().schema("goods_receipt")["examples"][0]
    url = f"{runtime.server.url}/in/{unique_name}-gr"

    first = requests.post(url, json=receipt, timeout=30)
    again = requests.post(url, json=receipt, timeout=30)

    assert first.status_code == 202 and again.json().get("duplicate") is True
    def count_lines() -> int:  # a new transaction each time (MariaDB's snapshot would not move)
        with orders.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(lines)).scalar()

    wait_for(lambda: count_lines() == 3)
    with orders.engine.connect() as connection:
        [row] = connection.execute(sa.select(header)).all()
    assert row.gr_number == receipt["receipt_number"] and row.message_id == first.json()["id"]
