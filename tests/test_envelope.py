"""The envelope is built and parsed in one place and round-trips through JSON and AMQP."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pika
import pytest

from esb.envelope import Envelope, parse_rfc3339


def _order() -> Envelope:
    return Envelope(type="purchase_order", source="erp", correlation_id="4500001234",
                    occurred_at="2026-11-24T08:30:00+08:00", idempotency_key="erp:4500001234:0",
                    payload={"order_number": "4500001234", "lines": [{"quantity": Decimal("0.1")},
                                                                       {"quantity": Decimal("0.2")}]})


def test_a_new_envelope_has_a_uuid_id_and_an_rfc3339_receive_time_with_offset():
    envelope = _order()
    assert uuid.UUID(envelope.id).version == 4
    assert parse_rfc3339(envelope.received_at).utcoffset() is not None


def test_an_envelope_round_trips_through_json_with_exact_decimals():
    envelope = _order()
    again = Envelope.from_json(envelope.to_json())
    assert again == envelope
    assert sum(line["quantity"] for line in again.payload["lines"]) == Decimal("0.3")


def test_an_envelope_round_trips_through_amqp_properties_and_headers():
    envelope = _order()
    properties = pika.BasicProperties(delivery_mode=2, **envelope.amqp_properties())
    assert properties.message_id == envelope.id and properties.correlation_id == "4500001234"
    assert Envelope.from_amqp(properties, envelope.amqp_body()) == envelope


def test_amqp_headers_that_arrive_as_bytes_are_read_as_text():
    envelope = _order()
    properties = pika.BasicProperties(**envelope.amqp_properties())
    properties.headers = {k: v.encode() if isinstance(v, str) else v for k, v in properties.headers.items()}
    assert Envelope.from_amqp(properties, envelope.amqp_body()) == envelope


def test_a_derived_message_keeps_the_correlation_and_names_its_cause():
    envelope = _order()
    child = envelope.derive(type="inbound_notice", payload={"notice_number": "1"})
    assert child.id != envelope.id and child.causation_id == envelope.id
    assert child.correlation_id == envelope.correlation_id


@pytest.mark.parametrize("bad", [
    {"id": "not-a-uuid"},
    {"occurred_at": "2026-11-24T08:30:00"},  # no offset
    {"schema_version": 0},
])
def test_an_envelope_with_a_bad_field_is_refused(bad):
    with pytest.raises(ValueError):
        Envelope(type="purchase_order", source="erp", payload={}, **bad)


def test_an_envelope_missing_its_type_names_the_field():
    with pytest.raises(ValueError, match="type"):
        Envelope.from_dict({"payload": {}, "source": "erp"})
