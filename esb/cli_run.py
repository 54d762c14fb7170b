"""`esb run`: the bus in this process (inbound endpoints, pollers, consumers, monitoring) until
SIGTERM or SIGINT, SIGHUP reloading it. With `--workers N`, N-1 more processes serve the same port
(SO_REUSEPORT: the kernel shares the connections out) and consume the same queues; only the first
runs the pollers. Pauses reach every process through esb.pauses."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path
from typing import Any

from esb.cli import _fail, first_set
from esb.config import Config


def run_bus(args: argparse.Namespace, path: str, config: Config, *, broker_url: str | None,
            data_dir: Path) -> int:
    """Run the bus of `config` (read from `path`) until stopped; the exit status."""
    import signal
    import subprocess
    import threading

    from esb import logs
    from esb.credentials import Credentials
    from esb.transport.errors import TransportError

    try:
        credentials = Credentials.from_environment()
    except (ValueError, OSError) as error:
        return _fail(f"credentials: {error}")
    from esb.http_server import HttpLimits

    try:
        http_limits = HttpLimits.from_environment()
    except ValueError as error:
        return _fail(str(error))
    settings, env = config.settings, os.environ
    first = args.role == "all"
    try:
        workers = int(first_set(args.workers, env.get("ESB_WORKERS"), settings.get("workers"), 1))
    except ValueError:
        return _fail(f"ESB_WORKERS: a number of processes, not {env.get('ESB_WORKERS')!r}")
    if workers < 1:
        return _fail(f"--workers: at least 1, not {workers}")
    if workers > 1 and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes: each writes its metrics there and /metrics sums them. It must be set
        # before prometheus_client is first imported (by esb.runtime), and the workers inherit it.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(data_dir / "prometheus")
        (data_dir / "prometheus").mkdir(parents=True, exist_ok=True)
    from esb import metrics
    from esb.monitoring import create_app
    from esb.runtime import Runtime, RuntimeOptions

    if first:
        from esb.pauses import forget_pauses

        metrics.clear_multiprocess_dir()
        forget_pauses(data_dir)
    options = RuntimeOptions(
        broker_url=broker_url,
        data_dir=data_dir,
        host=first_set(args.host, env.get("ESB_HTTP_HOST"), settings.get("http_host"), "127.0.0.1"),
        port=int(first_set(args.port, env.get("ESB_HTTP_PORT"), settings.get("http_port"), 8080)),
        pollers=first, workers=workers > 1,
        journal=settings.get("journal"), credentials=credentials,
        http_limits=http_limits,
    )
    logs.configure(env.get("ESB_LOG_LEVEL", "INFO"))
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    try:
        runtime = Runtime(config, options)
        runtime.start(app=create_app(runtime) if options.http else None)
    except TransportError as error:
        return _fail(str(error))
    # What start-up made (modules, schemas, compiled mappings) lives as long as the process: out of
    # the garbage collector's sight, its collections walk only what messages allocate (measured:
    # the collector was 8 % of the HTTP loop's CPU before).
    gc.freeze()
    from esb.audit import AUDIT_FILE_NAME, AuditLog
    from esb.reload import Reloader

    # every process reloads its own runtime; the first one passes SIGHUP on to its workers
    reloader = Reloader(runtime, path, AuditLog(data_dir / AUDIT_FILE_NAME), watch=args.watch).start()
    children: list[subprocess.Popen] = []

    def hang_up(*_: Any) -> None:
        reloader.request()
        for child in children:
            child.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGHUP, hang_up)
    # the workers listen where the first one does (its port, also when 0 picked one)
    children += [subprocess.Popen([sys.executable, "-m", "esb", "run", "-c", path, "--role", "worker",
                                   "--workers", str(workers), "--host", options.host,
                                   "--port", str(runtime.server.port if runtime.server else options.port),
                                   *(["--broker", args.broker] if args.broker else []),
                                   *(["--watch"] if args.watch else [])])
                 for _ in range(workers - 1) if first]
    if runtime.server is not None:
        print(f"esb: listening on {runtime.server.url}", file=sys.stderr, flush=True)
    stop.wait()
    reloader.stop()
    for child in children:
        child.terminate()
    runtime.stop()
    for child in children:
        child.wait(30)
        metrics.process_exited(child.pid)
    return 0
