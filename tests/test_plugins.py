"""Adapters register by name; a third-party adapter comes in through an entry point."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from esb import plugins
from esb.errors import NotFound
from esb.plugins import AdapterSpec


def test_the_built_in_adapters_are_registered_with_their_config_schemas():
    found = plugins.adapters()
    assert {"rest", "soap", "file"} <= set(found)
    assert all(spec.endpoint_schema.get("type") == "object" for spec in found.values())


def test_an_unknown_adapter_gets_a_suggestion_in_a_plain_sentence():
    with pytest.raises(NotFound, match='did you mean "rest"') as caught:
        plugins.get_adapter("rset")
    assert str(caught.value).startswith("unknown adapter")


def test_a_third_party_adapter_registers_through_an_entry_point(monkeypatch, tmp_path):
    (tmp_path / "acme_esb_mqtt.py").write_text(
        "from esb.plugins import AdapterSpec, register\n"
        "register(AdapterSpec(name='mqtt', summary='MQTT', endpoint_schema={'type': 'object'}))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_adapters", dict(plugins._adapters))
    monkeypatch.setattr(plugins, "_loaded", False)
    entry_point = EntryPoint(name="mqtt", value="acme_esb_mqtt", group=plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points",
                        lambda group: [entry_point] if group == plugins.ENTRY_POINT_GROUP else [])
    assert "mqtt" not in plugins._adapters

    assert plugins.get_adapter("mqtt").summary == "MQTT"
    monkeypatch.delitem(sys.modules, "acme_esb_mqtt")


def test_two_adapters_with_one_name_are_refused(monkeypatch):
    monkeypatch.setattr(plugins, "_adapters", dict(plugins._adapters))
    with pytest.raises(ValueError, match="registered twice"):
        plugins.register(AdapterSpec(name="rest", summary="another", endpoint_schema={}))


def test_the_rest_and_soap_specs_share_one_declaration_of_timeout_tls_auth_and_body_limit():
    rest, soap = plugins.get_adapter("rest"), plugins.get_adapter("soap")
    rest_system, soap_system = rest.system_schema["properties"], soap.system_schema["properties"]

    assert rest_system["timeout"] == soap_system["timeout"] == plugins.timeout_option()
    assert rest_system["timeout"]["default"] == plugins.DEFAULT_TIMEOUT == 30.0
    assert rest_system["verify_tls"] == soap_system["verify_tls"] == plugins.tls_options()["verify_tls"]
    assert rest_system["password"] == soap_system["password"] == plugins.basic_auth_options()["password"]
    assert "WS-Security" in soap_system["username"]["description"]
    limits = [spec.endpoint_schema["properties"]["max_body_bytes"] for spec in (rest, soap)]
    assert limits[0] == limits[1] == plugins.body_limit_option(**{"x-esb-role": "source"})
    assert limits[0]["default"] == plugins.DEFAULT_MAX_BODY_BYTES == 1_048_576


def test_each_option_fragment_is_a_fresh_copy_so_one_spec_cannot_change_another():
    first, second = plugins.tls_options(), plugins.tls_options()
    first["verify_tls"]["default"] = False
    assert second["verify_tls"]["default"] is True and plugins.tls_options()["verify_tls"]["default"] is True
    assert "ca_file" not in plugins.tls_options(ca_file=False)
    assert plugins.timeout_option(None)["type"] == ["number", "string", "null"]
