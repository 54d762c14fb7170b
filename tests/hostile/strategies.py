"""Hypothesis strategies of hostile bodies for the inbound endpoints, shared by the tests (short
runs) and `bench/hostile` (long ones): arbitrary JSON, the valid samples with one value replaced
by a hostile one, mangled XML and SOAP, raw bytes."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape

from hypothesis import strategies as st
from lxml import etree

from tests.hostile.conftest import SOAP11, idoc, shipment, soap_call

HOSTILE_NUMBERS = ["1e400", "-1e400", "1e999999999", "1e-400", "9" * 4000, "0." + "1" * 5000, "-0", "NaN",
                   "Infinity", "123456789012345678901234567890", "0x10", "1_000", "١٢٣"]
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["\u0000", "\u0000PO", "PO\u001f", " ", "", "\ufeff", "\u202e", "%00",
                     "../../etc/passwd", "' OR 1=1 --", "<script>alert(1)</script>", "${jndi:ldap://x}",
                     "{{7*7}}", "A" * 70_000]),
    st.text(max_size=80),
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | HOSTILE_TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def json_bodies() -> st.SearchStrategy[bytes]:
    sample = json.loads(shipment())
    paths = [("data", "shipmentId"), ("data", "orderRef"), ("data", "facility"), ("data", "shippedAt"),
             ("data", "lines"), ("data",), ("event",)]

    def replaced(path, value):
        document = json.loads(json.dumps(sample))
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return json.dumps(document).encode()

    def with_number(text):
        return shipment().replace(b'"qtyShipped": 20', b'"qtyShipped": ' + text.encode(), 1)

    return st.one_of(
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        st.builds(replaced, st.sampled_from(paths), JSON_VALUES),
        st.sampled_from(HOSTILE_NUMBERS).map(with_number),
        st.integers(1, 3000).map(lambda depth: shipment().replace(b'"event"', b'"x": ' + b"[" * depth
                                                                  + b"]" * depth + b', "event"', 1)),
        st.binary(max_size=200),
    )


def _xml_with(text_of_field: tuple[bytes, str]) -> bytes:
    tag, value = text_of_field
    body = idoc()
    start = body.index(b"<" + tag + b">") + len(tag) + 2
    end = body.index(b"</" + tag + b">", start)
    return body[:start] + escape(value).encode("utf-8", "surrogatepass") + body[end:]


def xml_bodies() -> st.SearchStrategy[bytes]:
    tags = [b"BELNR", b"MENGE", b"POSEX", b"MENEE", b"DATUM", b"WERKS", b"IDTNR", b"MESTYP"]
    values = st.one_of(st.sampled_from(HOSTILE_NUMBERS), HOSTILE_TEXT)
    return st.one_of(
        st.tuples(st.sampled_from(tags), values).map(_xml_with),
        st.integers(1, len(idoc()) - 1).map(lambda cut: idoc()[:cut]),
        st.integers(1, 400).map(lambda depth: idoc().replace(b"</E1EDK01>", b"<X>" * depth + b"</X>" * depth
                                                             + b"</E1EDK01>", 1)),
        st.sampled_from([b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', b"<x>&unknown;</x>", b"<?xml?>",
                         b"<a xmlns:b='urn:x'><b:c/></a>", b"\xff\xfe<\x00a\x00/\x00>\x00"]),
        st.binary(max_size=200),
    )


def soap_bodies() -> st.SearchStrategy[bytes]:
    values = st.one_of(st.sampled_from(HOSTILE_NUMBERS), HOSTILE_TEXT).map(escape)
    return st.one_of(
        st.builds(lambda receipt: soap_call(receipt=receipt or "R"), values),
        st.builds(lambda quantity: soap_call(quantity=quantity), values),
        st.builds(lambda line: soap_call(line=line), values),
        st.integers(0, 3).map(lambda bodies: soap_call(bodies=bodies)),
        st.integers(1, 600).map(lambda cut: soap_call()[:cut]),
        st.binary(max_size=200),
    )


def is_refused_well(response) -> bool:
    """A 4xx, or a SOAP Client (1.1) / Sender (1.2) fault, which SOAP 1.1 sends as HTTP 500."""
    if 400 <= response.status_code < 500:
        return True
    if response.status_code != 500 or b"Envelope" not in response.content[:400]:
        return False
    try:
        code = etree.fromstring(response.content).findtext(f".//{{{SOAP11}}}Fault/faultcode") or ""
    except etree.XMLSyntaxError:
        return False
    return code.endswith("Client")
