"""The bus the hostile benchmarks attack, in a process of its own: `tests/hostile/routes.yaml` on
the embedded transport in a temporary directory, default `ESB_HTTP_*` limits (from the
environment, as `esb run` reads them), no consumers."""

from __future__ import annotations

import multiprocessing
import tempfile
from pathlib import Path


def _serve(ready, stop) -> None:
    import logging

    logging.getLogger("esb").setLevel(logging.ERROR)  # every refusal is a warning: thousands here
    from esb.http_server import HttpLimits
    from tests.hostile.conftest import start_hostile_bus

    with tempfile.TemporaryDirectory(prefix="esb-hostile-") as data_dir:
        bus = start_hostile_bus(Path(data_dir), HttpLimits.from_environment())
        ready.put((bus.host, bus.port))
        stop.wait()
        bus.runtime.stop()


class BusProcess:
    """`with BusProcess() as bus:` a running bus; `bus.url`, `bus.host`, `bus.port`, `bus.alive`."""

    def __enter__(self) -> BusProcess:
        context = multiprocessing.get_context("spawn")
        ready, self._stop = context.Queue(), context.Event()
        self._process = context.Process(target=_serve, args=(ready, self._stop), daemon=True)
        self._process.start()
        self.host, self.port = ready.get(timeout=60)
        self.url = f"http://{self.host}:{self.port}"
        return self

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
