"""The admin half of the RabbitMQ transport: declare the topology, read queue statistics, browse,
replay and purge dead letters, each on a short-lived blocking connection, so it works without
`start()` and from any thread (the CLI, the admin API).

Browsing takes messages with basic.get without acking them; closing the channel puts them back
in their places. A replay publishes the copy (confirmed, mandatory) before it acks the dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pika
import pika.exceptions

from esb.transport import names
from esb.transport.contract import DeadLetter, QueueStats, dead_letter_queues
from esb.transport.errors import BrokerUnavailable, PublishNacked, TransportError, Unroutable
from esb.transport.headers import replay_headers
from esb.transport.rabbitmq_connection import blocking, declare_topology, unreachable
from esb.transport.rabbitmq_publisher import copy_properties
from esb.transport.topology import Topology


class RabbitMQAdmin:
    """`declare`, `queue_stats` and the dead-letter methods of `RabbitMQTransport` (which sets the
    attributes below)."""

    url: str
    topology: Topology
    _routes: dict[str, Any]
    _admin_parameters: pika.ConnectionParameters

    def declare(self) -> None:
        """Declare the topology now (idempotent); BrokerUnavailable or TopologyError when it cannot."""
        try:
            declare_topology(self._admin_parameters, self.topology)
        except pika.exceptions.AMQPConnectionError as error:
            raise BrokerUnavailable(unreachable(self.url, error)) from None

    def queue_stats(self) -> QueueStats:
        """Passive declares on one short-lived connection; a missing queue is left out."""
        stats: QueueStats = {}
        with blocking(self._admin_parameters, self.url) as connection:
            channel = connection.channel()
            for spec in self.topology.queues:
                try:
                    method = channel.queue_declare(spec.name, passive=True).method
                except pika.exceptions.ChannelClosedByBroker:  # not declared yet: the channel is gone
                    channel = connection.channel()
                    continue
                stats[spec.name] = (method.message_count, method.consumer_count)
        return stats

    def dead_letters(self, route: str, destination: str | None = None, *,
                     limit: int | None = None) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        queues = dead_letter_queues(self._routes, route, destination, inbound=True)
        with blocking(self._admin_parameters, self.url) as connection:
            for queue_name, queue_destination in queues:
                channel = connection.channel()
                for _method, properties, body in browse(channel, queue_name, limit):
                    letters.append(_dead_letter(route, queue_destination, properties, body))
                channel.close()  # unacked: back in place
                if limit is not None and len(letters) >= limit:
                    break
        return letters[:limit] if limit is not None else letters

    def replay_dead_letters(self, route: str, destination: str | None = None, *,
                            ids: Iterable[str] | None = None) -> int:
        wanted = set(ids) if ids is not None else None
        replayed = 0
        queues = dead_letter_queues(self._routes, route, destination, inbound=False)
        with blocking(self._admin_parameters, self.url) as connection:
            publisher = connection.channel()
            publisher.confirm_delivery()
            for queue_name, queue_destination in queues:
                channel = connection.channel()
                work_queue = names.work_queue_name(route, queue_destination)
                for method, properties, body in browse(channel, queue_name, None):
                    if wanted is not None and properties.message_id not in wanted:
                        continue
                    try:
                        replayed_properties = copy_properties(properties, replay_headers(properties.headers))
                        publisher.basic_publish("", work_queue, body, replayed_properties, mandatory=True)
                    except pika.exceptions.UnroutableError:
                        raise Unroutable(f'work queue "{work_queue}" does not exist; '
                                         "run `esb topology declare`") from None
                    except pika.exceptions.NackError:
                        raise PublishNacked(f"the broker refused the replay to {work_queue}") from None
                    channel.basic_ack(method.delivery_tag)
                    replayed += 1
                channel.close()
        return replayed

    def purge_dead_letters(self, route: str, destination: str | None = None, *,
                           ids: Iterable[str] | None = None) -> int:
        wanted = set(ids) if ids is not None else None
        purged = 0
        queues = dead_letter_queues(self._routes, route, destination, inbound=True)
        with blocking(self._admin_parameters, self.url) as connection:
            for queue_name, _destination in queues:
                channel = connection.channel()
                if wanted is None:
                    purged += channel.queue_purge(queue_name).method.message_count
                else:
                    for method, properties, _body in browse(channel, queue_name, None):
                        if properties.message_id in wanted:
                            channel.basic_ack(method.delivery_tag)
                            purged += 1
                channel.close()
        return purged


def browse(channel: Any, queue_name: str, limit: int | None) -> list[tuple[Any, Any, bytes]]:
    """Take up to `limit` messages (all there are when None) without acking them."""
    try:
        count = channel.queue_declare(queue_name, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker:
        raise TransportError(f'queue "{queue_name}" does not exist; run `esb topology declare`') from None
    if limit is not None:
        count = min(count, limit)
    messages = []
    for _ in range(count):
        method, properties, body = channel.basic_get(queue_name, auto_ack=False)
        if method is None:
            break
        messages.append((method, properties, body))
    return messages


def _dead_letter(route: str, destination: str | None, properties: Any, body: bytes) -> DeadLetter:
    return DeadLetter(route=route, destination=destination, message_id=properties.message_id,
                      correlation_id=properties.correlation_id, type=properties.type,
                      content_type=properties.content_type, body=body, headers=dict(properties.headers or {}))
