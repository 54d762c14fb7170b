"""Confirmed publishing on RabbitMQ: the outbox, pipelined publisher confirms, returns.

The publish channel is in confirm mode; every publish is persistent (`delivery_mode=2`) and
mandatory. Any thread may `submit()`: the message waits in the outbox, the I/O thread is woken
once per batch, and `flush()` (on the I/O thread) sends what the window allows. Up to
`max_outstanding` publishes wait for their confirm at once, each with its
`concurrent.futures.Future`; a confirm with `multiple=True` resolves every future up to its tag.
A basic.return (unroutable) arrives before the confirm of the same message; it is remembered by
(exchange, routing key, message id) and turns that message's confirm into an `Unroutable`
failure. When the connection goes, every unconfirmed future fails with `ConnectionLost`; a
publish while disconnected fails at once with `NotConnected`. Nothing is ever reported accepted
without a confirm.

A basic.nack fails its publish with `PublishNacked` and retires the channel: nothing more is sent
on it, and once every publish sent on it has its confirm, `renew` is called for a new one (the
outbox waits meanwhile). RabbitMQ nacks only when a queue cannot take a message, and a channel
whose quorum-queue client still points at a leader lost in a network partition nacks every later
publish (RabbitMQ before 3.13, rabbitmq-server#9241); a new channel asks for the current leader.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pika

from esb.transport.errors import ConnectionLost, NotConnected, PublishNacked, Unroutable
from esb.transport.rabbitmq_connection import describe

DEFAULT_MAX_OUTSTANDING = 1000
"""Publishes that may wait for their confirm at once; more wait in memory (pipelined confirms)."""

PERSISTENT = 2


class ConfirmedPublisher:
    """The outbox and the confirms in flight of one transport's publish channel.

    `connected` is set while publishing is possible; `wake()` asks the I/O thread to call
    `flush()` soon; `renew(channel)` replaces a channel the broker nacked on. Every method but
    `submit()` runs on the I/O thread.
    """

    def __init__(self, connected: threading.Event, wake: Callable[[], None], *,
                 renew: Callable[[Any], None], max_outstanding: int = DEFAULT_MAX_OUTSTANDING):
        self._connected = connected
        self._wake = wake
        self._renew = renew
        self._max_outstanding = max_outstanding
        self.channel: Any = None  # the publish channel, once in confirm mode
        self._outbox: collections.deque[tuple] = collections.deque()
        self._seq = 0
        self._pending: dict[int, tuple] = {}
        self._pending_order: collections.deque[int] = collections.deque()
        self._returned: dict[tuple, str] = {}
        self._retiring = False  # a nack came: send nothing more on this channel
        self.resolving = False  # resolving publish futures now (see on_confirm)

    def busy(self) -> bool:
        return bool(self._pending or self._outbox)

    def submit(self, exchange: str, key: str, body: bytes, properties: Any) -> concurrent.futures.Future:
        """Queue one publish (any thread); the future resolves with the broker's confirm."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        if not self._connected.is_set():
            future.set_exception(NotConnected("not connected to the broker"))
            return future
        self._outbox.append((exchange, key, body, properties, future))
        self._wake()
        return future

    def opened(self, channel: Any) -> None:
        """A new publish channel in confirm mode: it counts its publishes (delivery tags) from 1."""
        self._seq = 0
        self._retiring = False
        self.channel = channel

    def flush(self) -> None:
        """Send what waits in the outbox, as far as the confirm window allows."""
        channel = self.channel
        if channel is not None and self._retiring:
            if not self._pending:  # every publish on it has its confirm: over to a new channel
                self.channel = None
                self._renew(channel)
            return
        if channel is None or not self._outbox:
            return
        outbox, pending, order = self._outbox, self._pending, self._pending_order
        room = self._max_outstanding - len(pending)
        publish = channel.basic_publish
        seq = self._seq
        try:
            while outbox and room > 0:
                exchange, key, body, properties, future = outbox.popleft()
                publish(exchange, key, body, properties, mandatory=True)
                seq += 1
                pending[seq] = (future, exchange, key, properties.message_id)
                order.append(seq)
                room -= 1
        except Exception as error:  # the channel or connection is closing: fail what is left
            future.set_exception(ConnectionLost(f"publish failed: {describe(error)}"))
        finally:
            self._seq = seq

    def on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        key = (method.exchange, method.routing_key, properties.message_id)
        self._returned[key] = f"{method.reply_code} {method.reply_text}"

    def on_confirm(self, frame: Any) -> None:
        """Resolve the futures a basic.ack or basic.nack covers (`resolving` is True meanwhile)."""
        method = frame.method
        tag = method.delivery_tag
        acked = isinstance(method, pika.spec.Basic.Ack)
        self._retiring = self._retiring or not acked
        pending, order = self._pending, self._pending_order
        if method.multiple:
            entries = []
            while order and order[0] <= tag:
                entry = pending.pop(order.popleft(), None)
                if entry is not None:
                    entries.append(entry)
        else:
            entry = pending.pop(tag, None)
            entries = [entry] if entry is not None else []
            while order and order[0] not in pending:
                order.popleft()
        returned = self._returned
        self.resolving = True
        try:
            for future, exchange, key, message_id in entries:
                if not acked:
                    future.set_exception(PublishNacked(f"the broker refused the message sent to {key!r}"))
                elif returned and (exchange, key, message_id) in returned:
                    reply = returned.pop((exchange, key, message_id))
                    target = f'exchange "{exchange}" with key "{key}"' if exchange else f'queue "{key}"'
                    future.set_exception(Unroutable(f"no queue took the message sent to {target} ({reply})"))
                else:
                    future.set_result(None)
        finally:
            self.resolving = False

    def fail_pending(self, error: BaseException) -> None:
        """The channel is gone: every publish not confirmed yet fails with `error`."""
        self.channel = None
        self._retiring = False
        pending = self._pending
        self._pending = {}
        self._pending_order.clear()
        self._returned.clear()
        for future, *_ in pending.values():
            if not future.done():
                future.set_exception(error)
        self.fail_outbox(error)

    def fail_outbox(self, error: BaseException) -> None:
        while self._outbox:
            future = self._outbox.popleft()[4]
            if not future.done():
                future.set_exception(error)


def copy_properties(properties: Any, headers: dict[str, Any]) -> pika.BasicProperties:
    """The message's properties for a re-publish: persistent, same ids, new headers, no expiry."""
    return pika.BasicProperties(
        content_type=properties.content_type, content_encoding=properties.content_encoding,
        headers=headers, delivery_mode=PERSISTENT, priority=properties.priority,
        correlation_id=properties.correlation_id, reply_to=properties.reply_to,
        message_id=properties.message_id, timestamp=properties.timestamp, type=properties.type,
        app_id=properties.app_id)
