"""One bus node for the interface-table tests, as a process of its own: the route's sources and
pollers only (no consumers, no HTTP), so the messages it publishes stay in their queues to be
counted. `--die-before-mark` kills the process with SIGKILL when a claim source is about to mark
its first batch, after the batch's messages were published and confirmed.

    python -m tests.table.node ROUTES DATA_DIR [--die-before-mark]

Runs until SIGTERM; prints "ready" once started.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path


def main(argv: list[str]) -> int:
    routes, data_dir, *flags = argv
    from adapters.table.claim_source import ClaimSource
    from esb.config import load_config
    from esb.runtime import Runtime, RuntimeOptions

    if "--die-before-mark" in flags:
        def die(*_arguments):
            os.kill(os.getpid(), signal.SIGKILL)

        ClaimSource._mark = die
    config = load_config(routes)
    options = RuntimeOptions(broker_url=config.settings["broker_url"], data_dir=Path(data_dir), http=False,
                             consumers=False)
    runtime = Runtime(config, options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runtime.start()
    print("ready", flush=True)
    stop.wait()
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
