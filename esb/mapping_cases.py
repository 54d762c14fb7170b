"""Mapping test cases: every mapping ships with examples next to it (STYLE.md #9).

Convention: beside ``mappings/<system>/<name>.<direction>.yaml`` is a folder
``<name>.<direction>.cases/`` holding, per case ``<case>``:

- ``<case>.input.<ext>``: the input (any extension: .xml, .csv, .json, .txt ...); its name is
  what ``source_file()`` gives;
- and one of
  - ``<case>.expected.json``: the expected output document (a JSON object), or a JSON array of
    every document the input yields (grouped CSV, several IDOCs); numbers compare as Decimals,
    and types must match (``"10"`` is not ``10``, ``true`` is not ``1``);
  - ``<case>.expected.<ext>`` (not .json): the exact bytes `Mapping.encode` must write (for an
    "out" mapping to XML, CSV or fixed-width);
  - ``<case>.error.txt``: the input must fail to decode or map, and each non-blank line of this
    file must appear in the error message.

`esb test` and tests/test_mapping_cases.py both use `discover_cases` and `run_case`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from esb import jsonfmt
from esb.errors import ConfigError, InputError

CASES_SUFFIX = ".cases"
MAX_DIFFERENCES = 10


@dataclass(frozen=True, slots=True)
class MappingCase:
    """One example: a mapping file, an input file and what it must give."""

    mapping: Path
    name: str
    input: Path
    expected: Path | None  # None when the case has no expectation file (a problem)

    @property
    def id(self) -> str:
        return f"{self.mapping.name}::{self.name}"

    @property
    def expects_error(self) -> bool:
        return self.expected is not None and self.expected.name.endswith(".error.txt")


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: MappingCase
    ok: bool
    message: str = ""  # what differed or failed, for people
    documents: tuple = ()  # the documents the mapping produced


def cases_dir(mapping: str | Path) -> Path:
    """``x.in.yaml`` -> ``x.in.cases``."""
    mapping = Path(mapping)
    return mapping.with_name(mapping.name.removesuffix(".yaml").removesuffix(".yml") + CASES_SUFFIX)


def mapping_files(root: str | Path) -> list[Path]:
    """Every mapping file under ``root`` (``*.in.yaml`` / ``*.out.yaml``), sorted."""
    root = Path(root)
    return sorted(p for pattern in ("*.in.yaml", "*.out.yaml", "*.in.yml", "*.out.yml")
                  for p in root.rglob(pattern))


def discover_cases(root: str | Path) -> list[MappingCase]:
    """Every case of every mapping under ``root`` (a folder, or one mapping file)."""
    root = Path(root)
    mappings = [root] if root.is_file() else mapping_files(root)
    found = []
    for mapping in mappings:
        folder = cases_dir(mapping)
        if not folder.is_dir():
            continue
        for input_file in sorted(folder.glob("*.input.*")):
            name = input_file.name.split(".input.", 1)[0]
            found.append(MappingCase(mapping, name, input_file, _expectation(folder, name)))
    return found


def mappings_without_cases(root: str | Path) -> list[Path]:
    """Mapping files that ship no case: each is a gap in STYLE.md #9."""
    with_cases = {case.mapping for case in discover_cases(root)}
    return [mapping for mapping in mapping_files(root) if mapping not in with_cases]


def _expectation(folder: Path, name: str) -> Path | None:
    error = folder / f"{name}.error.txt"
    if error.exists():
        return error
    candidates = sorted(folder.glob(f"{name}.expected.*"))
    return candidates[0] if candidates else None


def run_case(case: MappingCase) -> CaseResult:
    """Run one case; never raises for a failing case (the result says why)."""
    from esb.mapping import SourceInfo, load_mapping

    if case.expected is None:
        return CaseResult(case, False, f"no {case.name}.expected.* or {case.name}.error.txt next to the "
                                       f"input")
    try:
        mapping = load_mapping(case.mapping)
    except ConfigError as error:
        return CaseResult(case, False, f"the mapping file has problems:\n{error}")
    try:
        with case.input.open("rb") as stream:
            documents = list(mapping.run(stream, SourceInfo(file=case.input.name)))
            outputs = [mapping.encode(document) for document in documents] if _expects_bytes(case) else []
    except InputError as error:
        if case.expects_error:
            return _check_error(case, str(error))
        return CaseResult(case, False, f"failed: {error}")
    if case.expects_error:
        return CaseResult(case, False, "was expected to fail, but mapped", tuple(documents))
    if _expects_bytes(case):
        expected_bytes = case.expected.read_bytes()
        actual = b"".join(outputs)
        if actual == expected_bytes:
            return CaseResult(case, True, documents=tuple(documents))
        return CaseResult(case, False, f"the output differs from {case.expected.name}:\n"
                                       f"{actual.decode('utf-8', 'replace')}", tuple(documents))
    expected = jsonfmt.loads(case.expected.read_bytes())
    actual_value: Any = documents if isinstance(expected, list) else (documents[0] if len(documents) == 1
                                                                     else documents)
    differences = differences_between(expected, actual_value)
    if not differences:
        return CaseResult(case, True, documents=tuple(documents))
    shown = "\n".join(f"  - {line}" for line in differences[:MAX_DIFFERENCES])
    hidden = len(differences) - MAX_DIFFERENCES
    more = f"\n  ... and {hidden} more" if hidden > 0 else ""
    return CaseResult(case, False, f"differs from {case.expected.name}:\n{shown}{more}", tuple(documents))


def _expects_bytes(case: MappingCase) -> bool:
    return case.expected is not None and not case.expects_error and case.expected.suffix != ".json"


def _check_error(case: MappingCase, message: str) -> CaseResult:
    wanted = [line.strip() for line in case.expected.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [line for line in wanted if line not in message]
    if missing:
        return CaseResult(case, False, f"failed as expected, but the message lacks {missing!r}:\n{message}")
    return CaseResult(case, True, message)


def differences_between(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, strictly: types must match, numbers compare exactly."""
    here = path or "(document)"
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in expected:
            if key not in actual:
                found.append(f"{_join(path, key)}: missing (expected {_show(expected[key])})")
            else:
                found += differences_between(expected[key], actual[key], _join(path, key))
        found += [f"{_join(path, key)}: unexpected {_show(actual[key])}"
                  for key in actual if key not in expected]
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        found = []
        for index, (one, other) in enumerate(zip(expected, actual, strict=False)):
            found += differences_between(one, other, f"{path}[{index}]")
        if len(expected) != len(actual):
            found.append(f"{here}: {len(actual)} items, expected {len(expected)}")
        return found
    if _kind(expected) != _kind(actual) or expected != actual:
        return [f"{here}: expected {_show(expected)}, got {_show(actual)}"]
    return []


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    return type(value).__name__


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    return jsonfmt.dumps(value)
