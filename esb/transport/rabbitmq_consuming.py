"""Consuming on RabbitMQ: a channel per consumer, acks batched on the I/O thread, and retry or
dead-letter copies published before the original is acked.

One channel per (route, destination) consumer, `basic_qos(prefetch)`, manual acks. The shared
consumer (`esb.transport.consumer`) runs the handlers; its outcomes come back here (the
`Settlement`) from any thread and go to the I/O thread through a deque. Completions that are
contiguous in delivery order are acked with one `multiple=True` frame, the others one by one
(`AckTracker`), so a slow message never holds back the acks of faster ones. A retry or
dead-letter copy is published first; the original is acked in the copy's confirm callback. If
the copy is refused (unroutable: someone deleted the queue) the original is requeued after
`REPUBLISH_FAILURE_PAUSE` seconds (a timer on the I/O thread, nobody sleeps); if the connection
went, there is nothing to ack: the broker redelivers. Handlers still running for a closed
channel finish, but their outcome is dropped: the broker has already requeued their message.
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from esb.transport import names
from esb.transport.consumer import Consumer, InHand, Settlement
from esb.transport.errors import ConnectionLost
from esb.transport.rabbitmq_connection import describe
from esb.transport.rabbitmq_publisher import ConfirmedPublisher, copy_properties

log = logging.getLogger(__name__)

REPUBLISH_FAILURE_PAUSE = 1.0
"""Seconds before a message whose retry/dead-letter copy was refused goes back to its queue."""

_ACK, _NACK = "ack", "nack"


class AckTracker:
    """Turns out-of-order completions on one channel into few basic.ack frames.

    `delivered(tag)` when a message arrives, `completed(tag)` when it may be acked, `settled(tag)`
    when it was nacked by other means. `flush()` returns `(multiple_tag, single_tags)`: ack
    `multiple_tag` with `multiple=True` (it covers every earlier completion and skips what is
    already settled), then each of `single_tags` alone. The multiple tag is always one that is
    still unacked, as RabbitMQ demands.
    """

    __slots__ = ("_delivered", "_completed", "_settled")

    def __init__(self) -> None:
        self._delivered: collections.deque[int] = collections.deque()
        self._completed: set[int] = set()
        self._settled: set[int] = set()

    def delivered(self, tag: int) -> None:
        self._delivered.append(tag)

    def completed(self, tag: int) -> None:
        self._completed.add(tag)

    def settled(self, tag: int) -> None:
        self._settled.add(tag)

    def flush(self) -> tuple[int | None, list[int]]:
        delivered, completed, settled = self._delivered, self._completed, self._settled
        multiple = None
        while delivered:
            tag = delivered[0]
            if tag in completed:
                completed.remove(tag)
                multiple = tag
            elif tag in settled:
                settled.remove(tag)
            else:
                break
            delivered.popleft()
        singles = sorted(completed)
        completed.clear()
        settled.update(singles)
        return multiple, singles

    def in_hand(self) -> int:
        """Messages delivered and not yet acked or nacked."""
        return len(self._delivered) - len(self._settled) - len(self._completed)


class QueueConsumer(Consumer):
    """The shared consumer, plus the channel it consumes on now."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.channel: ConsumerChannel | None = None


class ConsumerChannel:
    """One channel's life for a consumer; its delivery tags mean nothing once it is closed."""

    __slots__ = ("consumer", "channel", "tracker", "closed", "consumer_tag")

    def __init__(self, consumer: QueueConsumer, channel: Any):
        self.consumer = consumer
        self.channel = channel
        self.tracker = AckTracker()
        self.closed = False
        self.consumer_tag: str | None = None


class QueueConsuming(Settlement):
    """The consumers' channels and the settlement of what they delivered.

    `wake()` and `call_soon(function)` reach the I/O thread; `on_channel_closed(channel, reason)`
    and `on_cancelled(consumer)` are the transport's (both end the connection). Methods whose
    docstring says "I/O thread" must run there.
    """

    def __init__(self, publisher: ConfirmedPublisher, *, wake: Callable[[], None],
                 call_soon: Callable[[Callable[[], None]], None],
                 on_channel_closed: Callable[[Any, BaseException], None],
                 on_cancelled: Callable[[QueueConsumer], None]):
        self._publisher = publisher
        self._wake = wake
        self._call_soon = call_soon
        self._on_channel_closed = on_channel_closed
        self._on_cancelled = on_cancelled
        self._settlements: collections.deque[tuple[ConsumerChannel, int, str]] = collections.deque()

    # --- the settlement (any thread) --------------------------------------------------------
    def stale(self, message: InHand) -> bool:
        return message.channel.closed

    def ack(self, message: InHand) -> None:
        self._settle(message.channel, message.tag, _ACK)
        message.consumer.settled(message)

    def requeue(self, message: InHand) -> None:
        self._settle(message.channel, message.tag, _NACK)

    def retry(self, message: InHand, headers: dict[str, Any], delay: float) -> None:
        consumer = message.consumer
        self._republish(message, names.retry_queue_name(consumer.route.name, consumer.destination, delay),
                        headers)

    def dead_letter(self, message: InHand, headers: dict[str, Any]) -> None:
        consumer = message.consumer
        self._republish(message, names.dead_letter_queue_name(consumer.route.name, consumer.destination),
                        headers)

    def _republish(self, message: InHand, queue_name: str, headers: dict[str, Any]) -> None:
        """Publish the copy; ack the original once the copy is confirmed."""
        properties = copy_properties(message.properties, headers)
        future = self._publisher.submit("", queue_name, message.body, properties)

        def republished(done: Any) -> None:
            failure = done.exception()
            if failure is None:
                self._settle(message.channel, message.tag, _ACK)
                message.consumer.settled(message)
            elif not isinstance(failure, ConnectionLost):
                log.error("esb: could not store message %s in %s (%s); requeueing it in %gs",
                          message.properties.message_id, queue_name, describe(failure),
                          REPUBLISH_FAILURE_PAUSE)
                self._call_soon(functools.partial(self._settle_later, message.channel, message.tag))
            # ConnectionLost: the channel is gone with the connection; the broker redelivers.

        future.add_done_callback(republished)

    def _settle_later(self, state: ConsumerChannel, tag: int) -> None:
        if not state.closed:
            state.channel.connection.ioloop.call_later(
                REPUBLISH_FAILURE_PAUSE, functools.partial(self._settle, state, tag, _NACK))

    def _settle(self, state: ConsumerChannel, tag: int, action: str) -> None:
        self._settlements.append((state, tag, action))
        if self._publisher.resolving:  # only ever True on the I/O thread, which flushes right after
            return
        self._wake()

    def busy(self, consumers: Iterable[QueueConsumer]) -> bool:
        """Outcomes wait to be sent, or messages are in hand."""
        if self._settlements:
            return True
        for consumer in consumers:
            state = consumer.channel
            if consumer.running or (state is not None and not state.closed and state.tracker.in_hand()):
                return True
        return False

    # --- on the I/O thread ------------------------------------------------------------------
    def flush(self) -> None:
        """I/O thread: send the acks and nacks that came in."""
        settlements = self._settlements
        if not settlements:
            return
        touched: set[ConsumerChannel] = set()
        while settlements:
            state, tag, action = settlements.popleft()
            if state.closed:
                continue
            if action == _ACK:
                state.tracker.completed(tag)
                touched.add(state)
            else:
                state.tracker.settled(tag)
                if state.channel.is_open:
                    state.channel.basic_nack(tag, requeue=True)
        for state in touched:
            multiple, singles = state.tracker.flush()
            channel = state.channel
            if not channel.is_open:
                continue
            if multiple is not None:
                channel.basic_ack(multiple, multiple=True)
            for tag in singles:
                channel.basic_ack(tag)

    def connection_lost(self, consumers: Iterable[QueueConsumer]) -> None:
        """I/O thread: the connection is gone, and with it every channel and delivery tag."""
        self._settlements.clear()
        for consumer in consumers:
            if consumer.channel is not None:
                consumer.channel.closed = True

    def open(self, connection: Any, consumer: QueueConsumer) -> None:
        """I/O thread: a channel, its prefetch, and basic.consume (unless paused or stopping)."""
        if consumer.stopping or consumer.paused:
            return

        def opened(channel: Any) -> None:
            state = ConsumerChannel(consumer, channel)
            consumer.channel = state
            channel.add_on_close_callback(self._on_channel_closed)
            channel.add_on_cancel_callback(lambda _frame: self._on_cancelled(consumer))

            def qos_ok(_frame: Any) -> None:
                # paused (or resumed, which consumed already) while the channel was opening
                if state.consumer_tag is None and not consumer.paused and not consumer.stopping:
                    self._basic_consume(state)

            channel.basic_qos(prefetch_count=consumer.prefetch, callback=qos_ok)

        connection.channel(on_open_callback=opened)

    def _basic_consume(self, state: ConsumerChannel) -> None:
        state.consumer_tag = state.channel.basic_consume(
            state.consumer.queue_name, functools.partial(self._on_message, state), auto_ack=False)

    def cancel(self, consumers: Iterable[QueueConsumer]) -> None:
        """I/O thread: stop taking messages (what is in hand is still settled)."""
        for consumer in consumers:
            state = consumer.channel
            if state is not None and not state.closed and state.consumer_tag and state.channel.is_open:
                state.channel.basic_cancel(state.consumer_tag)
                state.consumer_tag = None

    def restart(self, connection: Any, consumers: Iterable[QueueConsumer]) -> None:
        """I/O thread: consume again, on the consumer's channel when it is still open."""
        for consumer in consumers:
            state = consumer.channel
            if state is not None and not state.closed and state.channel.is_open:
                if state.consumer_tag is None:
                    self._basic_consume(state)
            elif connection is not None:
                self.open(connection, consumer)

    def _on_message(self, state: ConsumerChannel, channel: Any, method: Any, properties: Any,
                    body: bytes) -> None:
        tag = method.delivery_tag
        state.tracker.delivered(tag)
        state.consumer.take(InHand(state.consumer, tag, properties, body, method.redelivered, state))
