"""The `twin` fixture: each contract test runs once per transport, embedded and RabbitMQ.

A twin builds started transports for the test's routes (`twin.build(*routes)`), looks at queue
depths (`twin.depth(queue)`: messages ready for delivery), stores raw messages
(`twin.publish_raw(queue, body, **properties)`), deletes queues (`twin.delete_queue(name)`) and
cleans up afterwards: the embedded transport works on a file
in `tmp_path`; on RabbitMQ every test uses its own route names and deletes its queues. The
RabbitMQ twin skips without a broker (fails in CI), like `tests/integration/test_rabbitmq.py`,
whose helpers it reuses.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from esb.transport.contract import Transport
from esb.transport.embedded import EmbeddedTransport
from tests.integration.test_rabbitmq import Broker


class EmbeddedTwin:
    kind = "embedded"

    def __init__(self, path: Path):
        self.path = path
        self.made: list[Transport] = []

    def build(self, *routes, start: bool = True, **options) -> EmbeddedTransport:
        options.setdefault("poll_interval", 0.02)
        bus = EmbeddedTransport(self.path, routes, **options)
        self.made.append(bus)
        if start:
            bus.start(timeout=10)
        return bus

    def _query(self, sql: str, *parameters):
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        try:
            return connection.execute(sql, parameters).fetchall()
        finally:
            connection.close()

    def depth(self, queue: str) -> int:
        return self._query("SELECT COUNT(*) FROM messages WHERE queue = ? AND lease_owner IS NULL "
                           "AND available_at <= ?", queue, time.time())[0][0]

    def publish_raw(self, queue: str, body: bytes, **properties) -> None:
        """A message that did not come through `publish` (as another program might store it)."""
        self._query("INSERT INTO messages (queue, message_id, properties, body, available_at) "
                    "VALUES (?, ?, ?, ?, ?)", queue, properties.get("message_id"), json.dumps(properties),
                    body, time.time())

    def delete_queue(self, queue: str) -> None:
        self._query("DELETE FROM queues WHERE name = ?", queue)
        self._query("DELETE FROM messages WHERE queue = ?", queue)

    def close(self) -> None:
        for bus in self.made:
            bus.stop(timeout=2)


class RabbitMQTwin:
    kind = "rabbitmq"

    def __init__(self, url: str, name: str):
        from esb.transport.rabbitmq import RabbitMQTransport

        self.broker = Broker(url)
        self.name = name
        self.made: list[RabbitMQTransport] = []
        self._make = RabbitMQTransport

    def build(self, *routes, start: bool = True, **options) -> Transport:
        options.setdefault("connection_name", f"esb-contract-{self.name}-{len(self.made)}")
        options.setdefault("reconnect_min_delay", 0.2)
        bus = self._make(self.broker.url, routes, **options)
        self.broker.queues.update(q.name for q in bus.topology.queues)
        self.made.append(bus)
        if start:
            bus.start(timeout=10)
        return bus

    def depth(self, queue: str) -> int:
        return self.broker.depth(queue)

    def publish_raw(self, queue: str, body: bytes, **properties) -> None:
        self.broker.publish_raw(queue, body, **properties)

    def delete_queue(self, queue: str) -> None:
        self.broker.delete(queue)

    def close(self) -> None:
        for bus in self.made:
            bus.stop(timeout=2)
        self.broker.close()


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.broker)])
def twin(request, tmp_path, unique_name):
    """A transport builder for this test, once per transport (see the module docstring)."""
    if request.param == "embedded":
        made = EmbeddedTwin(tmp_path / "transport.sqlite")
    else:
        made = RabbitMQTwin(request.getfixturevalue("broker_url"), unique_name)
    yield made
    made.close()


@pytest.fixture
def embedded(tmp_path):
    """The embedded twin alone, for what only the embedded transport promises."""
    made = EmbeddedTwin(tmp_path / "transport.sqlite")
    yield made
    made.close()
