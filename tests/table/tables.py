"""The interface tables the tests use (an ERP's purchase-order and goods-receipt staging tables),
a stand-in for the runtime's `submit` that runs the real pipeline, and endpoint options with the
adapter's defaults."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from esb import jsonfmt
from esb.config.schema import role_schema
from esb.durations import parse_duration
from esb.errors import Unavailable
from esb.mapping import load_mapping
from esb.pipeline import InboundPipeline
from esb.plugins import Accepted, SourceContext, get_adapter
from esb.retry import RetryPolicy
from esb.routes import Destination, Endpoint, Route
from esb.schemas import default_registry
from tests.conftest import PROJECT

PO_MAPPING = PROJECT / "mappings" / "erp" / "purchase_order.table.in.yaml"
GR_MAPPING = PROJECT / "mappings" / "erp" / "goods_receipt.table.out.yaml"


def endpoint(role: str = "source", **options: Any) -> Endpoint:
    """A table endpoint as the checker builds it: every option present, durations in seconds."""
    schema = role_schema(get_adapter("table"), role)
    filled = {key: option["default"] for key, option in schema["properties"].items() if "default" in option}
    filled.update(options)
    if role == "source":
        filled["poll"] = parse_duration(filled["poll"])
    return Endpoint("table", filled)


def system(url: str) -> dict[str, Any]:
    return {"url": url, "pool_size": 5, "connect_timeout": 5}


def purchase_order_tables(metadata: sa.MetaData, suffix: str) -> tuple[sa.Table, sa.Table]:
    header = sa.Table(
        f"po_header_{suffix}", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("po_number", sa.String(20), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
        sa.Column("supplier_id", sa.String(20)),
        sa.Column("supplier_name", sa.String(80)),
        sa.Column("plant", sa.String(10)),
        sa.Column("order_date", sa.Date),
        sa.Column("note", sa.String(200)),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("status", sa.String(10), nullable=False, server_default="new", index=True),
        sa.Column("processed_at", sa.DateTime),
        sa.Column("message_id", sa.String(36)),
        sa.Column("error_text", sa.String(300)),
    )
    lines = sa.Table(
        f"po_line_{suffix}", metadata,
        sa.Column("po_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("line_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("material", sa.String(20), nullable=False),
        sa.Column("quantity", sa.Numeric(12, 3), nullable=False),
        sa.Column("unit", sa.String(5), nullable=False),
    )
    return header, lines


@dataclass
class PurchaseOrders:
    """An ERP's purchase-order interface tables in a test database."""

    url: str
    engine: sa.Engine
    header: sa.Table
    lines: sa.Table

    @classmethod
    def create(cls, url: str) -> PurchaseOrders:
        engine = sa.create_engine(url)
        metadata = sa.MetaData()
        header, lines = purchase_order_tables(metadata, uuid.uuid4().hex[:8])
        metadata.create_all(engine)
        return cls(url, engine, header, lines)

    def drop(self) -> None:
        self.lines.drop(self.engine)
        self.header.drop(self.engine)
        self.engine.dispose()

    def source(self, **options: Any) -> Endpoint:
        defaults = {"system": "erp_db", "table": self.header.name, "key": "id",
                    "lines": {"table": self.lines.name, "key": "po_id", "order_by": "line_no",
                              "field": "lines"},
                    "processed_at_column": "processed_at", "message_id_column": "message_id",
                    "error_column": "error_text", "batch": 10}
        return endpoint("source", **{**defaults, **options})

    def add(self, first: int, count: int = 1, *, plant: str | None = "1000", lines: int = 2,
            updated_at=None) -> None:
        """Orders first..first+count-1, each with `lines` lines; `plant=None` makes them unmappable."""
        with self.engine.begin() as connection:
            connection.execute(sa.insert(self.header), [
                {"id": n, "po_number": f"45{n:08d}", "supplier_id": "0000100020", "supplier_name": "Oleifici",
                 "plant": plant, "order_date": date(2026, 11, 24), "updated_at": updated_at}
                for n in range(first, first + count)])
            connection.execute(sa.insert(self.lines), [
                {"po_id": n, "line_no": 10 * (i + 1), "material": f"100-{i:04d}", "quantity": Decimal("12.5"),
                 "unit": "ST"}
                for n in range(first, first + count) for i in range(lines)])

    def rows(self) -> dict[int, dict[str, Any]]:
        with self.engine.connect() as connection:
            return {row.id: dict(row._mapping) for row in connection.execute(sa.select(self.header))}


def po_route(name: str = "erp-po") -> Route:
    return Route(name=name, source=Endpoint("table", {"system": "erp_db"}),
                 destinations=(Destination("wms", Endpoint("rest", {"system": "wms"})),),
                 map=str(PO_MAPPING), validate="purchase_order", retry=RetryPolicy())


@dataclass
class Bus:
    """What the runtime gives a source, without a broker: the real pipeline (mapping and
    validation), idempotency by key, and a record of what was stored. `unavailable_after` makes
    the bus refuse to store (Unavailable) once that many messages are stored."""

    pipeline: InboundPipeline = field(default_factory=lambda: InboundPipeline(
        po_route(), mapping=load_mapping(str(PO_MAPPING)), validate=default_registry().validate,
        source="erp"))
    stored: list[Any] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    dead: list[tuple[dict, Exception]] = field(default_factory=list)
    unavailable_after: int | None = None
    delay: float = 0.0  # seconds each submit takes (holds a claimed batch a while)
    calls: list[str] = field(default_factory=list)  # the idempotency key of every submit
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, raw, *, idempotency_key=None, message_id=None) -> Accepted:
        prepared = self.pipeline.prepare(raw.body, idempotency_key=idempotency_key, message_id=message_id)
        if self.delay:
            threading.Event().wait(self.delay)
        with self.lock:
            self.calls.append(idempotency_key)
            if idempotency_key in self.keys:
                return Accepted((self.keys[idempotency_key],), duplicate=True)
            if self.unavailable_after is not None and len(self.stored) >= self.unavailable_after:
                raise Unavailable("the broker is down (test)")
            envelope = prepared[0].envelope
            self.keys[idempotency_key] = envelope.id
            self.stored.append(envelope)
            return Accepted((envelope.id,))

    def dead_letter(self, raw, error) -> None:
        self.dead.append((jsonfmt.loads(raw.body), error))

    def context(self, data_dir) -> SourceContext:
        return SourceContext(route="erp-po", submit=self.submit, add_url_rule=None, data_dir=data_dir,
                             dead_letter=self.dead_letter)
