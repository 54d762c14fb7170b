"""`esb test`: the test cases beside every mapping (`esb.mapping_cases`) and, for the whole
project, the route cases beside the routes file (`esb.route_cases`); every mapping and every
route needs one. Prints a line per case and exits 1 when one failed."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from esb.routes import Config


def run_tests(path: str | None, config_path: str, load_config: Callable[[], Config]) -> int:
    """The cases under `path` (default: the `mappings/` folder beside the routes file; then the
    route cases too); `load_config` gives the routes for the route cases."""
    from esb.mapping_cases import discover_cases, mappings_without_cases, run_case

    root = Path(path) if path else Path(config_path).resolve().parent / "mappings"
    if not root.exists():
        print(f"esb: no mappings folder at {root}", file=sys.stderr)
        return 1
    passed = failed = 0
    for case in discover_cases(root):
        result = run_case(case)
        passed, failed = passed + result.ok, failed + (not result.ok)
        print(f"{'ok  ' if result.ok else 'FAIL'} {case.mapping.relative_to(root)} :: {case.name}")
        if not result.ok:
            print("     " + result.message.replace("\n", "\n     "))
    for mapping in mappings_without_cases(root):
        failed += 1
        print(f"FAIL {mapping.relative_to(root)} :: has no test case (add {mapping.name[:-5]}.cases/)")
    if not path:  # the whole project: the route cases too
        route_passed, route_failed = _run_route_cases(config_path, load_config)
        passed, failed = passed + route_passed, failed + route_failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def _run_route_cases(config_path: str, load_config: Callable[[], Config]) -> tuple[int, int]:
    from esb.route_cases import cases_root, discover_route_cases, routes_without_cases, run_route_cases

    root = cases_root(config_path)
    if not root.is_dir():
        return 0, 0
    config = load_config()
    cases = discover_route_cases(root)
    passed = failed = 0
    for result in run_route_cases(config, cases):
        passed, failed = passed + result.ok, failed + (not result.ok)
        print(f"{'ok  ' if result.ok else 'FAIL'} {root.name}/{result.case.route} :: {result.case.name}")
        if not result.ok:
            print("     " + result.message.replace("\n", "\n     "))
    for route in routes_without_cases(config, cases):
        failed += 1
        print(f"FAIL route {route} :: has no test case (add {root.name}/{route}/<case>.yaml)")
    return passed, failed
