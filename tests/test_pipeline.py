"""The inbound pipeline without a broker: decode, map, validate, filter, envelopes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from esb.errors import DecodeError, ValidationError
from esb.mapping import load_mapping
from esb.pipeline import InboundPipeline
from esb.retry import RetryPolicy
from esb.routes import Destination, Endpoint, Route
from esb.schemas import DocumentKeys, default_registry
from tests.conftest import PROJECT

ORDER = json.loads((PROJECT / "schemas" / "purchase_order.v1.json").read_text())["examples"][0]


def route(filter_: str | None = None, **destination_filters: str) -> Route:
    names = destination_filters or {"wms": None}
    destinations = tuple(Destination(name, Endpoint("rest", {"system": name}), filter=condition)
                         for name, condition in names.items())
    return Route(name="r", source=Endpoint("rest", {"system": "erp"}), destinations=destinations,
                 validate="purchase_order", filter=filter_, retry=RetryPolicy())


def pipeline(route_model: Route, mapping=None) -> InboundPipeline:
    return InboundPipeline(route_model, mapping=mapping, validate=default_registry().validate, source="erp")


def body(*orders: dict) -> bytes:
    return json.dumps(orders[0] if len(orders) == 1 else list(orders)).encode()


def test_a_valid_order_becomes_an_envelope_with_its_business_keys():
    [message] = pipeline(route()).prepare(body(ORDER))
    envelope = message.envelope
    assert envelope.type == "purchase_order" and envelope.source == "erp"
    assert envelope.correlation_id == ORDER["order_number"]
    assert envelope.idempotency_key == f"erp:purchase_order:{ORDER['order_number']}:0"
    assert message.destinations == ("wms",)


def test_the_revision_named_by_the_schema_is_part_of_the_idempotency_key():
    [message] = pipeline(route()).prepare(body({**ORDER, "revision": 3}))

    assert message.envelope.idempotency_key == f"erp:purchase_order:{ORDER['order_number']}:3"


def test_the_business_time_is_the_field_the_schema_names():
    receipt = default_registry().schema("goods_receipt")["examples"][0]
    receipts = Route(name="r", source=Endpoint("rest", {"system": "wms"}),
                     destinations=(Destination("erp", Endpoint("rest", {"system": "erp"})),),
                     validate="goods_receipt")

    [message] = pipeline(receipts).prepare(body(receipt))

    assert message.envelope.occurred_at == receipt["received_at"]
    assert message.envelope.correlation_id == receipt["receipt_number"]


def test_a_purchase_order_has_no_business_time_as_its_order_date_is_a_date():
    [message] = pipeline(route()).prepare(body(ORDER))

    assert message.envelope.occurred_at is None


def test_the_keys_come_from_the_registry_the_pipeline_is_given():
    asked = []

    def document_keys(type_name: str, version: int) -> DocumentKeys:
        asked.append((type_name, version))
        return DocumentKeys(document_number="warehouse")

    with_keys = InboundPipeline(route(), mapping=None, validate=default_registry().validate, source="erp",
                                document_keys=document_keys)
    [message] = with_keys.prepare(body({**ORDER, "warehouse": "WH9"}))

    assert asked == [("purchase_order", 1)]
    assert message.envelope.correlation_id == "WH9"
    assert message.envelope.idempotency_key == "erp:purchase_order:WH9:0"


def test_quantities_stay_exact_decimals():
    lines = [{**ORDER["lines"][0], "quantity": 0.1}, {**ORDER["lines"][1], "quantity": 0.2}]
    [message] = pipeline(route()).prepare(body({**ORDER, "lines": lines}))
    assert sum(line["quantity"] for line in message.envelope.payload["lines"]) == Decimal("0.3")


def test_what_the_route_filter_does_not_match_gets_no_destination():
    other = {**ORDER, "warehouse": "WH2"}
    messages = pipeline(route("payload.warehouse == 'WH1'")).prepare(body(ORDER, other))
    assert [(m.envelope.payload["warehouse"], m.destinations) for m in messages] == [("WH1", ("wms",)),
                                                                                       ("WH2", ())]


def test_destination_filters_route_each_message_to_the_destinations_it_matches():
    routing = route(wms="payload.warehouse == 'WH1'", archive=None, wh2="payload.warehouse == 'WH2'")
    first, second = pipeline(routing).prepare(body(ORDER, {**ORDER, "warehouse": "WH2"}))
    assert first.destinations == ("wms", "archive") and second.destinations == ("archive", "wh2")


def test_one_invalid_document_refuses_the_whole_input_naming_its_position():
    bad = {**ORDER, "lines": [{**ORDER["lines"][0], "quantity": -1}]}
    with pytest.raises(ValidationError) as error:
        pipeline(route()).prepare(body(ORDER, bad))
    assert [p.path for p in error.value.problems] == ["[1].lines[0].quantity"]


def test_undecodable_json_is_a_decode_error():
    with pytest.raises(DecodeError, match="not valid JSON"):
        pipeline(route()).prepare(b'{"order_number": ')


def test_an_idoc_goes_through_the_shipped_mapping():
    mapping = load_mapping(PROJECT / "mappings" / "erp" / "purchase_order.in.yaml")
    idoc = PROJECT / "mappings" / "erp" / "purchase_order.in.cases" / "two_lines_cartons_and_pieces.input.xml"
    [message] = pipeline(route(), mapping).prepare(idoc.read_bytes())
    assert message.envelope.correlation_id == "4500012345" and message.envelope.payload["warehouse"] == "WH1"


def test_a_given_message_id_is_the_id_of_the_one_message_and_the_seed_of_several():
    seed = "6f1c1b8e-3c1d-4d59-9a53-1c1e0f6f3a10"
    second = {**ORDER, "order_number": ORDER["order_number"] + "-2"}

    [one] = pipeline(route()).prepare(body(ORDER), message_id=seed)
    several = pipeline(route()).prepare(body(ORDER, second), message_id=seed)
    again = pipeline(route()).prepare(body(ORDER, second), message_id=seed)

    assert one.envelope.id == seed
    ids = [message.envelope.id for message in several]
    assert len(set(ids)) == 2 and seed not in ids
    assert ids == [message.envelope.id for message in again]
