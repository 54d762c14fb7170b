"""Time and peak memory of reconciling book against shelf stock on large snapshots.

    python -m bench.bench_reconciliation [--lines 100000] [--differ 0.02]

Two `inventory_snapshot` payloads of `--lines` lines each (sku, lot, location; a share `--differ`
of the shelf lines off by one), then, as the bus does it:

- `store both parts`: `AggregationStore.add_part` of each side into SQLite (a temporary file);
- `claim the group`: `claim_due`, which reads both parts back (JSON with Decimal quantities);
- `reconcile`: `esb.reconciliation.reconcile`;
- `validate + encode`: the discrepancy checked against its schema and written as JSON;
- baseline: a plain dict comparison of the same lines with floats, no tolerance, no output.

Prints seconds per step, the peak memory traced by `tracemalloc` during `reconcile` (a second run,
since tracing slows it down) and the process's peak RSS. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

from esb import jsonfmt
from esb.aggregator import AggregationStore
from esb.reconciliation import Tolerance, reconcile
from esb.schemas import default_registry


def snapshots(count: int, differ: float) -> tuple[dict, dict]:
    lines = [{"sku": f"SKU{i:06d}", "quantity": Decimal(i % 500), "uom": "EA", "lot": f"L{i % 7}",
              "location": f"B-{i % 997:03d}"} for i in range(count)]
    shelf = [dict(line) for line in lines]
    step = max(1, round(1 / differ)) if differ else count + 1
    for i in range(0, count, step):
        shelf[i]["quantity"] += 1
    head = {"warehouse": "WH1", "as_of": "2026-12-01T02:00:00+01:00"}
    return ({**head, "snapshot_id": "ERP-1", "source": "erp", "lines": lines},
            {**head, "snapshot_id": "WMS-1", "source": "wms", "lines": shelf})


def baseline(book: dict, shelf: dict) -> int:
    books = {(x["sku"], x["lot"], x["location"]): float(x["quantity"]) for x in book["lines"]}
    shelves = {(x["sku"], x["lot"], x["location"]): float(x["quantity"]) for x in shelf["lines"]}
    return sum(1 for key in books.keys() | shelves.keys() if books.get(key, 0.0) != shelves.get(key, 0.0))


def timed(label: str, action):
    started = time.perf_counter()
    result = action()
    print(f"{label:<22} {time.perf_counter() - started:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--differ", type=float, default=0.02)
    arguments = parser.parse_args()
    book, shelf = snapshots(arguments.lines, arguments.differ)
    print(f"{arguments.lines:,} lines per side, {arguments.differ:.0%} of them differing")
    with tempfile.TemporaryDirectory() as directory:
        store = AggregationStore(Path(directory) / "state.sqlite")
        timed("store both parts", lambda: (store.add_part("bench", "WH1", "book", "m1", book),
                                           store.add_part("bench", "WH1", "shelf", "m2", shelf)))
        (group,) = timed("claim the group", lambda: store.claim_due("bench", ("book", "shelf"), 3600))
    tolerance = Tolerance()
    result = timed("reconcile", lambda: reconcile(group.parts["book"], group.parts["shelf"], tolerance))
    registry = default_registry()
    timed("validate + encode", lambda: (registry.validate("inventory_discrepancy", result, 1),
                                         jsonfmt.dump_bytes(result)))
    differing = timed("baseline (floats)", lambda: baseline(book, shelf))
    tracemalloc.start()
    reconcile(group.parts["book"], group.parts["shelf"], tolerance)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"differing lines: {len(result['lines']):,} (baseline {differing:,}), "
          f"accuracy {result['accuracy']}")
    print(f"peak traced memory of reconcile: {peak / 1e6:.1f} MB; "
          f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
