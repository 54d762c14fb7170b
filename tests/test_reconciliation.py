"""Book versus shelf, one function: lines compared per item, lot and location with a tolerance,
quantities as Decimal, and the accuracy ratio; also on 100,000-line snapshots."""

from __future__ import annotations

from decimal import Decimal

import pytest

from esb.reconciliation import Tolerance, reconcile
from esb.schemas import default_registry


def snapshot(source: str, lines: list[dict]) -> dict:
    return {"snapshot_id": f"{source.upper()}-WH1-1", "warehouse": "WH1",
            "as_of": "2026-12-01T02:00:00+01:00", "source": source, "lines": lines}


def line(sku: str, quantity, **more) -> dict:
    return {"sku": sku, "quantity": Decimal(str(quantity)), "uom": "EA", **more}


def test_lines_are_compared_per_item_lot_and_location_and_only_differences_are_listed():
    book = snapshot("erp", [line("A", 10, lot="L1", location="X"), line("A", 5, lot="L2", location="X")])
    shelf = snapshot("wms", [line("A", 10, lot="L1", location="X"), line("A", 4, lot="L2", location="X")])

    result = reconcile(book, shelf)

    assert result["lines"] == [{"line_number": 1, "sku": "A", "book_quantity": Decimal(5),
                                "shelf_quantity": Decimal(4), "difference": Decimal(-1), "uom": "EA",
                                "lot": "L2", "location": "X"}]
    assert (result["compared_lines"], result["accuracy"]) == (2, Decimal("0.5"))
    default_registry().validate("inventory_discrepancy", result, 1)


def test_a_book_without_bins_is_compared_with_the_shelf_summed_over_its_bins():
    book = snapshot("erp", [line("A", 12, lot="L1")])
    shelf = snapshot("wms", [line("A", 7, lot="L1", location="X"), line("A", 5, lot="L1", location="Y")])

    result = reconcile(book, shelf)

    assert result["lines"] == [] and result["accuracy"] == 1 and result["compared_lines"] == 1


def test_an_item_only_one_side_has_is_compared_with_zero():
    result = reconcile(snapshot("erp", [line("A", 3)]), snapshot("wms", [line("B", 2)]))

    assert [(x["sku"], x["book_quantity"], x["shelf_quantity"]) for x in result["lines"]] == [
        ("A", 3, 0), ("B", 0, 2)]
    assert result["accuracy"] == 0


def test_a_difference_within_the_absolute_or_the_relative_tolerance_agrees():
    book = snapshot("erp", [line("A", 100), line("B", 1000), line("C", 100)])
    shelf = snapshot("wms", [line("A", Decimal("100.5")), line("B", 990), line("C", 95)])

    result = reconcile(book, shelf, Tolerance(absolute=Decimal(1), relative=Decimal("0.01")))

    assert [x["sku"] for x in result["lines"]] == ["C"]
    assert result["tolerance"] == {"absolute": 1, "relative": Decimal("0.01")}


def test_decimal_quantities_stay_exact():
    book = snapshot("erp", [line("A", "0.3")])
    shelf = snapshot("wms", [line("A", "0.1"), line("A", "0.2", stock_status="damaged")])

    assert reconcile(book, shelf)["lines"] == []


def test_snapshots_of_two_warehouses_are_refused():
    other = {**snapshot("wms", []), "warehouse": "WH2"}

    with pytest.raises(ValueError, match="WH1 cannot be reconciled with shelf stock of WH2"):
        reconcile(snapshot("erp", []), other)


def test_100000_line_snapshots_are_reconciled_with_every_difference_found():
    count = 100_000
    book_lines = [line(f"SKU{i:06d}", i % 500, lot=f"L{i % 7}", location=f"B-{i % 997:03d}")
                  for i in range(count)]
    shelf_lines = [dict(x) for x in book_lines]
    for i in range(0, count, 50):  # 2 % of the lines differ
        shelf_lines[i]["quantity"] += 1

    result = reconcile(snapshot("erp", book_lines), snapshot("wms", shelf_lines))

    assert result["compared_lines"] == count and len(result["lines"]) == count // 50
    assert result["accuracy"] == Decimal("0.98")


def count(lines: list[dict]) -> dict:
    return {"count_number": "CC-1", "warehouse": "WH1", "counted_at": "2026-12-01T14:00:00+01:00",
            "cutoff": "2026-12-01", "lines": [{"line_number": n, **line} for n, line in enumerate(lines, 1)]}


def test_a_stock_count_is_compared_with_the_book_for_the_counted_items_and_bins_only():
    book = snapshot("erp", [line("A", 10, location="X"), line("A", 3, location="Y"),
                            line("B", 7, location="Z"), line("C", 1, location="Q")])
    counted = count([{"sku": "A", "counted_quantity": Decimal(9), "uom": "EA", "location": "X"},
                     {"sku": "B", "counted_quantity": Decimal(7), "uom": "EA", "location": "Z"},
                     {"sku": "D", "counted_quantity": Decimal(2), "uom": "EA", "location": "Z"}])

    result = reconcile(book, counted)

    # A/Y and C were not counted: not compared; D was found where the book has none
    assert [(r["sku"], r["location"], r["book_quantity"], r["shelf_quantity"]) for r in result["lines"]] == [
        ("A", "X", Decimal(10), Decimal(9)), ("D", "Z", Decimal(0), Decimal(2))]
    assert (result["compared_lines"], result["accuracy"]) == (3, Decimal("0.333333"))
    assert (result["shelf_snapshot_id"], result["stock_count_number"], result["cutoff"]) == ("CC-1", "CC-1",
                                                                                             "2026-12-01")
    default_registry().validate("inventory_discrepancy", result, 1)


def test_a_count_against_a_book_without_bins_compares_the_item_summed_over_its_counted_bins():
    book = snapshot("erp", [line("A", 12)])
    counted = count([{"sku": "A", "counted_quantity": Decimal(5), "uom": "EA", "location": "X"},
                     {"sku": "A", "counted_quantity": Decimal(7), "uom": "EA", "location": "Y"}])

    result = reconcile(book, counted)

    assert (result["lines"], result["accuracy"]) == ([], Decimal(1))


def test_lines_are_compared_in_the_items_base_unit_with_the_factors_the_item_master_gave(tmp_path):
    from esb.units import ItemUnits

    units = ItemUnits(tmp_path / "state.sqlite")
    units.record({"sku": "A", "base_uom": "EA", "uom_conversions": [{"uom": "CT", "factor": 12},
                                                                    {"uom": "PX", "factor": 720}]})
    book = snapshot("erp", [line("A", 1584), line("B", 3)])
    shelf = snapshot("wms", [{**line("A", 130), "uom": "CT"}, line("A", 3), {**line("B", 1), "uom": "CT"}])

    result = reconcile(book, shelf, units=units.conversions())

    # A: 130 cartons + 3 pieces = 1563 pieces; B has no factor for CT: compared as it is
    assert [(r["sku"], r["uom"], r["book_quantity"], r["shelf_quantity"]) for r in result["lines"]] == [
        ("A", "EA", Decimal(1584), Decimal(1563)), ("B", "CT", Decimal(0), Decimal(1)),
        ("B", "EA", Decimal(3), Decimal(0))]
    units.record({"sku": "A", "base_uom": "EA", "uom_conversions": []})  # the item changed: no cartons
    assert ("A", "CT") not in units.conversions()
