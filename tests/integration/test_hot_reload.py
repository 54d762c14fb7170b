"""Hot reload of a real `esb run` process (embedded transport): SIGHUP swaps in a changed mapping
once `esb check` passes on it; a broken one is refused, logged and audited, and the old one keeps
working."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT

MAPPING = PROJECT / "mappings" / "wms" / "stock_count.in.yaml"
COUNT = PROJECT / "mappings" / "wms" / "stock_count.in.cases" / "cycle_count_with_an_empty_bin.input.json"
ROUTES = """\
version: 1
settings: {{data_dir: "{data}"}}
routes:
  - name: counts
    from:
      rest: {{format: json, auth: none}}
    map: counts.in.yaml
    validate: stock_count
    to:
      - file: {{name: out, dir: "{out}", name_template: "{{id}}.json", format: json}}
"""


class Bus:
    def __init__(self, tmp_path: Path, *flags: str):
        self.out, self.data, self.mapping = tmp_path / "out", tmp_path / "data", tmp_path / "counts.in.yaml"
        self.out.mkdir()
        shutil.copy(MAPPING, self.mapping)
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(data=self.data, out=self.out), encoding="utf-8")
        env = {**os.environ, "ESB_BROKER_URL": "", "ESB_LOG_LEVEL": "INFO"}
        self.process = subprocess.Popen([sys.executable, "-m", "esb", "run", "-c", str(routes), "--port", "0",
                                         *flags], env=env, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.posted = 0
        self.url = self._listening_url()

    def _listening_url(self) -> str:
        for line in self.process.stderr:
            self.lines.append(line)
            if "listening on " in line:
                threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True).start()
                return line.rsplit("listening on ", 1)[1].strip()
        raise AssertionError(f"esb run exited with {self.process.wait()}: {''.join(self.lines)}")

    def post_count(self) -> dict:
        """Post the cycle count; the document the file destination wrote for it."""
        before = set(self.out.glob("*.json"))
        self.posted += 1  # a new count number each time: the same one would be answered as a duplicate
        body = json.dumps({**json.loads(COUNT.read_bytes()), "countId": f"CC-{self.posted}"}).encode()
        request = urllib.request.Request(f"{self.url}/in/counts", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
        written = _until(lambda: set(self.out.glob("*.json")) - before)
        return json.loads(next(iter(written)).read_text(encoding="utf-8"))

    def audit(self) -> list[dict]:
        path = self.data / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def reloads_after(self, count: int) -> dict:
        return _until(lambda: self.audit()[count:] and self.audit()[count])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0


def _until(probe, deadline: float = 30.0):
    """The first truthy answer of `probe` (polled); fails after `deadline` seconds without one."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if value := probe():
            return value
        time.sleep(0.05)
    raise AssertionError("nothing came in time")


@pytest.fixture
def bus(tmp_path):
    running = []

    def start(*flags: str) -> Bus:
        running.append(Bus(tmp_path, *flags))
        return running[-1]

    yield start
    for one in running:
        if one.process.poll() is None:
            one.stop()


def _with_site_table(mapping: Path, warehouse: str) -> None:
    text = mapping.read_text(encoding="utf-8")
    assert "    KS01: WH1\n" in text
    mapping.write_text(text.replace("    KS01: WH1\n", f"    KS01: {warehouse}\n"), encoding="utf-8")


def test_sighup_swaps_a_changed_mapping_in_and_refuses_a_broken_one(bus):
    run = bus()
    assert run.post_count()["warehouse"] == "WH1"

    _with_site_table(run.mapping, "WH2")
    run.process.send_signal(signal.SIGHUP)
    entry = run.reloads_after(0)
    assert entry["action"] == "reload" and entry["outcome"] == {"ok": True, "problems": []}
    assert run.post_count()["warehouse"] == "WH2"

    good = run.mapping.read_text(encoding="utf-8")
    run.mapping.write_text(good.replace("table: warehouse_of_site", "table: warehouse_of_no_site"),
                           encoding="utf-8")
    run.process.send_signal(signal.SIGHUP)
    refused = run.reloads_after(1)
    assert refused["outcome"]["ok"] is False
    assert any("warehouse_of_no_site" in problem for problem in refused["outcome"]["problems"])
    assert run.post_count()["warehouse"] == "WH2"  # the old mapping still runs
    _until(lambda: any("reload refused" in line and "warehouse_of_no_site" in line for line in run.lines))


def test_watch_reloads_on_change_and_refuses_what_needs_a_restart(bus):
    run = bus("--watch")
    _with_site_table(run.mapping, "WH2")
    assert run.reloads_after(0)["outcome"]["ok"] is True
    assert run.post_count()["warehouse"] == "WH2"

    routes = run.mapping.with_name("routes.yaml")
    routes.write_text(routes.read_text(encoding="utf-8").replace("name: counts", "name: counts2"),
                      encoding="utf-8")
    refused = run.reloads_after(1)
    assert refused["outcome"]["ok"] is False
    assert "needs a restart: the routes changed (counts, counts2)" in refused["outcome"]["problems"]
    assert run.post_count()["warehouse"] == "WH2"


def test_a_message_in_hand_during_a_reload_is_delivered_once_as_it_was_mapped(tmp_path):
    from esb.config import load_config
    from esb.plugins import RawMessage, Sink
    from esb.runtime import Runtime, RuntimeOptions

    held, release, delivered = threading.Event(), threading.Event(), []
    JSON = "application/json"  # noqa: N806

    class HoldingSink(Sink):
        def deliver(self, envelope, body, content_type):
            held.set()
            assert release.wait(30)
            document = json.loads(body)
            delivered.append((document["count_number"], document["warehouse"]))

    class HoldingRuntime(Runtime):
        def _make_sink(self, route, destination):
            return HoldingSink()

    (tmp_path / "out").mkdir()
    mapping = tmp_path / "counts.in.yaml"
    shutil.copy(MAPPING, mapping)
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(data=tmp_path / "data", out=tmp_path / "out"), encoding="utf-8")
    options = RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", http=False, sources=False)
    runtime = HoldingRuntime(load_config(routes), options).start()
    try:
        count = json.loads(COUNT.read_bytes())
        runtime.submit("counts", RawMessage(json.dumps({**count, "countId": "A"}).encode(), JSON))
        assert held.wait(30)  # message A is in the sink
        _with_site_table(mapping, "WH2")
        runtime.reload(load_config(routes))
        runtime.submit("counts", RawMessage(json.dumps({**count, "countId": "B"}).encode(), JSON))
        release.set()
        _until(lambda: len(delivered) == 2)
    finally:
        runtime.stop()
    assert sorted(delivered) == [("A", "WH1"), ("B", "WH2")]  # A as mapped before the reload, once
