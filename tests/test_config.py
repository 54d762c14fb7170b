"""Loading and checking routes files: every problem, as a sentence, with its line.

The routes files are real files in tests/data/config/; each names what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from esb.config import build_routes_schema, check_config, load_config
from esb.errors import ConfigError, NotFound
from esb.retry import RetryPolicy

DATA = Path(__file__).parent / "data" / "config"
PROJECT = Path(__file__).resolve().parent.parent
NO_ENVIRONMENT: dict[str, str] = {}


def problems_of(name: str, environ=NO_ENVIRONMENT) -> list[tuple[int, str]]:
    """(line, sentence) of each problem in tests/data/config/<name>."""
    return [(problem.line, problem.what) for problem in check_config(DATA / name, environ)]


def write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- a clean file

def test_a_clean_routes_file_has_no_problems():
    assert check_config(DATA / "good.yaml", NO_ENVIRONMENT) == []


def test_a_clean_routes_file_builds_the_route_model():
    config = load_config(DATA / "good.yaml", NO_ENVIRONMENT)

    assert config.path == str(DATA / "good.yaml")
    assert [route.name for route in config.routes] == ["erp-po-to-wms", "wms-receipts-to-erp"]
    route = config.route("erp-po-to-wms")
    assert route.source.adapter == "soap"
    assert route.source.system == "erp"
    assert route.source.options["poll"] == 60.0  # durations become seconds
    assert route.validate == "purchase_order"
    assert route.filter == "payload.warehouse == 'WH1'"
    assert route.retry == RetryPolicy(attempts=3, backoff=(1.0, 2.0, 60.0))
    assert route.options["queue_type"] == "quorum"
    assert route.line == 12


def test_destinations_are_named_by_name_then_system_then_adapter():
    config = load_config(DATA / "good.yaml", NO_ENVIRONMENT)

    assert [d.name for d in config.route("erp-po-to-wms").destinations] == ["wms", "archive"]
    assert [d.name for d in config.route("wms-receipts-to-erp").destinations] == ["erp"]


def test_an_unknown_route_or_destination_is_not_found_with_a_suggestion():
    config = load_config(DATA / "good.yaml", NO_ENVIRONMENT)

    with pytest.raises(NotFound) as caught:
        config.route("erp-po-to-wmz")
    assert str(caught.value) == ('unknown route "erp-po-to-wmz" (did you mean "erp-po-to-wms"?); '
                                 "known: erp-po-to-wms, wms-receipts-to-erp")
    with pytest.raises(NotFound) as caught:
        config.route("erp-po-to-wms").destination("archiv")
    assert str(caught.value) == ('route "erp-po-to-wms" has no destination "archiv" (did you mean '
                                 '"archive"?); known: wms, archive')


def test_options_missing_from_the_file_take_the_adapters_defaults():
    config = load_config(DATA / "good.yaml", NO_ENVIRONMENT)

    rest = config.route("erp-po-to-wms").destination("wms").endpoint
    assert rest.options["method"] == "POST"
    assert rest.options["idempotency_header"] is True
    assert "map" not in rest.options and "name" not in rest.options  # those belong to the Destination
    assert config.systems["wms"].settings["rest"]["timeout"] == 5.0
    assert config.systems["wms"].settings["rest"]["verify_tls"] is True


def test_relative_paths_are_resolved_against_the_routes_files_directory():
    config = load_config(DATA / "good.yaml", NO_ENVIRONMENT)

    assert config.systems["erp"].settings["soap"]["wsdl"] == str(DATA / "wsdl" / "erp.wsdl")
    archive = config.route("erp-po-to-wms").destination("archive")
    assert archive.endpoint.options["dir"] == str(DATA / "archive")
    assert config.route("wms-receipts-to-erp").source.options["dir"] == str(DATA / "in")
    assert config.settings["data_dir"] == str(DATA / "state")


def test_a_route_without_retry_gets_the_default_policy():
    config = load_config(DATA / "good.yaml", NO_ENVIRONMENT)

    assert config.route("wms-receipts-to-erp").retry == RetryPolicy()
    assert config.route("wms-receipts-to-erp").options["queue_type"] == "classic"


# --------------------------------------------------------------------------- one problem each

def test_a_typo_in_a_key_is_reported_with_did_you_mean():
    assert problems_of("key_typo.yaml") == [
        (7, 'routes[0].rets: unknown key "rets" (did you mean "retry"?); known: description, filter, from, '
            "map, name, queue_type, retry, schema_version, split, to, validate"),
    ]


def test_an_unknown_adapter_is_reported_with_did_you_mean():
    assert problems_of("unknown_adapter.yaml") == [
        (5, 'routes[0].from.rst: unknown adapter "rst" (did you mean "rest"?); '
            'known: aggregate, alert, alerts, as2, file, item_units, rest, sftp, soap, table'),
    ]


def test_an_unknown_system_and_a_system_without_that_adapter_are_reported():
    assert problems_of("unknown_system.yaml") == [
        (11, 'routes[0].to[0].rest.system: unknown system "wmz" (did you mean "wms"?); known: erp, wms'),
        (12, 'routes[0].to[1].rest.system: system "erp" has no rest block (it has: soap); '
             "add systems.erp.rest"),
    ]


def test_a_missing_mapping_file_is_reported_with_where_it_was_looked_for():
    [(line, sentence)] = problems_of("missing_mapping.yaml")

    assert line == 5
    assert sentence.startswith("routes[0].map: mapping file not found: mappings/no_such_mapping.in.yaml")
    assert str(DATA / "mappings" / "no_such_mapping.in.yaml") in sentence


def test_an_unknown_canonical_type_is_reported_with_did_you_mean():
    problems = problems_of("unknown_canonical_type.yaml")

    assert problems[0][0] == 5
    assert problems[0][1].startswith(
        'routes[0].validate: unknown canonical type "purchase_ordr" (did you mean "purchase_order"?)')
    assert problems[1] == (10, 'routes[1].validate: canonical type "goods_receipt" has no schema version 99')


def test_bad_durations_are_reported_with_the_accepted_forms():
    assert problems_of("bad_duration.yaml") == [
        (4, "routes[0].from.file.poll: expected a duration (seconds, or e.g. 500ms, 5s, 2m, 1h), got 'soon'"),
        (7, "routes[0].retry.backoff[1]: expected a duration (seconds, or e.g. 500ms, 5s, 2m, 1h), "
            "got '2 weeks'"),
    ]


def test_duplicate_route_names_are_reported_on_the_second_with_the_first_line():
    assert problems_of("duplicate_routes.yaml") == [
        (7, 'routes[1].name: route name "orders" is used twice (first on line 3); route names name queues '
            "and URLs"),
    ]


def test_duplicate_destination_names_suggest_giving_each_a_name():
    [(line, sentence)] = problems_of("duplicate_destinations.yaml")

    assert line == 10
    assert 'two destinations are named "wms" (the first on line 9)' in sentence
    assert "name:" in sentence


def test_a_yaml_syntax_error_is_one_problem_with_its_line():
    [(line, sentence)] = problems_of("syntax_error.yaml")

    assert line == 5
    assert sentence.startswith("YAML syntax error: expected ',' or '}'")
    assert "flow mapping on line 4" in sentence


def test_several_problems_are_reported_at_once_each_with_its_line():
    problems = problems_of("many_problems.yaml")

    assert [line for line, _ in problems] == [4, 7, 8, 10, 11, 12, 13, 14]
    sentences = "\n".join(sentence for _, sentence in problems)
    for expected in ['unknown rest system option "timeot" (did you mean "timeout"?)',
                     'unknown adapter "rst" (did you mean "rest"?)',
                     'unknown canonical type "purchase_ordr" (did you mean "purchase_order"?)',
                     'unknown system "wmz" (did you mean "wms"?)',
                     "routes[0].retry.attempts: expected an integer >= 1, got 'three'",
                     "routes[1].name: expected a name of lower-case letters",
                     "routes[1].from.file.poll: expected a duration",
                     "routes[1].filter: not a valid JMESPath expression: the expression ends too early"]:
        assert expected in sentences


def test_load_config_raises_config_error_with_every_problem():
    with pytest.raises(ConfigError) as raised:
        load_config(DATA / "many_problems.yaml", NO_ENVIRONMENT)

    assert len(raised.value.problems) == 8
    assert str(raised.value).startswith(f"{DATA / 'many_problems.yaml'}:4: ")


# --------------------------------------------------------------------------- environment variables

def test_an_unset_variable_is_named_with_its_line():
    assert problems_of("unset_variable.yaml") == [
        (5, "systems.wms.rest.base_url: environment variable TEST_WMS_URL is not set "
            "(set it, or write ${TEST_WMS_URL:-default})"),
        (6, "systems.wms.rest.token: environment variable TEST_WMS_TOKEN is not set "
            "(set it, or write ${TEST_WMS_TOKEN:-default})"),
    ]


def test_set_variables_are_substituted():
    environ = {"TEST_WMS_URL": "https://wms.example/api", "TEST_WMS_TOKEN": "s3cret"}

    config = load_config(DATA / "unset_variable.yaml", environ)

    assert config.systems["wms"].settings["rest"]["base_url"] == "https://wms.example/api"
    assert config.systems["wms"].settings["rest"]["token"] == "s3cret"


def test_a_default_is_used_when_the_variable_is_unset_or_empty():
    config = load_config(DATA / "good.yaml", {"TEST_ERP_USER": ""})

    assert config.systems["wms"].settings["rest"]["base_url"] == "http://wms.test/api"
    assert config.systems["erp"].settings["soap"]["username"] == "esb"
    assert config.systems["erp"].settings["soap"]["password"] == ""


def test_an_unquoted_reference_is_typed_like_yaml_and_a_quoted_one_stays_text(tmp_path):
    path = write(tmp_path, "version: 1\nsettings:\n  http_port: ${PORT:-8080}\n  http_host: '${HOST:-0}'\n"
                           "routes: []\n")

    config = load_config(path, {"PORT": "9090"})

    assert config.settings == {"http_port": 9090, "http_host": "0"}


def test_a_quoted_reference_where_a_number_is_expected_says_to_unquote_it(tmp_path):
    path = write(tmp_path, 'version: 1\nsettings:\n  http_port: "${PORT:-8080}"\nroutes: []\n')

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert problem.line == 3
    assert "expected an integer from 1 to 65535, got '8080' (write ${...} without quotes" in problem.what


def test_double_dollar_is_a_literal_dollar(tmp_path):
    path = write(tmp_path, "version: 1\nsystems:\n  wms:\n    rest: {base_url: 'http://w', "
                           "password: 'pa$$word${SUFFIX:-}'}\nroutes: []\n")

    config = load_config(path, NO_ENVIRONMENT)

    assert config.systems["wms"].settings["rest"]["password"] == "pa$word"


def test_a_broken_reference_is_a_problem(tmp_path):
    path = write(tmp_path, "version: 1\nsystems:\n  wms:\n"
                           "    rest: {base_url: 'http://w', token: '${TOKEN'}\nroutes: []\n")

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert problem.line == 4
    assert 'without its closing "}"' in problem.what


def test_values_from_the_environment_are_never_repeated_in_problems(tmp_path):
    path = write(tmp_path, "version: 1\nsettings:\n  broker_url: ${BROKER}\n  http_port: ${PORT}\n"
                           "routes: []\n")
    secret = "hunter2-secret"

    problems = check_config(path, {"BROKER": f"http://user:{secret}@host", "PORT": secret})

    assert [problem.line for problem in problems] == [3, 4]
    assert all(secret not in str(problem) for problem in problems)
    assert all("got a value from the environment" in problem.what for problem in problems)


# --------------------------------------------------------------------------- more references

def test_an_adapter_check_reports_a_missing_wsdl(tmp_path):
    path = write(tmp_path, "version: 1\nsystems:\n  erp:\n    soap: {wsdl: missing.wsdl}\nroutes:\n"
                           "  - name: r\n    from: {file: {dir: in}}\n    to:\n"
                           "      - soap: {system: erp, operation: Post}\n")

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert problem.line == 9
    assert problem.what == f"routes[0].to[0].soap: WSDL file not found: {tmp_path / 'missing.wsdl'}"


def test_a_soap_source_must_poll_or_be_inbound(tmp_path):
    path = write(tmp_path, "version: 1\nroutes:\n  - name: r\n    from: {soap: {operation: Get}}\n"
                           "    to:\n      - file: {dir: out}\n")

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert problem.line == 4
    assert "a soap source needs poll:" in problem.what


def test_an_option_of_the_other_side_is_named_as_such(tmp_path):
    path = write(tmp_path, "version: 1\nroutes:\n  - name: r\n    from: {rest: {method: POST}}\n"
                           "    to:\n      - file: {dir: out}\n")

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert problem.line == 4
    assert 'unknown rest source option "method"' in problem.what
    assert '("method" is an option of a rest destination)' in problem.what


def test_a_destination_key_beside_the_adapter_says_where_it_goes(tmp_path):
    path = write(tmp_path, "version: 1\nroutes:\n  - name: r\n    from: {file: {dir: in}}\n    to:\n"
                           "      - file: {dir: out}\n        map: out.yaml\n")

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert problem.line == 7
    assert 'unknown adapter "map"' in problem.what and "goes inside the adapter block" in problem.what


def test_a_misspelt_enum_value_gets_a_suggestion(tmp_path):
    path = write(tmp_path, "version: 1\nroutes:\n  - name: r\n    queue_type: quourm\n"
                           "    from: {file: {dir: in}}\n    to:\n      - file: {dir: out}\n")

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert problem == problem.__class__(
        str(path), 4, "routes[0].queue_type: expected one of classic, quorum, got 'quourm' "
                      '(did you mean "quorum"?)')


def test_the_other_name_of_the_fixed_width_format_gets_a_suggestion_in_a_route_and_a_mapping(tmp_path):
    write(tmp_path, "direction: in\ncanonical_type: goods_receipt\ninput: {format: fixed}\n"
                    "fields: {receipt_number: number}\n", "receipts.in.yaml")
    path = write(tmp_path, "version: 1\nroutes:\n  - name: r\n    from: {file: {dir: in, format: fixed}}\n"
                           "    map: receipts.in.yaml\n    to:\n      - file: {dir: out}\n")

    problems = [(problem.file, problem.line, problem.what) for problem in check_config(path, NO_ENVIRONMENT)]

    assert (str(path), 4, "routes[0].from.file.format: expected one of csv, edifact, fixedwidth, json, x12, "
                          "xml, got 'fixed' (did you mean \"fixedwidth\"?)") in problems
    mapping_problems = [what for file, _, what in problems if file.endswith("receipts.in.yaml")]
    assert any('unknown format "fixed" (did you mean "fixedwidth"?)' in what for what in mapping_problems)


def test_a_missing_file_and_an_empty_file_are_problems(tmp_path):
    assert [p.what for p in check_config(tmp_path / "nope.yaml")] == ["routes file not found"]
    assert "the file is empty" in check_config(write(tmp_path, "# nothing\n"))[0].what


def test_a_key_written_twice_is_a_problem(tmp_path):
    path = write(tmp_path, "version: 1\nroutes: []\nversion: 1\n")

    [problem] = check_config(path, NO_ENVIRONMENT)

    assert (problem.line, problem.what) == (3, '"version" appears twice in this block (the first on line 1)')


# --------------------------------------------------------------------------- the schema

def test_the_routes_schema_is_a_valid_draft_2020_12_schema():
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(build_routes_schema())


def test_the_routes_schema_has_a_source_destination_and_system_per_adapter():
    definitions = build_routes_schema()["$defs"]

    for adapter in ("rest", "soap", "file"):
        assert {f"{adapter}_source", f"{adapter}_destination", f"{adapter}_system"} <= set(definitions)
    assert "method" in definitions["rest_destination"]["properties"]
    assert "method" not in definitions["rest_source"]["properties"]
    assert {"map", "filter", "name"} <= set(definitions["file_destination"]["properties"])


def test_every_adapter_option_has_a_description_and_a_default_unless_required():
    from esb.plugins import adapters

    for name, spec in adapters().items():
        for schema in (spec.endpoint_schema, spec.system_schema):
            required = {*schema.get("required", []), *schema.get("x-esb-source-required", []),
                        *schema.get("x-esb-sink-required", [])}
            for option, option_schema in schema.get("properties", {}).items():
                assert option_schema.get("description"), f"{name}.{option} has no description"
                assert "default" in option_schema or option in required, f"{name}.{option} has no default"


# --------------------------------------------------------------------------- the shipped file

def test_the_shipped_routes_yaml_is_clean():
    # Needs the mappings (mappings/erp, mappings/wms) and esb.mapping written beside this work.
    assert [str(problem) for problem in check_config(PROJECT / "routes.yaml", NO_ENVIRONMENT)] == []


# --------------------------------------------------------------------------- mapping files

def test_mapping_files_are_resolved_and_kept_as_absolute_paths():
    config = load_config(DATA / "with_mappings.yaml", NO_ENVIRONMENT)

    route = config.route("orders")
    assert route.map == str(DATA / "mappings" / "order.in.yaml")
    assert route.destination("file").map == str(DATA / "mappings" / "order.out.yaml")


def test_mappings_must_map_the_right_way_and_the_routes_canonical_type():
    problems = problems_of("mapping_mismatch.yaml")

    assert problems[:3] == [
        (5, 'routes[0].map: mapping mappings/order.out.yaml has direction "out"; a route\'s map: needs '
            'direction "in" (source format -> canonical type)'),
        (8, 'routes[0].to[0].file.map: mapping mappings/order.in.yaml has direction "in"; a destination\'s '
            'map: needs direction "out" (canonical type -> target format)'),
        (11, 'routes[1].map: mapping mappings/order.in.yaml is for canonical type "purchase_order", but the '
             'route carries "goods_receipt"'),
    ]


def test_a_mappings_own_problems_are_reported_with_its_file_and_line():
    problems = check_config(DATA / "mapping_mismatch.yaml", NO_ENVIRONMENT)

    broken = str(DATA / "mappings" / "broken.in.yaml")
    in_mapping = [problem for problem in problems if problem.file.endswith("broken.in.yaml")]
    assert in_mapping and all(problem.file == broken for problem in in_mapping)
    assert any(problem.line == 5 and 'did you mean "fields"?' in problem.what for problem in in_mapping)
