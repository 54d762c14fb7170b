"""The transport contract (`esb.transport`), once per transport: embedded and RabbitMQ.

Every test takes `twin` (see conftest.py) and runs on both transports; the last section holds
what only the embedded transport promises (one file shared by processes). Backoffs are short
(0.2 s, 0.5 s) to keep the file quick.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from esb.errors import DecodeError, Permanent, Retryable
from esb.retry import RetryPolicy
from esb.transport import names
from esb.transport.contract import TransportEvents
from esb.transport.errors import NotConnected, Unroutable
from esb.transport.headers import (
    H_ATTEMPTS,
    H_DEAD_LETTER_REASON,
    H_DEAD_LETTERED_AT,
    H_DESTINATION,
    H_FIRST_ERROR,
    H_FIRST_ERROR_CLASS,
    H_FIRST_FAILED_AT,
    H_LAST_ERROR,
    H_LAST_ERROR_CLASS,
    H_LAST_FAILED_AT,
    H_REPLAYS,
    H_ROUTE,
)
from tests.conftest import PROJECT
from tests.integration.test_rabbitmq import Recorder, envelope, make_route, raising, wait_until

ONCE_MORE = RetryPolicy(attempts=2, backoff=(0.2,))


def work(route: str, destination: str) -> str:
    return names.work_queue_name(route, destination)


# --- publishing -------------------------------------------------------------------------------
def test_a_confirmed_publish_reaches_every_destination_queue_of_its_route(twin, unique_name):
    bus = twin.build(make_route(unique_name))

    bus.publish_confirmed(envelope(), unique_name)

    assert twin.depth(work(unique_name, "a")) == 1
    assert twin.depth(work(unique_name, "b")) == 1


def test_a_publish_for_one_destination_reaches_only_its_queue(twin, unique_name):
    bus = twin.build(make_route(unique_name))

    bus.publish_confirmed(envelope(), unique_name, "b")

    assert twin.depth(work(unique_name, "a")) == 0
    assert twin.depth(work(unique_name, "b")) == 1


def test_a_publish_that_no_queue_takes_fails_as_unroutable(twin, unique_name):
    bus = twin.build(make_route(unique_name))
    twin.delete_queue(work(unique_name, "a"))
    twin.delete_queue(work(unique_name, "b"))

    with pytest.raises(Unroutable, match="no queue took the message"):
        bus.publish_confirmed(envelope(), unique_name)
    with pytest.raises(Unroutable):
        bus.publish(envelope(), unique_name, "a").result(5)


def test_publishing_to_an_unknown_route_or_destination_suggests_the_known_one(twin, unique_name):
    bus = twin.build(make_route(unique_name))

    with pytest.raises(KeyError, match="did you mean"):
        bus.publish(envelope(), unique_name + "x")
    with pytest.raises(KeyError, match='no destination "c"'):
        bus.publish(envelope(), unique_name, "c")


def test_a_publish_before_start_fails_as_not_connected(twin, unique_name):
    bus = twin.build(make_route(unique_name), start=False)

    with pytest.raises(NotConnected):
        bus.publish(envelope(), unique_name).result(5)
    assert not bus.connected


# --- consuming, retry, dead letters --------------------------------------------------------------
def test_a_delivered_message_is_acked_once(twin, unique_name):
    bus = twin.build(make_route(unique_name, destinations=("a",)))
    handler = Recorder()
    bus.consume(unique_name, "a", handler)

    bus.publish_confirmed(sent := envelope(), unique_name)

    wait_until(lambda: handler.calls)
    time.sleep(0.2)
    bus.stop(timeout=2)
    (_, received, delivery), = handler.calls
    assert received == sent
    assert (delivery.route, delivery.destination, delivery.attempt) == (unique_name, "a", 1)
    assert not delivery.redelivered
    assert twin.depth(work(unique_name, "a")) == 0


def test_a_retryable_failure_comes_back_after_each_backoff_delay_then_is_dead_lettered(twin, unique_name):
    bus = twin.build(make_route(unique_name, destinations=("a",)))
    handler = Recorder(raising(Retryable("HTTP 503")))
    bus.consume(unique_name, "a", handler)

    bus.publish_confirmed(sent := envelope(), unique_name)

    (letter,) = wait_until(lambda: bus.dead_letters(unique_name, "a"))
    times = [t for t, _, _ in handler.calls]
    assert [d.attempt for _, _, d in handler.calls] == [1, 2, 3]
    assert [d.headers.get(H_ATTEMPTS) for _, _, d in handler.calls] == [None, 1, 2]
    assert 0.18 <= times[1] - times[0] <= 0.2 + 0.8
    assert 0.45 <= times[2] - times[1] <= 0.5 + 0.8
    assert letter.message_id == sent.id and letter.attempts == 3
    assert letter.header(H_DEAD_LETTER_REASON) == "attempts-exhausted"
    assert letter.header(H_FIRST_ERROR) == letter.header(H_LAST_ERROR) == "HTTP 503"
    assert letter.header(H_DEAD_LETTERED_AT)


def test_a_permanent_failure_is_dead_lettered_at_once_with_its_story_in_headers(twin, unique_name):
    bus = twin.build(make_route(unique_name, destinations=("a",)))
    handler = Recorder(raising(Permanent("HTTP 422: sku unknown")))
    bus.consume(unique_name, "a", handler)

    bus.publish_confirmed(sent := envelope(7), unique_name)

    (letter,) = wait_until(lambda: bus.dead_letters(unique_name, "a"))
    assert len(handler.calls) == 1
    assert (letter.message_id, letter.correlation_id, letter.destination) == (sent.id, "PO-7", "a")
    assert json.loads(letter.body) == sent.payload
    assert letter.header(H_ROUTE) == unique_name and letter.header(H_DESTINATION) == "a"
    assert letter.headers[H_ATTEMPTS] == 1
    assert letter.header(H_DEAD_LETTER_REASON) == "permanent"
    assert letter.header(H_FIRST_ERROR_CLASS) == letter.header(H_LAST_ERROR_CLASS) == "esb.errors.Permanent"
    assert letter.header(H_FIRST_ERROR) == letter.header(H_LAST_ERROR) == "HTTP 422: sku unknown"
    assert letter.header(H_FIRST_FAILED_AT) and letter.header(H_LAST_FAILED_AT)
    assert letter.header("esb-source") == "erp"  # the envelope's own headers are kept


def test_a_message_that_is_not_an_envelope_is_dead_lettered_as_undecodable(twin, unique_name):
    bus = twin.build(make_route(unique_name, destinations=("a",)))
    handler = Recorder()
    bus.consume(unique_name, "a", handler)

    twin.publish_raw(work(unique_name, "a"), b"{not json", message_id="m-1")

    (letter,) = wait_until(lambda: bus.dead_letters(unique_name, "a"))
    assert handler.calls == []
    assert (letter.message_id, letter.body) == ("m-1", b"{not json")
    assert letter.header(H_DEAD_LETTER_REASON) == "undecodable"


@pytest.mark.parametrize("inline", [False, True], ids=["on a worker thread", "inline"])
def test_a_handler_may_return_a_future_and_is_settled_by_it(twin, unique_name, inline):
    target = make_route(unique_name + "out", destinations=("x",))
    bus = twin.build(make_route(unique_name, destinations=("a",)), target)
    bus.consume(unique_name, "a", lambda e, d: bus.publish(e.derive(), target.name), inline=inline)

    bus.publish_confirmed(envelope(), unique_name)

    wait_until(lambda: twin.depth(work(target.name, "x")) == 1)
    bus.stop(timeout=2)
    assert twin.depth(work(unique_name, "a")) == 0


def test_a_failed_future_is_retried_like_a_raised_error(twin, unique_name):
    bus = twin.build(make_route(unique_name, destinations=("a",), retry=ONCE_MORE))

    def failing_future(envelope, delivery):
        future = concurrent.futures.Future()
        future.set_exception(Retryable("target busy"))
        return future

    handler = Recorder(failing_future)
    bus.consume(unique_name, "a", handler)

    bus.publish_confirmed(envelope(), unique_name)

    (letter,) = wait_until(lambda: bus.dead_letters(unique_name, "a"))
    assert letter.attempts == 2 and letter.header(H_LAST_ERROR) == "target busy"


def test_a_slow_target_does_not_hold_up_another_destination(twin, unique_name):
    bus = twin.build(make_route(unique_name))
    release = threading.Event()
    slow, fast = Recorder(lambda e, d: release.wait(10)), Recorder()
    bus.consume(unique_name, "a", slow, concurrency=1)
    bus.consume(unique_name, "b", fast)

    for n in range(20):
        bus.publish(envelope(n), unique_name).result(5)

    wait_until(lambda: len(fast.calls) == 20, timeout=5)
    assert len(slow.calls) == 1
    release.set()
    wait_until(lambda: len(slow.calls) == 20, timeout=5)


def test_transport_events_report_acks_retries_and_dead_letters(twin, unique_name):
    class Events(TransportEvents):
        def __init__(self):
            self.seen = []

        def acked(self, delivery, seconds):
            self.seen.append(("acked", delivery.attempt))

        def retried(self, delivery, error, delay):
            self.seen.append(("retried", delivery.attempt, delay))

        def dead_lettered(self, delivery, error, reason):
            self.seen.append(("dead-lettered", delivery.attempt, reason))

    events = Events()
    bus = twin.build(make_route(unique_name, destinations=("a",), retry=ONCE_MORE),
                     events=events)
    bus.consume(unique_name, "a", Recorder(lambda e, d: None if e.correlation_id == "PO-1" else 1 / 0))

    bus.publish_confirmed(envelope(1), unique_name)
    wait_until(lambda: events.seen)
    bus.publish_confirmed(envelope(2), unique_name)

    wait_until(lambda: len(events.seen) == 3)
    assert events.seen == [("acked", 1), ("retried", 1, 0.2), ("dead-lettered", 2, "attempts-exhausted")]


# --- dead-letter admin ------------------------------------------------------------------------
def dead_letter_three(bus, unique_name):
    sent = [envelope(n) for n in range(3)]
    bus.consume(unique_name, "a", Recorder(raising(Permanent("no"))))
    for e in sent:
        bus.publish(e, unique_name, "a").result(5)
    wait_until(lambda: len(bus.dead_letters(unique_name, "a")) == 3)
    return sent


def test_a_replayed_message_keeps_its_id_starts_afresh_and_goes_to_its_own_destination_only(
        twin, unique_name):
    bus = twin.build(make_route(unique_name))
    other = Recorder()
    bus.consume(unique_name, "b", other)
    sent = dead_letter_three(bus, unique_name)
    bus.stop(timeout=2)
    bus = twin.build(make_route(unique_name))
    replayed = Recorder()
    bus.consume(unique_name, "a", replayed)
    bus.consume(unique_name, "b", other)

    assert bus.replay_dead_letters(unique_name, "a", ids=[sent[1].id]) == 1

    wait_until(lambda: replayed.calls)
    _, received, delivery = replayed.calls[0]
    assert received.id == sent[1].id and received.correlation_id == "PO-1"
    assert delivery.attempt == 1 and delivery.headers[H_REPLAYS] == 1
    assert H_DEAD_LETTER_REASON not in delivery.headers
    assert [d.message_id for d in bus.dead_letters(unique_name, "a")] == [sent[0].id, sent[2].id]
    time.sleep(0.2)
    assert other.calls == []


def test_dead_letters_are_listed_without_being_removed_and_purged_by_id_or_all(twin, unique_name):
    bus = twin.build(make_route(unique_name))
    sent = dead_letter_three(bus, unique_name)

    assert [d.message_id for d in bus.dead_letters(unique_name, "a")] == [e.id for e in sent]
    assert len(bus.dead_letters(unique_name, limit=2)) == 2
    assert bus.purge_dead_letters(unique_name, "a", ids=[sent[0].id]) == 1
    assert [d.message_id for d in bus.dead_letters(unique_name, "a")] == [sent[1].id, sent[2].id]
    assert bus.purge_dead_letters(unique_name) == 2
    assert bus.dead_letters(unique_name) == []


def test_a_raw_payload_with_bad_input_goes_to_the_routes_dead_letter_queue(twin, unique_name):
    bus = twin.build(make_route(unique_name))

    bus.publish_dead_letter(unique_name, None, b"GR;1;x", DecodeError("line 1: qty is not a number"),
                            {"esb-source-file": "GR_1.csv"}, message_id="raw-1",
                            content_type="text/csv").result(5)

    (letter,) = bus.dead_letters(unique_name)
    assert (letter.destination, letter.message_id, letter.body) == (None, "raw-1", b"GR;1;x")
    assert letter.content_type == "text/csv"
    assert letter.header(H_DEAD_LETTER_REASON) == "input"
    assert letter.header(H_LAST_ERROR) == "line 1: qty is not a number"
    assert letter.header("esb-source-file") == "GR_1.csv"
    assert bus.replay_dead_letters(unique_name) == 0  # not a message yet: the inbound stage's business


# --- pause, stop, restart ----------------------------------------------------------------------
def test_a_paused_destination_keeps_its_messages_queued_until_it_is_resumed(twin, unique_name):
    bus = twin.build(make_route(unique_name))
    paused_handler, other_handler = Recorder(), Recorder()
    bus.consume(unique_name, "a", paused_handler)
    bus.consume(unique_name, "b", other_handler)

    assert bus.pause(unique_name, "a") == ["a"]
    assert bus.paused(unique_name) == {"a"}
    for n in range(3):
        bus.publish_confirmed(envelope(n), unique_name)
    wait_until(lambda: len(other_handler.calls) == 3)
    time.sleep(0.3)

    assert paused_handler.calls == []
    assert twin.depth(work(unique_name, "a")) == 3
    assert bus.resume(unique_name) == ["a", "b"]
    wait_until(lambda: len(paused_handler.calls) == 3)
    assert bus.paused(unique_name) == set()


def test_stop_loses_nothing_in_hand_and_a_restart_delivers_it(twin, unique_name):
    bus = twin.build(make_route(unique_name, destinations=("a",)))
    release = threading.Event()
    stuck = Recorder(lambda e, d: release.wait(10))
    bus.consume(unique_name, "a", stuck, concurrency=1)
    sent = [envelope(n) for n in range(5)]
    for e in sent:
        bus.publish(e, unique_name).result(5)
    wait_until(lambda: stuck.calls)

    started = time.monotonic()
    bus.stop(timeout=0.5)
    assert time.monotonic() - started < 3
    release.set()
    assert twin.depth(work(unique_name, "a")) == 5

    again = twin.build(make_route(unique_name, destinations=("a",)))
    handler = Recorder()
    again.consume(unique_name, "a", handler)
    wait_until(lambda: len(handler.calls) == 5)
    assert sorted(handler.ids) == sorted(e.id for e in sent)
    assert handler.calls[0][2].redelivered  # the one that was in hand when the first bus stopped


# --- the embedded transport only: one file, several processes ------------------------------------
def test_a_message_survives_a_process_restart(embedded, unique_name):
    first = embedded.build(make_route(unique_name, destinations=("a",)))
    first.publish_confirmed(sent := envelope(), unique_name)
    first.stop()

    second = embedded.build(make_route(unique_name, destinations=("a",)))
    handler = Recorder()
    second.consume(unique_name, "a", handler)

    wait_until(lambda: handler.calls)
    assert handler.calls[0][1] == sent and not handler.calls[0][2].redelivered


CRASHING_CONSUMER = textwrap.dedent("""
    import os, sys
    from esb.transport.embedded import EmbeddedTransport
    from tests.integration.test_rabbitmq import make_route

    def crash(envelope, delivery):
        os._exit(3)  # dies holding the lease: no ack, no stop()

    bus = EmbeddedTransport(sys.argv[1], [make_route(sys.argv[2], destinations=("a",))], lease=0.5,
                            poll_interval=0.02)
    bus.consume(sys.argv[2], "a", crash)
    bus.start()
    import time; time.sleep(30)
""")


def test_a_message_whose_consumer_crashed_is_redelivered_when_its_lease_expires(embedded, unique_name):
    route = make_route(unique_name, destinations=("a",))
    publisher = embedded.build(route)
    publisher.publish_confirmed(sent := envelope(), unique_name)

    crashed = subprocess.run([sys.executable, "-c", CRASHING_CONSUMER, str(embedded.path), unique_name],
                             cwd=PROJECT, timeout=30, capture_output=True, text=True)
    assert crashed.returncode == 3, crashed.stderr
    assert embedded.depth(work(unique_name, "a")) == 0  # still leased to the dead process

    handler = Recorder()
    publisher.consume(unique_name, "a", handler)

    wait_until(lambda: handler.calls, timeout=5)
    _, received, delivery = handler.calls[0]
    assert received.id == sent.id and delivery.redelivered and delivery.attempt == 1


def test_two_transports_on_one_file_never_deliver_one_message_to_both(embedded, unique_name):
    route = make_route(unique_name, destinations=("a",))
    publisher = embedded.build(route)
    sent = [envelope(n) for n in range(200)]
    for e in sent:
        publisher.publish(e, unique_name).result(5)
    handlers = [Recorder(lambda e, d: time.sleep(0.005)), Recorder(lambda e, d: time.sleep(0.005))]
    consumers = [embedded.build(route, prefetch=5, start=False) for _ in range(2)]
    for bus, handler in zip(consumers, handlers, strict=True):
        bus.consume(unique_name, "a", handler, concurrency=4)

    for bus in consumers:
        bus.start()

    wait_until(lambda: sum(len(h.calls) for h in handlers) >= 200, timeout=20)
    time.sleep(0.2)
    delivered = handlers[0].ids + handlers[1].ids
    assert sorted(delivered) == sorted(e.id for e in sent)  # each exactly once
    assert handlers[0].calls and handlers[1].calls  # both took part


def test_queue_stats_count_ready_messages_dead_letters_and_consumers(twin, unique_name):
    bus = twin.build(make_route(unique_name))
    bus.publish_confirmed(envelope(1), unique_name, "a")
    bus.publish_confirmed(envelope(2), unique_name, "a")
    bus.consume(unique_name, "b", Recorder(raising(Permanent("no"))))
    bus.publish_confirmed(envelope(3), unique_name, "b")

    wait_until(lambda: bus.queue_stats().get(names.dead_letter_queue_name(unique_name, "b"), (0, 0))[0] == 1)
    stats = bus.queue_stats()

    assert stats[work(unique_name, "a")] == (2, 0)  # nobody consumes a
    assert stats[work(unique_name, "b")] == (0, 1)
    assert stats[names.dead_letter_queue_name(unique_name, "a")][0] == 0
    assert set(stats) <= {q.name for q in bus.topology.queues}


def test_the_embedded_queue_stats_count_ready_waiting_and_dead_messages(embedded, unique_name):
    from esb.errors import Retryable
    from tests.integration.test_rabbitmq import Recorder, envelope, make_route, raising, wait_until

    bus = embedded.build(make_route(unique_name, destinations=("a",)))
    bus.publish_confirmed(envelope(1), unique_name)
    bus.publish_confirmed(envelope(2), unique_name)
    stats = bus.queue_stats()
    assert stats[f"esb.{unique_name}.a"] == (2, 0)

    handler = Recorder(raising(Retryable("down")))
    bus.consume(unique_name, "a", handler)
    wait_until(lambda: len(handler.calls) >= 2)
    retry_queues = [q.name for q in bus.topology.queues if q.kind == "retry"]
    dead_letter_queue = f"esb.{unique_name}.a.dlq"
    wait_until(lambda: bus.queue_stats()[retry_queues[0]][0] + bus.queue_stats()[dead_letter_queue][0] == 2)
    assert bus.queue_stats()[f"esb.{unique_name}.a"][1] == 1  # one consumer here
