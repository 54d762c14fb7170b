"""WSDL files: loaded safely and once, and `esb check` reports an operation or parameter the WSDL does
not have, with a suggestion."""

from __future__ import annotations

import os
import textwrap

import pytest

from adapters.soap import (
    SoapInboundSource,
    SoapPollSource,
    WsdlError,
    check_endpoint,
    load_wsdl,
    wsdl_operations,
)
from esb.config import check_config
from esb.plugins import get_adapter
from esb.routes import Endpoint
from tests.test_soap_responder import DATA, ERP_WSDL, nav_wsdl


def test_the_nav_page_wsdl_loads_once_and_lists_its_operations(samples_dir):
    first = load_wsdl(nav_wsdl(samples_dir))

    operations = wsdl_operations(first)

    assert load_wsdl(nav_wsdl(samples_dir)) is first
    assert sorted(operations) == ["CreateMultiple", "ReadMultiple"]
    assert operations["ReadMultiple"].input_fields() == ["filter", "bookmarkKey", "setSize"]
    assert operations["ReadMultiple"].soap_action.endswith("/page/customerlist:ReadMultiple")


def test_a_wsdl_changed_on_disk_is_loaded_again(tmp_path):
    copy = tmp_path / "erp.wsdl"
    copy.write_bytes(ERP_WSDL.read_bytes())
    (tmp_path / "erp.xsd").write_bytes((DATA / "erp.xsd").read_bytes())
    before = load_wsdl(copy)

    copy.write_bytes(ERP_WSDL.read_bytes().replace(b"PostGoodsReceipt\"", b"PostGoodsReceipt\" "))
    os.utime(copy, ns=(1, 1))

    assert load_wsdl(copy) is not before


def test_a_wsdl_with_a_dtd_is_refused():
    with pytest.raises(WsdlError, match="DOCTYPE"):
        load_wsdl(DATA / "dtd.wsdl")


def test_a_wsdl_that_imports_over_the_network_is_refused(tmp_path):
    remote = tmp_path / "remote.wsdl"
    remote.write_text(textwrap.dedent("""\
        <definitions xmlns="http://schemas.xmlsoap.org/wsdl/" targetNamespace="urn:remote">
          <types><xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:remote">
            <xsd:import namespace="urn:elsewhere" schemaLocation="http://127.0.0.1:9/types.xsd"/>
          </xsd:schema></types>
        </definitions>"""))

    with pytest.raises(WsdlError, match="nothing is fetched over the network"):
        load_wsdl(remote)


def soap_endpoint(**options) -> Endpoint:
    return Endpoint("soap", {"system": "nav", "params": {}, "watermark": None, "watermark_param": None,
                             "inbound": False, "wsdl": None, "poll": 60.0, **options})


def test_an_unknown_operation_is_reported_with_did_you_mean(samples_dir):
    system = {"wsdl": str(nav_wsdl(samples_dir)), "endpoint_url": None}

    problems = check_endpoint(soap_endpoint(operation="ReadMultipel"), system, samples_dir)

    assert len(problems) == 1
    assert problems[0].startswith('unknown operation "ReadMultipel" (did you mean "ReadMultiple"?); '
                                  "known: CreateMultiple, ReadMultiple")


def test_unknown_params_and_watermark_param_are_reported_with_did_you_mean(samples_dir):
    system = {"wsdl": str(nav_wsdl(samples_dir)), "endpoint_url": None}
    endpoint = soap_endpoint(operation="ReadMultiple", params={"setsize": 10}, watermark="No",
                             watermark_param="bookmark")

    problems = check_endpoint(endpoint, system, samples_dir)

    assert problems == [
        'params: unknown parameter of ReadMultiple "setsize" (did you mean "setSize"?); '
        "known: bookmarkKey, filter, setSize",
        'watermark_param: unknown parameter of ReadMultiple "bookmark" (did you mean "bookmarkKey"?); '
        "known: bookmarkKey, filter, setSize",
    ]


def test_a_watermark_param_without_a_watermark_and_a_bad_jmespath_are_reported(samples_dir):
    system = {"wsdl": str(nav_wsdl(samples_dir))}

    missing = check_endpoint(soap_endpoint(operation="ReadMultiple", watermark_param="bookmarkKey"),
                             system, None)
    broken = check_endpoint(soap_endpoint(operation="ReadMultiple", watermark="No[", watermark_param=None),
                            system, None)

    assert missing == ["watermark_param needs watermark: (the JMESPath that gives each record's value)"]
    assert len(broken) == 1 and broken[0].startswith("watermark is not a valid JMESPath expression")


def test_a_wsdl_that_cannot_be_loaded_is_reported_by_check():
    problems = check_endpoint(Endpoint("soap", {"system": "erp", "operation": "X", "params": {}}),
                              {"wsdl": str(DATA / "dtd.wsdl")}, DATA)

    assert problems == [f"WSDL file {DATA / 'dtd.wsdl'} cannot be used: it has a DOCTYPE "
                        "(DTDs and entities are refused)"]


def test_esb_check_reports_the_operation_of_a_route_with_its_line(tmp_path, samples_dir):
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""\
        version: 1
        systems:
          nav:
            soap: {{wsdl: "{nav_wsdl(samples_dir)}"}}
          erp:
            soap: {{wsdl: "{ERP_WSDL}", endpoint_url: "http://127.0.0.1:9/erp"}}
        routes:
          - name: customers
            from: {{soap: {{system: nav, operation: ReadMultiple, poll: 5m, watermark: "No",
                           watermark_param: bookmarkKey, params: {{setSize: 100}}}}}}
            to:
              - soap: {{system: erp, operation: PostGoodsReceit}}
        """))

    problems = check_config(routes, environ={})

    assert [(problem.line, problem.what) for problem in problems] == [
        (12, 'routes[0].to[0].soap: unknown operation "PostGoodsReceit" (did you mean '
             '"PostGoodsReceipt"?); known: '
             f"GetOpenPurchaseOrders, PostGoodsReceipt (in {ERP_WSDL})")]


def test_the_registered_adapter_builds_a_poller_or_an_inbound_endpoint(samples_dir):
    spec = get_adapter("soap")
    system = {"wsdl": str(nav_wsdl(samples_dir)), "timeout": 5.0}

    poller = spec.source_factory(soap_endpoint(operation="ReadMultiple"), system, "customers")
    inbound = spec.source_factory(soap_endpoint(operation="ReadMultiple", inbound=True, poll=None), system,
                                  "customers-in")

    assert isinstance(poller, SoapPollSource) and poller.poll_interval == 60.0
    assert isinstance(inbound, SoapInboundSource) and inbound.schema is not None
    poller.stop()
