"""The zone of local times: the mapping's own `timezone:`, else settings.timezone (or
`esb map --timezone`), else UTC."""

from __future__ import annotations

import textwrap

import pytest

from esb import jsonfmt
from esb.cli import main
from esb.config import load_config
from esb.errors import ConfigError
from esb.mapping import check_mapping, load_mapping

LOCAL_TIME = {"at": "2026-11-30 14:05:33"}


def write_mapping(directory, zone_line: str = ""):
    path = directory / "times.in.yaml"
    path.write_text(textwrap.dedent(f"""
        direction: in
        canonical_type: goods_receipt
        {zone_line}
        input: {{format: json}}
        fields:
          received_at: {{from: at, type: datetime}}
    """).lstrip(), encoding="utf-8")
    return path


def test_a_mapping_without_a_timezone_takes_the_default_given_else_utc(tmp_path):
    path = write_mapping(tmp_path)
    assert load_mapping(path).apply(LOCAL_TIME)["received_at"] == "2026-11-30T14:05:33+00:00"
    shanghai = load_mapping(path, timezone="Asia/Shanghai")
    assert shanghai.apply(LOCAL_TIME)["received_at"] == "2026-11-30T14:05:33+08:00"
    assert load_mapping(path).apply(LOCAL_TIME)["received_at"].endswith("+00:00")  # cached per zone


def test_the_mappings_own_timezone_wins_over_the_default(tmp_path):
    path = write_mapping(tmp_path, "timezone: Europe/Berlin")
    mapping = load_mapping(path, timezone="Asia/Shanghai")
    assert mapping.apply(LOCAL_TIME)["received_at"] == "2026-11-30T14:05:33+01:00"


def test_an_unknown_default_zone_is_a_problem_that_says_where_it_came_from(tmp_path):
    (problem,) = check_mapping(write_mapping(tmp_path), timezone="Asia/Shangai")
    assert 'unknown time zone "Asia/Shangai" (the default of mappings without a timezone' in str(problem)


def test_esb_map_takes_the_default_zone_from_timezone(tmp_path, capsys):
    path = write_mapping(tmp_path)
    source = tmp_path / "in.json"
    source.write_text(jsonfmt.dumps(LOCAL_TIME))
    assert main(["map", str(path), str(source), "--timezone", "America/New_York"]) == 0
    assert jsonfmt.loads(capsys.readouterr().out)["received_at"] == "2026-11-30T14:05:33-05:00"


def write_routes(directory, zone: str):
    routes = directory / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""
        version: 1
        settings: {{timezone: {zone}}}
        routes:
          - name: times
            from: {{rest: {{format: json}}}}
            map: {write_mapping(directory)}
            to: [{{file: {{dir: out}}}}]
    """).lstrip())
    return routes


def test_a_bad_settings_timezone_is_one_problem_not_one_per_mapping(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write_routes(tmp_path, "Asia/Shangai"), {})
    (problem,) = caught.value.problems
    assert 'unknown time zone "Asia/Shangai"' in str(problem)


def test_settings_timezone_is_the_default_of_the_routes_mappings(tmp_path, monkeypatch):
    from esb.runtime import Runtime, RuntimeOptions

    monkeypatch.delenv("ESB_BROKER_URL", raising=False)
    routes = write_routes(tmp_path, "Asia/Shanghai")
    runtime = Runtime(load_config(routes), RuntimeOptions(broker_url=None, data_dir=tmp_path / "data",
                                                          http=False, sources=False, consumers=False))
    try:
        prepared = runtime.pipelines["times"].prepare(jsonfmt.dumps(LOCAL_TIME).encode())
    finally:
        runtime.stop()
    assert prepared[0].envelope.payload["received_at"] == "2026-11-30T14:05:33+08:00"
