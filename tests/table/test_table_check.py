"""`esb check` on table routes: the options that go together without a database, and with
`--connect` the tables and columns of the real database, each problem at its line."""

from __future__ import annotations

import pytest

from esb.cli import main
from tests.table.tables import PO_MAPPING, PurchaseOrders

ROUTES = """version: 1
systems:
  erp_db:
    table: {{url: "${{ERP_DB_URL}}"}}
routes:
  - name: erp-po
    from:
      table:
        system: erp_db
        table: {header}
        key: id
        status_column: {status}
        message_id_column: message_id
        lines: {{table: {lines}, key: po_id, order_by: line_no}}
        mode: {mode}
    map: {mapping}
    validate: purchase_order
    to:
      - file: {{dir: out, format: json}}
"""


@pytest.fixture
def orders(sql_url):
    tables = PurchaseOrders.create(sql_url)
    yield tables
    tables.drop()


def routes_file(tmp_path, orders: PurchaseOrders, *, status: str = "status", mode: str = "claim"):
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(header=orders.header.name, lines=orders.lines.name, status=status,
                                  mode=mode, mapping=PO_MAPPING))
    return path


def test_check_connect_passes_when_every_table_and_column_is_there(orders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ERP_DB_URL", orders.url)

    assert main(["check", "--connect", "-c", str(routes_file(tmp_path, orders))]) == 0
    assert "(systems connected)" in capsys.readouterr().out


def test_check_connect_names_a_renamed_column_at_its_route(orders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ERP_DB_URL", orders.url)
    path = routes_file(tmp_path, orders, status="state")

    assert main(["check", "-c", str(path)]) == 0  # without --connect nothing is asked of the database
    assert main(["check", "--connect", "-c", str(path)]) == 1

    out = capsys.readouterr().out
    assert f'routes.yaml:8: route erp-po (from): status_column: table "{orders.header.name}" has no column ' \
           '"state" (did you mean "status"?)' in out


def test_check_connect_says_which_database_does_not_answer(orders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ERP_DB_URL", "postgresql+psycopg://postgres@127.0.0.1:1/erp")

    assert main(["check", "--connect", "-c", str(routes_file(tmp_path, orders))]) == 1
    assert "database postgresql+psycopg://postgres@127.0.0.1:1/erp does not answer" in capsys.readouterr().out


def test_a_watermark_route_without_its_column_is_a_problem_of_the_file(orders, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ERP_DB_URL", orders.url)

    assert main(["check", "-c", str(routes_file(tmp_path, orders, mode="watermark"))]) == 1
    assert "mode watermark needs watermark_column" in capsys.readouterr().out
