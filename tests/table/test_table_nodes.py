"""Bus nodes as real processes on one interface table, publishing to the real RabbitMQ: several
nodes take each row once, and a node killed (SIGKILL) between publish and mark loses nothing and
doubles nothing downstream. The nodes run no consumers, so every message published is still in
the route's work queue to be counted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from esb.config import load_config
from esb.transport.names import work_queue_name
from esb.transport.topology import Topology
from tests.conftest import PROJECT
from tests.table.tables import PO_MAPPING, PurchaseOrders

pytestmark = pytest.mark.broker

ROUTES = """version: 1
settings: {{broker_url: "{broker_url}"}}
systems:
  erp_db:
    table: {{url: "{url}"}}
routes:
  - name: {route}
    from:
      table: {{system: erp_db, table: {header}, key: id, poll: 100ms, batch: {batch},
              lines: {{table: {lines}, key: po_id, order_by: line_no}},
              processed_at_column: processed_at, message_id_column: message_id, error_column: error_text}}
    map: {mapping}
    validate: purchase_order
    to:
      - file: {{name: wms, dir: out, format: json}}
"""


@pytest.fixture
def orders(server_url):
    tables = PurchaseOrders.create(server_url)
    yield tables
    tables.drop()


@pytest.fixture
def queue(broker_url, unique_name, tmp_path):
    """The route's work queue, read after the test: its messages' ids, in order; then every queue
    of the route is deleted (those of the routes file the test wrote: the retry queues too)."""
    name = work_queue_name(unique_name, "wms")
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()

    def message_ids() -> list[str]:
        ids = []
        while True:
            method, properties, _body = channel.basic_get(name, auto_ack=False)
            if method is None:
                return ids
            ids.append(properties.message_id)

    yield message_ids
    written = tmp_path / "routes.yaml"
    names = {name, f"{name}.dlq", f"esb.{unique_name}.dlq"}
    if written.exists():
        names |= {spec.name for spec in Topology.from_routes(load_config(written).routes).queues}
    for queue_name in sorted(names):
        channel.queue_delete(queue_name)
    connection.close()


def routes_file(tmp_path: Path, orders: PurchaseOrders, route: str, broker_url: str, batch: int = 10) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(broker_url=broker_url, url=orders.url, route=route,
                                  header=orders.header.name, lines=orders.lines.name, batch=batch,
                                  mapping=PO_MAPPING))
    return path


def start_node(routes: Path, data_dir: Path, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.Popen([sys.executable, "-m", "tests.table.node", str(routes), str(data_dir), *flags],
                            cwd=routes.parent, env=env, stdout=subprocess.PIPE, text=True)


def stop_nodes(*nodes: subprocess.Popen) -> None:
    for node in nodes:
        if node.poll() is None:
            node.terminate()
    for node in nodes:
        node.wait(30)


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def all_done(orders: PurchaseOrders) -> bool:
    return {row["status"] for row in orders.rows().values()} == {"done"}


def test_three_nodes_on_one_table_publish_each_row_once(orders, queue, tmp_path, unique_name, broker_url):
    orders.add(1, 150, lines=1)
    routes = routes_file(tmp_path, orders, unique_name, broker_url, batch=5)

    nodes = [start_node(routes, tmp_path / f"node{n}") for n in range(3)]
    try:
        wait_until(lambda: all_done(orders))
    finally:
        stop_nodes(*nodes)

    ids = queue()
    assert len(ids) == 150 and len(set(ids)) == 150
    assert {row["message_id"] for row in orders.rows().values()} == set(ids)


@pytest.mark.parametrize("shared_store", [True, False], ids=["same-data-dir", "other-data-dir"])
def test_a_node_killed_between_publish_and_mark_loses_nothing_and_doubles_nothing(
        orders, queue, tmp_path, unique_name, broker_url, shared_store):
    orders.add(1, 30)
    routes = routes_file(tmp_path, orders, unique_name, broker_url, batch=10)

    killed = start_node(routes, tmp_path / "node1", "--die-before-mark")
    assert killed.wait(60) == -9
    assert {row["status"] for row in orders.rows().values()} == {"new"}  # its claim was rolled back
    survivor = start_node(routes, tmp_path / ("node1" if shared_store else "node2"))
    try:
        wait_until(lambda: all_done(orders))
    finally:
        stop_nodes(survivor)

    ids = queue()
    marked = {row["message_id"] for row in orders.rows().values()}
    assert len(set(ids)) == 30 and set(ids) == marked  # nothing lost
    if shared_store:  # the idempotency keys caught the re-read: nothing published twice
        assert len(ids) == 30
    else:  # another node's store: the first batch is published again, with the same ids, which
        assert len(ids) == 40  # the targets take once (Idempotency-Key, the table sink's upsert)
