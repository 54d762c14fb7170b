"""The `settings:` of routes.yaml: each one is checked, and reaches what uses it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from esb.config import build_routes_schema, check_config, load_config
from esb.envelope import Envelope
from esb.runtime import Runtime, RuntimeOptions
from esb.transport.contract import DEFAULT_PREFETCH

ROUTE = ("version: 1\n{settings}routes:\n  - name: r\n    from: {{file: {{dir: in}}}}\n"
         "    to:\n      - file: {{dir: out}}\n")


def routes_file(tmp_path: Path, settings: str = "") -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTE.format(settings=settings), encoding="utf-8")
    return path


def test_prefetch_has_one_default_the_transports(tmp_path):
    config = load_config(routes_file(tmp_path), {})

    assert config.settings.get("prefetch", DEFAULT_PREFETCH) == DEFAULT_PREFETCH
    settings_schema = build_routes_schema()["properties"]["settings"]
    assert settings_schema["properties"]["prefetch"]["default"] == DEFAULT_PREFETCH


def test_a_prefetch_setting_bounds_the_messages_a_consumer_holds(tmp_path):
    config = load_config(routes_file(tmp_path, "settings: {prefetch: 2}\n"), {})
    runtime = Runtime(config, RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", http=False,
                                             sources=False, consumers=False))
    in_hand, most, release = [0], [0], threading.Event()
    lock = threading.Lock()

    def hold(envelope, delivery) -> None:
        with lock:
            in_hand[0] += 1
            most[0] = max(most[0], in_hand[0])
        release.wait(10)
        with lock:
            in_hand[0] -= 1

    runtime.transport.consume("r", "file", hold, concurrency=8)  # no prefetch given: the setting's
    runtime.start()
    try:
        for number in range(6):
            runtime.transport.publish_confirmed(Envelope(type="item", payload={"sku": str(number)},
                                                         source="test"), "r")
        deadline = time.monotonic() + 5
        while most[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # room for a third message, were the prefetch not 2

        assert most[0] == 2
    finally:
        release.set()
        runtime.stop()


def test_admin_port_is_no_setting(tmp_path):
    [problem] = check_config(routes_file(tmp_path, "settings: {admin_port: 9090}\n"), {})

    assert problem.line == 2
    assert problem.what.startswith('settings.admin_port: unknown key "admin_port"')
