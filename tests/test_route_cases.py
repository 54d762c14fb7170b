"""`esb test` runs the route cases of routes.cases/: the whole route in-process, sinks captured."""

from __future__ import annotations

import shutil

import pytest

from esb.cli import main
from tests.conftest import PROJECT

SHIPPED_ROUTES = 11


def test_every_shipped_route_passes_its_cases(capsys):
    assert main(["test", "-c", str(PROJECT / "routes.yaml")]) == 0
    out = capsys.readouterr().out
    routes = {line.split("::")[0].split("/")[1].strip() for line in out.splitlines()
              if line.startswith("ok   routes.cases/")}
    assert len(routes) == SHIPPED_ROUTES and "0 failed" in out


@pytest.fixture
def project(tmp_path):
    """A copy of the routes file with its mappings, WSDL and route cases, to break."""
    shutil.copy(PROJECT / "routes.yaml", tmp_path / "routes.yaml")
    for folder in ("mappings", "routes.cases"):
        shutil.copytree(PROJECT / folder, tmp_path / folder)
    (tmp_path / "esb" / "demo").mkdir(parents=True)
    shutil.copy(PROJECT / "esb" / "demo" / "erp.wsdl", tmp_path / "esb" / "demo" / "erp.wsdl")
    return tmp_path


def _run(project, capsys) -> tuple[int, str]:
    code = main(["test", "-c", str(project / "routes.yaml")])
    return code, capsys.readouterr().out


def test_a_wrong_destination_output_fails_naming_the_field_and_both_values(project, capsys):
    case = project / "routes.cases" / "wms-counts-to-erp" / "cycle_count_with_an_empty_bin.yaml"
    text = case.read_text(encoding="utf-8")
    assert "  erp:\n" in text
    case.write_text(text.replace("  erp:\n", "  erp-typo:\n", 1), encoding="utf-8")

    code, out = _run(project, capsys)
    assert code == 1
    assert "FAIL routes.cases/wms-counts-to-erp :: cycle_count_with_an_empty_bin" in out
    assert "destinations.erp-typo: 0 items, expected 1" in out  # nothing went to a destination of that name
    assert "destinations.erp: 1 items, expected 0" in out  # and the real one got a message not expected


def test_a_changed_canonical_value_is_shown_with_its_path(project, capsys):
    case = project / "routes.cases" / "wms-stock-to-erp" / "nightly_gbk_fixed_width.yaml"
    case.write_text(case.read_text(encoding="utf-8").replace("warehouse: WH1", "warehouse: WH7", 1),
                    encoding="utf-8")
    code, out = _run(project, capsys)
    assert code == 1
    assert 'canonical.warehouse: expected "WH7", got "WH1"' in out


def test_ignored_fields_are_not_compared_at_any_depth(project, capsys):
    case = project / "routes.cases" / "wms-stock-to-erp" / "nightly_gbk_fixed_width.yaml"
    text = case.read_text(encoding="utf-8")
    assert text.count("uom: CT") >= 2  # in the canonical snapshot and in both outputs
    case.write_text(text.replace("uom: CT", "uom: XX"), encoding="utf-8")
    assert _run(project, capsys)[0] == 1
    case.write_text(text.replace("uom: CT", "uom: XX") + "ignore: [uom]\n", encoding="utf-8")
    code, out = _run(project, capsys)
    assert code == 0, out


def test_a_refusal_case_needs_the_texts_of_the_error(project, capsys):
    case = project / "routes.cases" / "erp-items-to-wms" / "unknown_unit_is_refused.yaml"
    case.write_text(case.read_text(encoding="utf-8") + "  - no such text\n", encoding="utf-8")
    code, out = _run(project, capsys)
    assert code == 1
    assert "refused, but the message lacks ['no such text']" in out


def test_a_route_without_a_case_fails(project, capsys):
    shutil.rmtree(project / "routes.cases" / "erp-asn-to-wms")
    code, out = _run(project, capsys)
    assert code == 1
    assert "FAIL route erp-asn-to-wms :: has no test case" in out


def test_a_case_for_an_unknown_route_fails(project, capsys):
    cases = project / "routes.cases"
    shutil.copytree(cases / "wms-counts-to-erp", cases / "no-such-route")
    code, out = _run(project, capsys)
    assert code == 1
    assert "FAIL routes.cases/no-such-route :: cycle_count_with_an_empty_bin" in out
