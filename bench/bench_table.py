"""Rows per second of the table adapter's claim source against plain psycopg doing the same work on
the same PostgreSQL database, in the same run.

    python -m bench.bench_table [--orders 20000] [--lines 2] [--batch 100] [--rounds 2]
                                [--url postgresql+psycopg://postgres@127.0.0.1/test] [--broker amqp://...]

A database of its own (`esb_bench_<random>`, dropped at the end) gets a purchase-order header
table with `--orders` rows, each with `--lines` line rows. Each case claims every row in batches
of `--batch`, then the rows are set back to new:

- `psycopg`: the ceiling: BEGIN; SELECT ... FOR UPDATE SKIP LOCKED LIMIT n; SELECT the lines;
  each document as JSON; UPDATE status, processed_at, message_id (executemany); COMMIT;
- `claim source, no bus`: `ClaimSource.poll_once` with a `submit` that only takes the body: the
  cost of the adapter's database layer (SQLAlchemy Core, reflection, documents, uuid5 ids);
- `claim source, bus`: the same, with the real runtime's `submit` (mapping, schema validation,
  idempotency keys, publish confirmed to RabbitMQ at `--broker`, or the embedded transport
  when none answers), the end-to-end inbound rate.

Prints documents/s and rows/s (header + line rows) of each, the ratio to psycopg, and the peak
RSS. Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path

import sqlalchemy as sa

from adapters.table import ClaimSource
from esb import jsonfmt
from esb.plugins import Accepted, SourceContext
from tests.table.tables import PO_MAPPING, endpoint, purchase_order_tables

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"


def create_database(admin_url: str) -> str:
    name = "esb_bench_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {sa.make_url(url).database} WITH (FORCE)")
    admin.dispose()


def fill(engine: sa.Engine, header: sa.Table, lines: sa.Table, orders: int, per_order: int) -> None:
    with engine.begin() as connection:
        for start in range(1, orders + 1, 5000):
            numbers = range(start, min(orders, start + 4999) + 1)
            connection.execute(sa.insert(header), [
                {"id": n, "po_number": f"45{n:08d}", "supplier_id": "0000100020", "supplier_name": "Oleifici",
                 "plant": "1000", "order_date": date(2026, 11, 24)} for n in numbers])
            connection.execute(sa.insert(lines), [
                {"po_id": n, "line_no": 10 * (i + 1), "material": f"100-{i:04d}", "quantity": Decimal("12.5"),
                 "unit": "ST"} for n in numbers for i in range(per_order)])
    with engine.begin() as connection:
        connection.exec_driver_sql(f"ANALYZE {header.name}")
        connection.exec_driver_sql(f"ANALYZE {lines.name}")


def reset(engine: sa.Engine, header: sa.Table) -> None:
    with engine.begin() as connection:
        connection.execute(sa.update(header).values(status="new", processed_at=None, message_id=None))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM ANALYZE {header.name}")


def plain_psycopg(url: str, header: str, lines: str, batch: int) -> int:
    """The ceiling: the same claim, documents and marks written by hand with psycopg."""
    import psycopg

    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    documents = 0
    with psycopg.connect(dsn) as connection:
        while True:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.execute(f"SELECT id, po_number, revision, supplier_id, supplier_name, plant, "
                               f"order_date, note, updated_at FROM {header} WHERE status = %s "
                               f"ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED", ("new", batch))
                names = [column.name for column in cursor.description]
                rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
                if not rows:
                    return documents
                cursor.execute(f"SELECT po_id, line_no, material, quantity, unit FROM {lines} "
                               f"WHERE po_id = ANY(%s) ORDER BY po_id, line_no", ([r["id"] for r in rows],))
                line_names = [column.name for column in cursor.description]
                by_order: dict[int, list] = {}
                for line in cursor.fetchall():
                    by_order.setdefault(line[0], []).append(dict(zip(line_names, line, strict=True)))
                marks = []
                for row in rows:
                    body = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}
                    body["lines"] = by_order.get(row["id"], [])
                    jsonfmt.dump_bytes(body)
                    marks.append((str(uuid.uuid5(uuid.NAMESPACE_URL, f"{header}:{row['id']}")), row["id"]))
                cursor.executemany(f"UPDATE {header} SET status = 'done', processed_at = CURRENT_TIMESTAMP, "
                                   f"message_id = %s WHERE id = %s", marks)
                documents += len(rows)


def claim_source(url: str, header: str, lines: str, batch: int, submit, data_dir: Path) -> ClaimSource:
    options = endpoint("source", system="erp_db", table=header, key="id", batch=batch,
                       lines={"table": lines, "key": "po_id", "order_by": "line_no", "field": "lines"},
                       processed_at_column="processed_at", message_id_column="message_id",
                       error_column="error_text")
    source = ClaimSource(options, {"url": url}, "bench-po")
    source.start(SourceContext(route="bench-po", submit=submit, add_url_rule=None, data_dir=data_dir))
    return source


def taking_submit(raw, *, idempotency_key=None, message_id=None) -> Accepted:
    return Accepted((message_id,))


def bus_runtime(broker: str | None, data_dir: Path, route: str):
    """A runtime with the route (sources and consumers off: the bench drives the source), its own
    data dir (fresh idempotency keys)."""
    from esb.config import load_config
    from esb.runtime import Runtime, RuntimeOptions

    data_dir.mkdir(parents=True)
    routes = data_dir / "routes.yaml"
    routes.write_text(f"""version: 1
routes:
  - name: {route}
    from: {{rest: {{auth: none}}}}
    map: {PO_MAPPING}
    validate: purchase_order
    to:
      - file: {{name: wms, dir: out}}
""")
    options = RuntimeOptions(broker_url=broker, data_dir=data_dir / "data", http=False, sources=False,
                             consumers=False)
    return Runtime(load_config(routes), options).start()


def broker_answers(url: str) -> bool:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception:  # any failure: no broker here
        return False
    return True


def timed(case) -> tuple[int, float]:
    started = time.perf_counter()
    documents = case()
    return documents, time.perf_counter() - started


def through_the_bus(url: str, header: str, lines: str, batch: int, broker: str | None,
                    data_dir: Path) -> tuple[int, float]:
    """The claim source with the runtime's submit; the runtime is started before the clock and its
    queues are deleted after."""
    route = "bench-po-" + uuid.uuid4().hex[:6]
    runtime = bus_runtime(broker, data_dir / route, route)
    try:
        source = claim_source(url, header, lines, batch, partial(runtime.submit, route), data_dir)
        return timed(lambda: sum(source.poll_once().values()))
    finally:
        runtime.stop()
        if broker:
            import pika

            connection = pika.BlockingConnection(pika.URLParameters(broker))
            channel = connection.channel()
            for queue in runtime.transport.topology.queues:
                channel.queue_delete(queue.name)
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=2, help="line rows per order")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--url", default=DEFAULT_URL,
                        help="a PostgreSQL database the user may CREATE DATABASE from")
    parser.add_argument("--broker", default=DEFAULT_BROKER, help="RabbitMQ for the bus case (else embedded)")
    parser.add_argument("--no-bus", action="store_true", help="leave out the end-to-end case")
    args = parser.parse_args()

    url = create_database(args.url)
    engine = sa.create_engine(url)
    header, lines = purchase_order_tables(sa.MetaData(), "bench")
    header.metadata.create_all(engine)
    work = Path(tempfile.mkdtemp(prefix="esb-bench-table-"))
    try:
        fill(engine, header, lines, args.orders, args.lines)
        rows_per_document = 1 + args.lines
        cases = {
            "psycopg": lambda: timed(lambda: plain_psycopg(url, header.name, lines.name, args.batch)),
            "claim source, no bus": lambda: timed(lambda: sum(claim_source(
                url, header.name, lines.name, args.batch, taking_submit, work).poll_once().values())),
        }
        if not args.no_bus:
            broker = args.broker if broker_answers(args.broker) else None
            cases[f"claim source, bus ({'RabbitMQ' if broker else 'embedded'})"] = lambda: through_the_bus(
                url, header.name, lines.name, args.batch, broker, work)
        print(f"{args.orders} orders x (1 header + {args.lines} lines), batch {args.batch}, PostgreSQL "
              f"{sa.make_url(url).render_as_string()}")
        best: dict[str, float] = {}
        for round_number in range(1, args.rounds + 1):
            for name, case in cases.items():
                reset(engine, header)
                documents, seconds = case()
                rate = documents / seconds
                best[name] = max(best.get(name, 0.0), rate)
                print(f"  round {round_number} {name:34s} {documents:7d} documents in {seconds:6.2f} s = "
                      f"{rate:8.0f} documents/s, {rate * rows_per_document:8.0f} rows/s")
        ceiling = best["psycopg"]
        print("best of each:")
        for name, rate in best.items():
            print(f"  {name:34s} {rate:8.0f} documents/s  {rate * rows_per_document:8.0f} rows/s  "
                  f"{100 * rate / ceiling:5.1f} % of psycopg")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
    finally:
        engine.dispose()
        from adapters.table.engine import _engines

        for cached in _engines.values():
            cached.dispose()
        drop_database(args.url, url)


if __name__ == "__main__":
    main()
