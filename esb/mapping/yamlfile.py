"""Reading a mapping file: safe YAML whose mappings remember their lines, numbers never floats.

The compiler needs the line of every key to report a problem where it is, and the literal text
of keys and plain values (``"0010"`` and ``no`` are not what YAML makes of ``0010`` and ``no``).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from esb.problems import Problem


class YamlMap(dict):
    """A YAML mapping that remembers where it and each key are, and the keys' literal text."""

    line: int = 0
    key_lines: dict[Any, int]
    key_text: dict[Any, str]
    plain_text: dict[Any, str]  # the text of unquoted scalar values (`no` that YAML made False)


class _Loader(yaml.SafeLoader):
    """Safe YAML; mappings remember lines; numbers with a fraction are Decimal, never float."""


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[YamlMap]:
    data = YamlMap()
    data.line = node.start_mark.line + 1
    data.key_lines, data.key_text, data.plain_text = {}, {}, {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1
        if isinstance(key_node, yaml.ScalarNode):
            data.key_text[key] = key_node.value
        if isinstance(value_node, yaml.ScalarNode) and not value_node.style:
            data.plain_text[key] = value_node.value


def _construct_decimal(loader: _Loader, node: yaml.ScalarNode) -> Any:
    text = loader.construct_scalar(node).replace("_", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return loader.construct_yaml_float(node)
    return number if number.is_finite() else loader.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def read_mapping_file(path: str | Path) -> tuple[YamlMap | None, list[Problem]]:
    """The top-level mapping of a mapping file, or None and the problem (missing, not YAML ...)."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [Problem(shown, 0, "mapping file not found")]
    except (OSError, UnicodeDecodeError) as error:
        return None, [Problem(shown, 0, f"cannot read the mapping file: {error}")]
    try:
        spec = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return None, [Problem(shown, mark.line + 1 if mark else 0, f"not valid YAML: {error}")]
    if not isinstance(spec, YamlMap):
        return None, [Problem(shown, 1, "a mapping file is a YAML mapping (direction, input, fields ...)")]
    return spec, []


def line_of(where: Any, key: Any = None) -> int:
    """The line of ``key`` in ``where`` (or of ``where`` itself); 0 when not known."""
    if isinstance(where, YamlMap):
        return where.key_lines.get(key, where.line) if key is not None else where.line
    return 0


def plain(value: Any) -> Any:
    """A YAML value without the line bookkeeping (for constants that end up in documents)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
