"""The outline of what a mapping writes: its output fields, nested, each with whether every
document has it. Checkers compare it with what a target takes (a SOAP operation's input) without
running the mapping: `Mapping.outline()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esb.mapping.nodes import UNSET, EachNode, ObjectNode, ValueNode


@dataclass(frozen=True, slots=True)
class OutlineField:
    """One output field.

    - ``always``: every document has it (required, or with a default, and without ``when``);
    - ``fields``: an object's fields by name (None: the field is a value, or a list of values);
    - ``is_list``: the field is a list (``each``), of objects when ``fields`` is given."""

    name: str
    always: bool
    fields: dict[str, OutlineField] | None = None
    is_list: bool = False


@dataclass(frozen=True, slots=True)
class Outline:
    """What a mapping writes: its top-level ``fields``, and the output format and options they
    are written with (an XML ``root`` option wraps them in that element)."""

    path: str
    fields: dict[str, OutlineField]
    output_format: str
    output_options: dict[str, Any] = field(default_factory=dict)


def outline_of(root: ObjectNode) -> dict[str, OutlineField]:
    """The fields of a compiled object node, by name."""
    return {name: _field(name, node) for name, node in root.fields}


def _field(name: str, node: Any) -> OutlineField:
    if isinstance(node, EachNode):
        fields = outline_of(node.item) if isinstance(node.item, ObjectNode) else None
        return OutlineField(name, node.required, fields, is_list=True)
    if isinstance(node, ObjectNode):
        return OutlineField(name, node.required and node.when is None, outline_of(node))
    if isinstance(node, ValueNode):
        written = node.required or node.default is not UNSET
        return OutlineField(name, written and node.when is None)
    raise TypeError(f"not a mapping node: {node!r}")

