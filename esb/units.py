"""The items' units as the bus learnt them from the item master: for each sku its base unit and
how many base units one of each other unit holds (`item.uom_conversions[{uom, factor}]`), kept in
the aggregator's state database by the `item_units` destination (`adapters/units.py`).

Reconciliation compares stock in the item's base unit with them: the WMS counts olive oil in
cartons (132 CT), the ERP books it in pieces (1584 EA), and 132 × 12 = 1584 agrees. A unit the
bus knows no factor for is compared as it is.
"""

from __future__ import annotations

import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

from esb.database import Database, transaction

_SCHEMA = """CREATE TABLE IF NOT EXISTS esb_item_unit (
    sku TEXT NOT NULL,
    uom TEXT NOT NULL,
    factor TEXT NOT NULL,
    base_uom TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sku, uom))"""

Conversions = dict[tuple[str, str], tuple[Decimal, str]]
"""{(sku, uom): (base units in one uom, the base uom)}."""


class ItemUnits:
    def __init__(self, target: str | Path):
        self._database = Database(target)
        with closing(self._database.connect()) as connection, \
                self._database.schema_transaction(connection) as cursor:
            cursor.execute(_SCHEMA)

    def record(self, item: dict[str, Any], now: float | None = None) -> int:
        """Keep the units of one `item` payload (they replace what was known of the sku); returns
        how many units it has besides the base unit."""
        now = time.time() if now is None else now
        sku, base = str(item["sku"]), str(item["base_uom"])
        rows = [(sku, str(c["uom"]), str(c["factor"]), base, now) for c in item.get("uom_conversions") or []
                if c.get("uom") and c.get("factor") and str(c["uom"]) != base]
        p = self._database.placeholder
        with closing(self._database.connect()) as connection, transaction(connection) as cursor:
            cursor.execute(f"DELETE FROM esb_item_unit WHERE sku = {p}", (sku,))
            cursor.executemany(f"INSERT INTO esb_item_unit VALUES ({self._database.params(5)})",
                               [(sku, base, "1", base, now), *rows])
        return len(rows)

    def conversions(self) -> Conversions:
        with closing(self._database.connect()) as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT sku, uom, factor, base_uom FROM esb_item_unit")
            return {(sku, uom): (Decimal(factor), base) for sku, uom, factor, base in cursor.fetchall()}
