"""`esb check` and `esb schema`: what they print and their exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from esb.cli import main
from esb.config import build_routes_schema

DATA = Path(__file__).parent / "data" / "config"
PROJECT = Path(__file__).resolve().parent.parent


def test_check_of_a_clean_file_prints_a_summary_and_exits_0(capsys):
    code = main(["check", "-c", str(DATA / "good.yaml")])

    assert code == 0
    assert capsys.readouterr().out == f"{DATA / 'good.yaml'}: 2 routes, 3 destinations, ok\n"


def test_check_prints_every_problem_as_file_line_sentence_and_a_count_and_exits_1(capsys):
    path = DATA / "many_problems.yaml"

    code = main(["check", "-c", str(path)])

    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert len(lines) == 9
    assert lines[0].startswith(f"{path}:4: systems.wms.rest.timeot: unknown rest system option")
    assert all(line.startswith(f"{path}:") for line in lines[:-1])
    assert lines[-1] == f"8 problems found in {path}"


def test_check_of_a_missing_routes_file_is_a_one_line_error(capsys, tmp_path):
    code = main(["check", "-c", str(tmp_path / "nope.yaml")])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == (f"esb: routes file not found: {tmp_path / 'nope.yaml'} "
                            "(give one with -c, or set ESB_CONFIG)\n")


def test_check_reads_the_routes_file_named_by_esb_config(capsys, monkeypatch):
    monkeypatch.setenv("ESB_CONFIG", str(DATA / "duplicate_routes.yaml"))

    code = main(["check"])

    assert code == 1
    assert "route name \"orders\" is used twice" in capsys.readouterr().out


def test_check_runs_as_a_real_process():
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TEST_")}

    clean = subprocess.run([sys.executable, "-m", "esb", "check", "-c", str(DATA / "good.yaml")],
                           capture_output=True, text=True, env=environment, cwd=PROJECT, timeout=60)
    broken = subprocess.run([sys.executable, "-m", "esb", "check", "-c", str(DATA / "unknown_adapter.yaml")],
                            capture_output=True, text=True, env=environment, cwd=PROJECT, timeout=60)

    assert (clean.returncode, clean.stdout.endswith("2 routes, 3 destinations, ok\n")) == (0, True)
    assert broken.returncode == 1
    assert 'unknown adapter "rst" (did you mean "rest"?)' in broken.stdout


def test_schema_prints_the_routes_schema_as_json(capsys):
    code = main(["schema"])

    assert code == 0
    assert json.loads(capsys.readouterr().out) == build_routes_schema()


def test_the_committed_routes_schema_is_what_esb_schema_prints(capsys):
    # When this fails, an adapter's options changed: run `esb schema > schemas/routes.schema.json`.
    main(["schema"])

    printed = capsys.readouterr().out
    committed = (PROJECT / "schemas" / "routes.schema.json").read_text(encoding="utf-8")
    assert committed == printed
