"""The pure parts of the transport: names, topology, the outcome decision, headers, ack batching,
the publisher's confirm bookkeeping (on a stand-in channel that records its publishes)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pika
import pytest

from esb.errors import MappingError, Permanent, Retryable
from esb.retry import RetryPolicy
from esb.routes import Destination, Endpoint, Route
from esb.transport import create_transport, names
from esb.transport.contract import ACK, Action, DeadLetter, decide
from esb.transport.errors import PublishNacked, TopologyError, TransportError
from esb.transport.headers import (
    H_ATTEMPTS,
    H_DEAD_LETTER_REASON,
    H_FIRST_ERROR,
    H_FIRST_ERROR_CLASS,
    H_LAST_ERROR,
    H_LAST_FAILED_AT,
    H_REPLAYS,
    dead_letter_headers,
    failure_headers,
    replay_headers,
)
from esb.transport.rabbitmq_connection import broker_urls, redacted
from esb.transport.rabbitmq_consuming import AckTracker
from esb.transport.rabbitmq_publisher import ConfirmedPublisher
from esb.transport.topology import DEAD_LETTER, INBOUND_DEAD_LETTER, RETRY, WORK, Topology


def route(name="orders", destinations=("wms", "erp"), retry=None, **options) -> Route:
    return Route(name=name, source=Endpoint("rest", {}),
                 destinations=tuple(Destination(d, Endpoint("rest", {})) for d in destinations),
                 retry=retry or RetryPolicy(attempts=4, backoff=(1.0, 5.0)), options=options)


# --- names ------------------------------------------------------------------------------------
def test_queue_names_are_predictable():
    assert names.exchange_name() == "esb"
    assert names.work_queue_name("orders", "wms") == "esb.orders.wms"
    assert names.retry_queue_name("orders", "wms", 5) == "esb.orders.wms.retry.5s"
    assert names.dead_letter_queue_name("orders", "wms") == "esb.orders.wms.dlq"
    assert names.dead_letter_queue_name("orders") == "esb.orders.dlq"


@pytest.mark.parametrize(("seconds", "label"), [(0.2, "200ms"), (1, "1s"), (90, "90s"), (120, "2m"),
                                                 (3600, "1h"), (1.5, "1500ms"), (0, "0ms")])
def test_delays_get_short_exact_labels(seconds, label):
    assert names.delay_label(seconds) == label


def test_names_with_dots_or_reserved_words_are_refused():
    assert names.check_name("route", "orders") is None
    assert "dot" in names.check_name("route", "a.b")
    assert "reserved" in names.check_name("destination", "dlq")


# --- topology ---------------------------------------------------------------------------------
def test_topology_has_work_retry_and_dead_letter_queues_per_destination():
    topology = Topology.from_routes([route(retry=RetryPolicy(attempts=5, backoff=(1.0, 5.0)))])

    wms = {q.name: q for q in topology.of("orders", "wms")}
    assert set(wms) == {"esb.orders.wms", "esb.orders.wms.retry.1s", "esb.orders.wms.retry.5s",
                        "esb.orders.wms.dlq"}
    assert wms["esb.orders.wms"].kind == WORK and wms["esb.orders.wms"].binding_key == "orders"
    assert wms["esb.orders.wms.dlq"].kind == DEAD_LETTER
    retry = wms["esb.orders.wms.retry.5s"]
    assert retry.kind == RETRY
    assert retry.arguments == {"x-message-ttl": 5000, "x-dead-letter-exchange": "",
                               "x-dead-letter-routing-key": "esb.orders.wms"}
    assert [q.kind for q in topology.of("orders") if q.destination is None] == [INBOUND_DEAD_LETTER]


def test_a_work_queue_dead_letters_what_the_broker_drops_into_its_dead_letter_queue():
    work = Topology.from_routes([route()]).queue("esb.orders.erp")

    assert work.arguments["x-dead-letter-routing-key"] == "esb.orders.erp.dlq"


def test_quorum_queues_are_a_route_option_or_a_default():
    per_route = Topology.from_routes([route(queue_type="quorum"), route(name="other")])
    assert per_route.queue("esb.orders.wms").queue_type == "quorum"
    assert per_route.queue("esb.orders.wms.retry.1s").arguments["x-dead-letter-strategy"] == "at-least-once"
    assert per_route.queue("esb.other.wms").queue_type == "classic"

    default = Topology.from_routes([route()], queue_type="quorum")
    assert default.queue("esb.orders.dlq").queue_type == "quorum"


def test_a_topology_with_unusable_names_reports_every_problem():
    with pytest.raises(TopologyError) as caught:
        Topology.from_routes([route(name="a.b", destinations=("dlq",)), route(name="c", queue_type="fast")])

    text = str(caught.value)
    assert "a.b" in text and '"dlq" is reserved' in text and 'queue_type "fast"' in text


def test_a_topology_describes_itself_for_people():
    text = Topology.from_routes([route()]).describe()

    assert text.splitlines()[0].startswith("exchange esb")
    assert "esb.orders.wms.retry.5s" in text and "retry after 5s" in text
    assert 'bound to esb with key "orders"' in text


# --- the outcome decision ---------------------------------------------------------------------
POLICY = RetryPolicy(attempts=3, backoff=(0.2, 0.5))


def test_a_handler_that_returns_is_acked():
    assert decide(None, 1, POLICY) is ACK


def test_a_retryable_error_waits_the_next_backoff_delay():
    assert decide(Retryable("timeout"), 1, POLICY).delay == 0.2
    assert decide(Retryable("timeout"), 2, POLICY).delay == 0.5


def test_a_retryable_error_is_dead_lettered_when_attempts_are_used_up():
    decision = decide(Retryable("timeout"), 3, POLICY)

    assert decision.action is Action.DEAD_LETTER and decision.reason == "attempts-exhausted"


def test_a_permanent_error_is_dead_lettered_at_once():
    assert decide(Permanent("HTTP 400"), 1, POLICY).reason == "permanent"
    assert decide(MappingError("no sku"), 1, POLICY).reason == "input"


def test_an_unknown_exception_is_retryable():
    assert decide(KeyError("x"), 1, POLICY).action is Action.RETRY


# --- headers ----------------------------------------------------------------------------------
def test_failure_headers_keep_the_first_error_and_update_the_last():
    first = failure_headers({"esb-source": "erp", "x-death": [{}]}, Retryable("timeout"),
                           route="orders", destination="wms", attempts=1, now="T1")
    second = failure_headers(first, ConnectionError("refused"), route="orders", destination="wms",
                             attempts=2, now="T2")

    assert "x-death" not in first
    assert second["esb-source"] == "erp"
    assert second[H_ATTEMPTS] == 2
    assert (second[H_FIRST_ERROR_CLASS], second[H_FIRST_ERROR]) == ("esb.errors.Retryable", "timeout")
    assert (second[H_LAST_ERROR], second[H_LAST_FAILED_AT]) == ("refused", "T2")


def test_a_long_error_text_is_cut():
    headers = failure_headers({}, ValueError("x" * 5000), route="r", destination="d", attempts=1)

    assert len(headers[H_LAST_ERROR]) == 2000


def test_a_replay_starts_afresh_and_counts_replays():
    dead = dead_letter_headers({"esb-source": "erp"}, Permanent("bad"), route="r", destination="d",
                               attempts=1, reason="permanent")
    replayed = replay_headers(replay_headers(dead))

    assert dead[H_DEAD_LETTER_REASON] == "permanent"
    assert H_ATTEMPTS not in replayed and H_FIRST_ERROR not in replayed
    assert replayed["esb-source"] == "erp" and replayed[H_REPLAYS] == 2


def test_a_dead_letter_summarises_its_failure():
    headers = dead_letter_headers({}, Permanent("HTTP 422"), route="r", destination="d", attempts=2,
                                  reason="permanent")
    letter = DeadLetter("r", "d", "id-1", "PO-1", "order", "application/json", b'{"a":1}', headers)

    assert letter.summary()["last_error"] == "esb.errors.Permanent: HTTP 422"
    assert letter.attempts == 2
    assert letter.as_dict()["body"] == '{"a":1}'


# --- ack batching -----------------------------------------------------------------------------
def test_in_order_completions_are_acked_with_one_multiple_ack():
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.delivered(tag)
        tracker.completed(tag)

    assert tracker.flush() == (3, [])
    assert tracker.in_hand() == 0


def test_a_slow_message_does_not_hold_back_the_acks_of_later_ones():
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.delivered(tag)
    tracker.completed(2)
    tracker.completed(3)

    assert tracker.flush() == (None, [2, 3])
    assert tracker.in_hand() == 1
    tracker.completed(1)
    assert tracker.flush() == (1, [])  # 2 and 3 are settled already: the multiple ack stops at 1
    assert tracker.in_hand() == 0


def test_a_multiple_ack_never_names_a_tag_that_is_already_settled():
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.delivered(tag)
    tracker.settled(3)  # nacked
    tracker.completed(1)
    tracker.completed(2)

    assert tracker.flush() == (2, [])
    assert tracker.in_hand() == 0


# --- the publisher's confirms -------------------------------------------------------------------
class RecordingChannel:
    def __init__(self):
        self.sent: list[str] = []

    def basic_publish(self, exchange, key, body, properties, mandatory):
        self.sent.append(properties.message_id)


def confirm(tag: int, *, acked: bool = True):
    method = (pika.spec.Basic.Ack if acked else pika.spec.Basic.Nack)(delivery_tag=tag, multiple=False)
    return SimpleNamespace(method=method)


def test_a_nacked_publish_fails_alone_and_the_rest_go_out_on_a_new_channel():
    connected = threading.Event()
    connected.set()
    renewed: list[RecordingChannel] = []
    publisher = ConfirmedPublisher(connected, wake=lambda: None, renew=renewed.append)
    old, new = RecordingChannel(), RecordingChannel()
    publisher.opened(old)
    first, second = (publisher.submit("esb", "r", b"{}", pika.BasicProperties(message_id=i)) for i in "12")
    publisher.flush()

    publisher.on_confirm(confirm(1, acked=False))
    third = publisher.submit("esb", "r", b"{}", pika.BasicProperties(message_id="3"))
    publisher.flush()
    assert old.sent == ["1", "2"] and not renewed  # nothing more on it; the second still waits
    publisher.on_confirm(confirm(2))
    publisher.flush()

    assert isinstance(first.exception(0), PublishNacked) and second.result(0) is None
    assert renewed == [old] and not third.done()  # every confirm of the old channel came: renewed
    publisher.opened(new)
    publisher.flush()
    publisher.on_confirm(confirm(1))
    assert new.sent == ["3"] and third.result(0) is None


# --- the factory and helpers ------------------------------------------------------------------
def test_an_amqp_url_makes_a_rabbitmq_transport_without_connecting():
    transport = create_transport("amqp://guest:secret@127.0.0.1:1/%2F", [route()])

    assert type(transport).__name__ == "RabbitMQTransport"
    assert not transport.connected


def test_no_broker_url_makes_an_embedded_transport_in_the_data_directory(tmp_path):
    transport = create_transport(None, [route()], data_dir=tmp_path)

    assert type(transport).__name__ == "EmbeddedTransport"
    assert transport.path == tmp_path / "transport.sqlite"
    assert not transport.connected


def test_an_unknown_broker_url_scheme_is_an_error():
    with pytest.raises(TransportError, match="unknown broker URL scheme"):
        create_transport("kafka://host", [route()])


def test_a_misspelt_broker_url_scheme_gets_a_suggestion():
    with pytest.raises(TransportError, match='did you mean "amqp"'):
        create_transport("amqq://host", [route()])


def test_passwords_never_reach_a_message():
    assert redacted("amqp://guest:secret@host:5672/%2F") == "amqp://guest:***@host:5672/%2F"


def test_several_broker_urls_are_a_list_or_separated_by_commas():
    nodes = ["amqp://guest:guest@127.0.0.1:1/%2F", "amqp://guest:guest@127.0.0.1:2/%2F"]

    assert broker_urls(" , ".join(nodes)) == nodes
    assert broker_urls(nodes) == nodes
    assert create_transport(nodes, [route()]).urls == nodes
    assert create_transport(",".join(nodes), [route()]).url == nodes[0]
    with pytest.raises(TransportError, match="no broker URL"):
        broker_urls(" , ")
