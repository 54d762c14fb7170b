"""Book versus shelf: compare the ERP's book stock with the WMS's shelf stock (two
`inventory_snapshot` payloads of one warehouse and cut-off) and make an `inventory_discrepancy`.

Lines are compared per (sku, lot, location, uom), in the item's base unit when the bus knows its
conversion factors (`esb.units`: 132 CT of an item of 12 EA a carton are 1584 EA); quantities of
the same key (several stock statuses) are summed. The ERP's book stock often knows no bins: when
one side gives no location on any line, locations are left out of the comparison on both sides
(the same for lots), so the shelf's bins are summed per item and lot. A key only one side has is
compared with zero. Book and shelf agree when `|shelf - book| <= absolute` or
`<= relative * |book|` (default: exactly). `accuracy` is the share of compared keys that agree
(1 when nothing was compared). Quantities stay `Decimal` throughout.

The shelf side may be a `stock_count` instead of a whole snapshot (a cycle count): its counted
quantities are the shelf stock, and only the keys it counted are compared (the book's other items
are not "missing on the shelf", they were not counted). Against a book without bins, an item is
compared summed over the bins counted: count every bin of an item, or its uncounted bins show as
a difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from esb.units import Conversions

ACCURACY_PLACES = Decimal("0.000001")
"""Accuracy is rounded to six decimals (0.975 is 97.5 %)."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    absolute: Decimal = Decimal(0)
    relative: Decimal = Decimal(0)

    @classmethod
    def from_options(cls, options: dict | None) -> Tolerance:
        options = options or {}
        return cls(absolute=Decimal(str(options.get("absolute", 0))),
                   relative=Decimal(str(options.get("relative", 0))))

    def agrees(self, book: Decimal, shelf: Decimal) -> bool:
        if book == shelf:
            return True
        difference = abs(shelf - book)
        return difference <= self.absolute or difference <= self.relative * abs(book)

    def as_dict(self) -> dict[str, Decimal]:
        return {"absolute": self.absolute, **({"relative": self.relative} if self.relative else {})}


def _has(lines: list[dict], field: str) -> bool:
    return any(line.get(field) not in (None, "") for line in lines)


def _totals(lines: list[dict], use_lot: bool, use_location: bool,
            units: Conversions | None = None) -> dict[tuple, Decimal]:
    totals: dict[tuple, Decimal] = {}
    for line in lines:
        quantity = line["quantity"]
        quantity = quantity if isinstance(quantity, Decimal) else Decimal(str(quantity))
        uom = line["uom"]
        if units:
            known = units.get((line["sku"], uom))
            if known is not None:
                quantity, uom = quantity * known[0], known[1]
        key = (line["sku"], line.get("lot") if use_lot else None,
               line.get("location") if use_location else None, uom)
        totals[key] = totals.get(key, Decimal(0)) + quantity
    return totals


def _sort_key(key: tuple) -> tuple:
    return tuple("" if part is None else part for part in key)


def reconcile(book: dict[str, Any], shelf: dict[str, Any],
              tolerance: Tolerance | None = None, units: Conversions | None = None) -> dict[str, Any]:
    """The `inventory_discrepancy` payload of two `inventory_snapshot` payloads (or a snapshot and
    a `stock_count`); raises ValueError when they are of different warehouses. With `units`
    (`esb.units`), each line is compared in its item's base unit where the factor is known."""
    tolerance = tolerance or Tolerance()
    count_number = shelf.get("count_number")
    if count_number is not None:
        shelf = counted_stock(shelf)
    if book.get("warehouse") != shelf.get("warehouse"):
        raise ValueError(f"book stock of {book.get('warehouse')} cannot be reconciled with shelf stock "
                         f"of {shelf.get('warehouse')}")
    book_lines, shelf_lines = book.get("lines") or [], shelf.get("lines") or []
    use_lot = _has(book_lines, "lot") and _has(shelf_lines, "lot")
    use_location = _has(book_lines, "location") and _has(shelf_lines, "location")
    book_totals = _totals(book_lines, use_lot, use_location, units)
    shelf_totals = _totals(shelf_lines, use_lot, use_location, units)
    keys = shelf_totals.keys() if count_number is not None else book_totals.keys() | shelf_totals.keys()
    zero = Decimal(0)
    disagreeing = [key for key in keys
                   if not tolerance.agrees(book_totals.get(key, zero), shelf_totals.get(key, zero))]
    differing = []
    for sku, lot, location, uom in sorted(disagreeing, key=_sort_key):
        book_quantity = book_totals.get((sku, lot, location, uom), zero)
        shelf_quantity = shelf_totals.get((sku, lot, location, uom), zero)
        line = {"line_number": len(differing) + 1, "sku": sku, "book_quantity": book_quantity,
                "shelf_quantity": shelf_quantity, "difference": shelf_quantity - book_quantity, "uom": uom}
        if lot is not None:
            line["lot"] = lot
        if location is not None:
            line["location"] = location
        differing.append(line)
    compared = len(keys)
    accuracy = (Decimal(compared - len(differing)) / Decimal(compared)).quantize(ACCURACY_PLACES) \
        if compared else Decimal(1)
    cutoff = shelf.get("cutoff") or book.get("cutoff")
    return {"warehouse": shelf["warehouse"], "as_of": shelf.get("as_of") or book.get("as_of"),
            **({"cutoff": cutoff} if cutoff else {}),
            "book_snapshot_id": book["snapshot_id"], "shelf_snapshot_id": shelf["snapshot_id"],
            **({"stock_count_number": count_number} if count_number is not None else {}),
            "accuracy": accuracy, "compared_lines": compared, "tolerance": tolerance.as_dict(),
            "lines": differing}


def counted_stock(count: dict[str, Any]) -> dict[str, Any]:
    """A `stock_count` as the shelf snapshot of what it counted (its counted quantities)."""
    lines = []
    for line in count.get("lines") or []:
        stock = {"sku": line["sku"], "quantity": line["counted_quantity"], "uom": line["uom"]}
        stock.update({key: line[key] for key in ("lot", "location") if line.get(key) not in (None, "")})
        lines.append(stock)
    return {"snapshot_id": count["count_number"], "warehouse": count.get("warehouse"),
            "as_of": count.get("counted_at"), "cutoff": count.get("cutoff"), "lines": lines}
