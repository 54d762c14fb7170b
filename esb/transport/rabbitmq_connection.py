"""Connecting to RabbitMQ: connection parameters, short-lived blocking connections, declaring the
topology, and error texts that never show a password.

The long-lived connection (`esb.transport.rabbitmq`) and the short-lived ones (declare, queue
statistics, dead-letter admin) carry different connection names, so that an admin closing "esb"
in the management UI or with rabbitmqctl finds the long-lived one.
"""

from __future__ import annotations

import contextlib
import copy
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions

from esb.transport import errors
from esb.transport.errors import BrokerUnavailable, TopologyError, TransportError
from esb.transport.topology import Topology

DEFAULT_HEARTBEAT = 30
"""Seconds between AMQP heartbeats (unless the URL says otherwise)."""


def connection_parameters(url: str, connection_name: str) -> tuple[pika.URLParameters, pika.URLParameters]:
    """(parameters of the long-lived connection, of the short-lived admin ones) for a broker URL."""
    parameters = pika.URLParameters(url)
    if "heartbeat" not in urllib.parse.urlsplit(url).query:
        parameters.heartbeat = DEFAULT_HEARTBEAT
    parameters.client_properties = {"connection_name": connection_name}
    admin = copy.copy(parameters)
    admin.client_properties = {"connection_name": f"{connection_name}-admin"}
    return parameters, admin


@contextlib.contextmanager
def blocking(parameters: pika.ConnectionParameters, url: str) -> Iterator[Any]:
    """A short-lived `BlockingConnection`, with the transport's errors; closed on the way out."""
    try:
        connection = pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPConnectionError as error:
        raise BrokerUnavailable(unreachable(url, error)) from None
    try:
        yield connection
    except pika.exceptions.ChannelClosedByBroker as error:
        raise TransportError(f"the broker refused: {error.reply_code} {error.reply_text}") from None
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def declare_topology(parameters: pika.ConnectionParameters, topology: Topology) -> None:
    """Declare the exchange, queues and bindings on a short-lived connection (idempotent)."""
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        channel.exchange_declare(topology.exchange, "direct", durable=True)
        for spec in topology.queues:
            try:
                channel.queue_declare(spec.name, durable=True, arguments=spec.arguments)
            except pika.exceptions.ChannelClosedByBroker as error:
                raise TopologyError(
                    f'cannot declare queue "{spec.name}": {error.reply_text} (it exists with other '
                    "settings: drain and delete it, or change the route back)") from None
            if spec.binding_key is not None:
                channel.queue_bind(spec.name, topology.exchange, routing_key=spec.binding_key)
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


LOGIN_REFUSED = (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError,
                 pika.exceptions.ProbableAccessDeniedError)
"""pika's ways of saying the broker refused the user, the password or the virtual host."""


def login_refused(url: str, error: BaseException) -> str:
    return (f"the broker at {redacted(url)} refused the login ({describe(error)}); check the user, "
            f"password and virtual host of the broker URL (ESB_BROKER_URL or settings.broker_url)")


def unreachable(url: str, error: BaseException | None) -> str:
    return f"cannot reach the broker at {redacted(url)}: {describe(error)}"


def describe(error: BaseException | None) -> str:
    """`errors.describe`, with the reason pika wraps inside its connection errors."""
    if isinstance(error, pika.exceptions.AMQPConnectionError) and error.args:
        inner = error.args[0]
        if isinstance(inner, BaseException) or hasattr(inner, "exception"):
            text = str(getattr(inner, "exception", inner))
            if text:
                return f"{type(error).__name__}: {text}"
    return errors.describe(error)
