"""Memory of the flat-file source on a large file: a CSV of N lines (default 1,000,000) goes
through `FileSource.poll` with `per: record`, each record decoded and mapped by a real Mapping
(tests/data/flatfile/stock_lines.in.yaml) in a stand-in `submit` that keeps nothing.

    python -m bench.bench_flatfile [--lines 1000000] [--per record|group] [--no-mapping] [--tracemalloc]

Prints the file size, the time, and the peak memory: the process's peak RSS (getrusage) against
its RSS before the poll, and with --tracemalloc the peak of Python allocations during the poll
(slower). Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from adapters.flatfile import FileSource
from esb.mapping import load_mapping
from esb.plugins import Accepted, SourceContext
from esb.routes import Endpoint

DEFAULT_LINES = 1_000_000
MAPPING = Path(__file__).resolve().parent.parent / "tests" / "data" / "flatfile" / "stock_lines.in.yaml"


def current_rss_kib() -> int:
    """Resident set size now, in KiB (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def write_file(path: Path, lines: int) -> None:
    """A GBK CSV with a header, quoted fields with commas, a quoted newline every 1000th record."""
    with open(path, "wb") as handle:
        handle.write(b"sku,qty,description\r\n")
        for number in range(lines):
            description = '"铸铁砧, 第二行\r\n续"' if number % 1000 == 999 else '"柱塞式起爆器, 红色"'
            handle.write(f"SKU-{number:07d},{number % 97}.5,{description}\r\n".encode("gbk"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES)
    parser.add_argument("--no-mapping", action="store_true", help="count records, do not decode them")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    arguments = parser.parse_args()

    mapping = None if arguments.no_mapping else load_mapping(MAPPING)
    count = 0

    def submit(raw, *, idempotency_key=None) -> Accepted:
        nonlocal count
        if mapping is not None:
            for _ in mapping.run(raw.body):
                pass
        count += 1
        return Accepted(("x",))

    with tempfile.TemporaryDirectory() as temporary:
        inbox = Path(temporary) / "inbox"
        inbox.mkdir()
        path = inbox / "big.csv"
        write_file(path, arguments.lines)
        size = path.stat().st_size
        source = FileSource(Endpoint("file", {"dir": str(inbox), "min_age": 0, "per": "record",
                                              "encoding": "gbk"}), None, "bench")
        source.start(SourceContext(route="bench", submit=submit, add_url_rule=lambda *a, **k: None,
                                   data_dir=Path(temporary) / "data", dead_letter=lambda raw, error: None))
        rss_before = current_rss_kib()
        if arguments.tracemalloc:
            tracemalloc.start()
        started = time.perf_counter()
        source.poll()
        seconds = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1] if arguments.tracemalloc else None
        tracemalloc.stop()
        processed = (inbox / "processed" / "big.csv").exists()

    print(f"file:      {arguments.lines:,} records, {size / 1e6:.1f} MB (GBK, CRLF, quoted fields)")
    print(f"submitted: {count:,} messages ({'decoded and mapped' if mapping else 'counted only'}), "
          f"moved to processed/: {processed}")
    print(f"time:      {seconds:.1f} s, {count / seconds:,.0f} records/s")
    print(f"RSS:       {rss_before / 1024:.1f} MiB before the poll, peak {peak_rss_kib() / 1024:.1f} MiB")
    if traced_peak is not None:
        print(f"Python allocations during the poll, peak: {traced_peak / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
