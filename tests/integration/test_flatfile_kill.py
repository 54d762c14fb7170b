"""kill -9 of a real `esb run` while its file source has a window of receipts in flight (RabbitMQ):
the next process resumes the claimed file and every receipt of it reaches the target exactly once,
under one message id, none lost and none stored twice."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika
import pytest

from esb.config import load_config
from esb.transport.topology import Topology
from tests.conftest import PROJECT
from tests.integration.test_flatfile_runtime import wait_for

pytestmark = pytest.mark.broker

CASE = PROJECT / "mappings" / "wms" / "goods_receipt.in.cases" / "two_receipts_gbk.input.csv"
RECEIPTS = 2000

ROUTES = """
version: 1
settings: {{broker_url: "{broker_url}", data_dir: data}}
routes:
  - name: {route}
    from: {{file: {{dir: inbox, pattern: "GR_*.csv", encoding: gbk, per: group, group_by: receipt_no,
                   in_flight: 64, min_age: 0, poll: 200ms}}}}
    map: {mapping}
    validate: goods_receipt
    to:
      - file: {{dir: out, format: json}}
"""


def receipts_file(path: Path, count: int) -> list[str]:
    """A GBK export of `count` one-line receipts (the shipped case's first line, renumbered)."""
    header, first = CASE.read_bytes().split(b"\n")[:2]
    numbers = [f"GR-2026-{number:06d}" for number in range(1, count + 1)]
    rows = b"".join(first.replace(b"GR-2026-000123", number.encode()) + b"\n" for number in numbers)
    temporary = path.with_name("." + path.name)
    temporary.write_bytes(header + b"\n" + rows)
    temporary.rename(path)  # min_age: 0 takes files renamed into place
    return numbers


class EsbRun:
    """`esb run` as a process of its own, started and killed by the test."""

    def __init__(self, routes: Path):
        self.routes = routes
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESB_")},
                    "ESB_LOG_LEVEL": "WARNING"}
        self.log = (routes.parent / "bus.log").open("a")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> EsbRun:
        command = [sys.executable, "-m", "esb", "run", "-c", str(self.routes), "--port", "0"]
        self.process = subprocess.Popen(command, env=self.env, stderr=subprocess.PIPE, text=True,
                                        cwd=self.routes.parent)
        deadline = time.monotonic() + timeout
        for line in self.process.stderr:
            self.log.write(line)
            if re.search(r"listening on http://", line):
                threading.Thread(target=self._copy_log, args=(self.process,), daemon=True).start()
                return self
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"esb run did not start; see {self.routes.parent / 'bus.log'}")

    def _copy_log(self, process: subprocess.Popen) -> None:
        try:
            for line in process.stderr:
                self.log.write(line)
        except ValueError:  # the log was closed
            pass

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


@pytest.fixture
def routes(tmp_path, unique_name, broker_url):
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES.format(broker_url=broker_url, route=unique_name,
                                  mapping=PROJECT / "mappings" / "wms" / "goods_receipt.in.yaml"))
    yield path
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in Topology.from_routes(load_config(path).routes).queues:
        channel.queue_delete(queue.name)
    connection.close()


def written_receipts(out: Path) -> list[str]:
    return [json.loads(path.read_text(encoding="utf-8"))["receipt_number"] for path in out.glob("*.json")]


def test_kill_9_in_the_middle_of_a_file_resumes_it_and_each_receipt_arrives_once(routes, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    bus = EsbRun(routes).start()
    try:
        numbers = receipts_file(inbox / "GR_big.csv", RECEIPTS)
        wait_for(lambda: out.is_dir() and len(list(out.glob("*.json"))) >= RECEIPTS // 5, timeout=60)
        bus.kill9()
        at_the_kill = len(list(out.glob("*.json")))
        bus.start()
        wait_for(lambda: (inbox / "processed" / "GR_big.csv").exists(), timeout=120)
        wait_for(lambda: len(list(out.glob("*.json"))) >= RECEIPTS, timeout=60)
        time.sleep(1.0)  # anything delivered twice would arrive now
    finally:
        bus.stop()

    receipts = written_receipts(out)
    assert at_the_kill < RECEIPTS, "the file was done before the kill: the test proved nothing"
    assert sorted(receipts) == numbers  # each once: a second message id would be a second file
    assert not list((inbox / ".claimed").iterdir()) and not (inbox / "error").exists()
