"""The transport's errors: what can go wrong between the bus and its broker.

A publish that was not confirmed fails with a `PublishError` (never "ok"): `Unroutable` (no queue
took it), `PublishNacked` (the broker refused it), `ConnectionLost` (the connection went before
the confirm: publish it again with the same id), `NotConnected` (nothing was sent) or
`PublishTimeout` (no confirm in time).
"""

from __future__ import annotations

from esb.errors import EsbError


class TransportError(EsbError):
    """Something went wrong between the bus and its broker."""


class BrokerUnavailable(TransportError):
    """The broker could not be reached (or refused the credentials)."""


class TopologyError(TransportError):
    """The broker refused to declare a queue or exchange (e.g. it exists with other arguments)."""


class PublishError(TransportError):
    """A publish was not confirmed: the message is not known to be stored."""


class Unroutable(PublishError):
    """The broker returned the message: no queue is bound for its route or destination."""


class PublishNacked(PublishError):
    """The broker refused the message (basic.nack): it is not stored."""


class ConnectionLost(PublishError):
    """The connection went before the confirm came: the message may or may not be stored."""


class NotConnected(ConnectionLost):
    """The transport is not connected (starting, reconnecting or stopped): nothing was sent."""


class PublishTimeout(PublishError):
    """No confirm within the timeout: the message may still be stored later; treat as failed."""


def describe(error: BaseException | None) -> str:
    """A one-line account of an error: its class, and its text when it has one."""
    if error is None:
        return "unknown error"
    return f"{type(error).__name__}: {str(error).strip() or repr(error)}"
