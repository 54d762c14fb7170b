"""What `esb run` says at start: routes whose endpoint no configured key may post to, a broker
that refuses the login (one line, at once), the shipped routes creating nothing in the checkout,
and messages left in the data dir's embedded file after a switch to RabbitMQ (whose idempotency
keys start afresh: they refer to the other transport's messages)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

from esb.config import load_config
from esb.credentials import Credentials
from esb.monitoring import create_app
from esb.runtime import Runtime, RuntimeOptions
from tests.conftest import PROJECT

ORDER = json.loads((PROJECT / "schemas" / "purchase_order.v1.json").read_text())["examples"][0]

ROUTES = """
version: 1
systems:
  erp: {rest: {base_url: "http://127.0.0.1:9/erp"}}
  shop: {rest: {base_url: "http://127.0.0.1:9/shop"}}
  wms: {rest: {base_url: "http://127.0.0.1:9/wms"}}
routes:
  - name: po-in
    from: {rest: {system: erp, format: json}}
    to: [{rest: {system: wms, path: /orders}}]
  - name: orders-in
    from: {rest: {system: shop, format: json}}
    to: [{rest: {system: wms, path: /orders}}]
  - name: open-in
    from: {rest: {system: shop, format: json, auth: none}}
    to: [{rest: {system: wms, path: /orders}}]
"""


def start(tmp_path, credentials: Credentials) -> Runtime:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    options = RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", port=0, consumers=False,
                             credentials=credentials)
    return Runtime(load_config(tmp_path / "routes.yaml"), options).start()


def test_routes_no_configured_key_may_post_to_are_named_with_the_line_to_set(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="esb.runtime")
    runtime = start(tmp_path, Credentials.from_environment({"ESB_API_KEYS": "erp:sender=po-in:k1"}))
    runtime.stop()

    [warning] = [r.getMessage() for r in caplog.records if "ESB_API_KEYS" in r.getMessage()]
    assert "routes orders-in accept posts only" in warning
    assert "ESB_API_KEYS='shop:sender=orders-in:<secret>'" in warning
    assert "po-in" not in warning and "open-in" not in warning


def test_with_every_key_configured_there_is_no_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="esb.runtime")
    start(tmp_path, Credentials.from_environment({"ESB_API_KEYS": "any:sender=*:k1"})).stop()

    assert not [r for r in caplog.records if "ESB_API_KEYS" in r.getMessage()]


def test_a_refused_broker_login_fails_at_once_in_one_line(tmp_path, broker_url):
    parts = urlsplit(broker_url)
    wrong = urlunsplit(parts._replace(netloc=f"nobody:wrong-password@{parts.hostname}:{parts.port or 5672}"))
    (tmp_path / "routes.yaml").write_text(ROUTES)
    env = {**os.environ, "ESB_BROKER_URL": wrong, "ESB_DATA_DIR": str(tmp_path / "data")}

    command = [sys.executable, "-m", "esb", "run", "-c", str(tmp_path / "routes.yaml"), "--port", "0"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "refused the login" in lines[0] and "wrong-password" not in lines[0]


def test_the_shipped_routes_create_nothing_inside_the_checkout(tmp_path):
    before = sorted(path.name for path in PROJECT.iterdir())
    options = RuntimeOptions(broker_url=None, data_dir=tmp_path / "data", http=False, consumers=False)
    Runtime(load_config(PROJECT / "routes.yaml"), options).start().stop()

    assert sorted(path.name for path in PROJECT.iterdir()) == before


# --- switching transports with the same data dir -----------------------------------------------

SWITCH_ROUTES = """
version: 1
systems:
  erp: {{rest: {{base_url: "http://127.0.0.1:9/erp"}}}}
  wms: {{rest: {{base_url: "http://127.0.0.1:9/wms"}}}}
routes:
  - name: {route}
    from: {{rest: {{system: erp, format: json, auth: none}}}}
    validate: purchase_order
    to: [{{rest: {{system: wms, path: /orders}}}}]
"""


def switch_runtime(tmp_path, route: str, broker_url: str | None) -> Runtime:
    (tmp_path / "routes.yaml").write_text(SWITCH_ROUTES.format(route=route))
    options = RuntimeOptions(broker_url=broker_url, data_dir=tmp_path / "data", http=False, consumers=False)
    runtime = Runtime(load_config(tmp_path / "routes.yaml"), options)
    return runtime.start(app=create_app(runtime))


def post_order(runtime: Runtime, route: str):
    return runtime.app.test_client().post(f"/in/{route}", json=ORDER)


def test_a_switch_to_rabbitmq_warns_of_what_the_embedded_file_holds_and_keys_start_afresh(
        tmp_path, unique_name, broker_url, caplog):
    embedded = switch_runtime(tmp_path, unique_name, None)
    on_embedded = post_order(embedded, unique_name)  # stays in the file: no consumers
    embedded.stop()
    caplog.set_level(logging.WARNING, logger="esb.runtime")

    rabbitmq = switch_runtime(tmp_path, unique_name, broker_url)
    try:
        on_rabbitmq = post_order(rabbitmq, unique_name)
    finally:
        rabbitmq.stop()
        delete_queues(broker_url, rabbitmq)

    assert on_embedded.status_code == 202
    assert on_rabbitmq.status_code == 202 and on_rabbitmq.json["id"] != on_embedded.json["id"]
    [warning] = [r.getMessage() for r in caplog.records if "embedded transport file" in r.getMessage()]
    assert f"still holds 1 undelivered message(s) (queues esb.{unique_name}.wms)" in warning
    assert "ESB_BROKER_URL= esb run" in warning


def test_the_embedded_file_the_bus_runs_on_is_not_reported(tmp_path, caplog):
    first = switch_runtime(tmp_path, "po", None)
    post_order(first, "po")
    first.stop()
    caplog.set_level(logging.WARNING, logger="esb.runtime")

    switch_runtime(tmp_path, "po", None).stop()

    assert not [r for r in caplog.records if "embedded transport file" in r.getMessage()]


def delete_queues(broker_url: str, runtime: Runtime) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = connection.channel()
    for queue in runtime.transport.topology.queues:
        channel.queue_delete(queue.name)
    connection.close()
