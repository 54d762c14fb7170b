"""Memory and speed of the flat-file source on a large file.

Without --runtime: a CSV of N lines (default 1,000,000) goes through `FileSource.poll` with `per:
record`, each record decoded and mapped by a real Mapping (tests/data/flatfile/stock_lines.in.yaml)
in a stand-in `submit` that keeps nothing (no broker: the reader's and the mapping's own cost).

With --runtime: a GBK goods-receipt export of N one-line receipts (`per: group`, the shipped WMS
mapping) goes through a real `Runtime.submit` (map, validate, idempotency keys, journal, publish
confirmed) on the embedded transport, or on RabbitMQ with --broker-url; --in-flight sets the file
source's window (1: one confirm at a time, as before the window). Its queue is deleted afterwards.

    python -m bench.bench_flatfile [--lines 1000000] [--no-mapping] [--tracemalloc]
    python -m bench.bench_flatfile --runtime --lines 5000 [--in-flight 1|64|256] [--broker-url amqp://...]

Prints the file size, the time, and the peak memory: the process's peak RSS (getrusage) against
its RSS before the poll, and with --tracemalloc the peak of Python allocations during the poll
(slower). Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from functools import partial
from pathlib import Path

from adapters.flatfile import FileSource
from adapters.flatfile.window import DEFAULT_IN_FLIGHT
from esb.config import load_config
from esb.mapping import load_mapping
from esb.plugins import Accepted, SourceContext
from esb.routes import Endpoint
from esb.runtime import Runtime, RuntimeOptions

DEFAULT_LINES = 1_000_000
PROJECT = Path(__file__).resolve().parent.parent
MAPPING = PROJECT / "tests" / "data" / "flatfile" / "stock_lines.in.yaml"
RECEIPT_MAPPING = PROJECT / "mappings" / "wms" / "goods_receipt.in.yaml"
RECEIPT_CASE = PROJECT / "mappings" / "wms" / "goods_receipt.in.cases" / "two_receipts_gbk.input.csv"
ROUTES = """
version: 1
routes:
  - name: {route}
    from: {{file: {{dir: "{inbox}", encoding: gbk, per: group, group_by: receipt_no, min_age: 0,
                   in_flight: {in_flight}}}}}
    map: "{mapping}"
    validate: goods_receipt
    to:
      - file: {{dir: "{out}", format: json}}
"""


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


def write_receipts(path: Path, count: int) -> None:
    """A GBK goods-receipt export of `count` one-line receipts (the shipped case's first line)."""
    header, first = RECEIPT_CASE.read_bytes().split(b"\n")[:2]
    with open(path, "wb") as handle:
        handle.write(header + b"\n")
        for number in range(1, count + 1):
            handle.write(first.replace(b"GR-2026-000123", b"GR-2026-%06d" % number) + b"\n")


def run_on_runtime(arguments: argparse.Namespace) -> None:
    """The file source submitting through a real Runtime (see the module docstring)."""
    route = "benchfile" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        inbox = directory / "inbox"
        inbox.mkdir()
        routes = directory / "routes.yaml"
        routes.write_text(ROUTES.format(route=route, inbox=inbox, out=directory / "out",
                                        mapping=RECEIPT_MAPPING, in_flight=arguments.in_flight))
        write_receipts(inbox / "GR_big.csv", arguments.lines)
        size = (inbox / "GR_big.csv").stat().st_size
        config = load_config(routes)
        runtime = Runtime(config, RuntimeOptions(broker_url=arguments.broker_url, data_dir=directory / "data",
                                                 http=False, sources=False, consumers=False)).start()
        try:
            source = FileSource(config.route(route).source, None, route)
            submit = partial(runtime.submit, route, record_rejection=False)
            source.start(SourceContext(route=route, submit=submit, add_url_rule=lambda *a, **k: None,
                                       data_dir=directory / "data",
                                       dead_letter=partial(runtime.dead_letter, route)))
            rss_before = current_rss_kib()
            started = time.perf_counter()
            source.poll()
            seconds = time.perf_counter() - started
            processed = (inbox / "processed" / "GR_big.csv").exists()
        finally:
            runtime.stop()
            if arguments.broker_url:
                delete_queues(arguments.broker_url, config)
    where = "RabbitMQ" if arguments.broker_url else "the embedded transport"
    print(f"file:      {arguments.lines:,} one-line receipts, {size / 1e6:.1f} MB (GBK), per: group")
    print(f"runtime:   map, validate, publish confirmed on {where}; in_flight {arguments.in_flight}; "
          f"moved to processed/: {processed}")
    print(f"time:      {seconds:.1f} s, {arguments.lines / seconds:,.0f} receipts/s")
    print(f"RSS:       {rss_before / 1024:.1f} MiB before the poll, peak {peak_rss_kib() / 1024:.1f} MiB")


def delete_queues(broker_url: str, config) -> None:
    import pika

    from esb.transport.topology import Topology

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in Topology.from_routes(config.routes).queues:
        channel.queue_delete(queue.name)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES)
    parser.add_argument("--no-mapping", action="store_true", help="count records, do not decode them")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--runtime", action="store_true", help="submit through a real Runtime (see above)")
    parser.add_argument("--in-flight", type=int, default=DEFAULT_IN_FLIGHT, help="the file source's window")
    parser.add_argument("--broker-url", default=os.environ.get("ESB_BROKER_URL"),
                        help="with --runtime: RabbitMQ (default: ESB_BROKER_URL; else embedded)")
    arguments = parser.parse_args()
    if arguments.runtime:
        run_on_runtime(arguments)
        return

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
        options = {"dir": str(inbox), "min_age": 0, "per": "record", "encoding": "gbk",
                   "in_flight": arguments.in_flight}
        source = FileSource(Endpoint("file", options), None, "bench")
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
