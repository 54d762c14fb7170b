"""The route's splitter (`split: {by: warehouse}`): one mapped document becomes one document per
distinct value of a field of its lines.

A sales order whose lines ship from two warehouses becomes two shipment orders, each for one
warehouse, with the lines of that warehouse only and the field moved up to the header. It runs after
the mapping and before validation, so the mapping may put the field on each line (where the source
has it) even when the canonical line has no such field. A line without the field belongs to the
document's own value (the header's `by` field); with neither, the input is refused naming the line.
The order of the documents is the order in which their values first appear.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from esb.errors import FieldProblem, MappingError

DEFAULT_ITEMS = "lines"
"""The array a splitter divides unless the route names another (`split: {by: ..., items: ...}`)."""


@dataclass(frozen=True, slots=True)
class Split:
    """How a route splits a document: `by` is a field of each item of the array `items`; each
    document made carries its value in its own (top-level) field `by`."""

    by: str
    items: str = DEFAULT_ITEMS

    @classmethod
    def from_config(cls, block: dict) -> Split:
        return cls(by=block["by"], items=block.get("items") or DEFAULT_ITEMS)


def split_document(document: Any, split: Split) -> list[tuple[str, dict]]:
    """(the value, the document for it) for every distinct `split.by` value of the document's items;
    raises `MappingError` naming every item that has no value and no header value to fall back on."""
    if not isinstance(document, dict):
        raise MappingError(f"cannot split by {split.by}: the mapped document is not an object",
                           [FieldProblem("", "an object", type(document).__name__)])
    items = document.get(split.items)
    if not isinstance(items, list):
        raise MappingError(f"cannot split by {split.by}: the document has no list {split.items}",
                           [FieldProblem(split.items, "a list of items", repr(items)[:80])])
    fallback = document.get(split.by)
    groups: dict[str, list] = {}
    problems = []
    for index, item in enumerate(items):
        value = item.get(split.by, fallback) if isinstance(item, dict) else None
        if value is None or value == "":
            problems.append(FieldProblem(f"{split.items}[{index}].{split.by}",
                                         f"a {split.by} (the route splits by it) on the line or the document",
                                         "nothing"))
            continue
        groups.setdefault(str(value), []).append(item)
    if problems:
        raise MappingError(f"cannot split by {split.by}", problems)
    documents = []
    for value, group in groups.items():
        part = {key: copy.deepcopy(item) for key, item in document.items() if key != split.items}
        part[split.by] = value
        part[split.items] = [{key: field for key, field in item.items() if key != split.by}
                             if isinstance(item, dict) else item for item in group]
        documents.append((value, part))
    return documents


def split_problems(split: Split, schema: dict) -> list[tuple[str, str]]:
    """(option, sentence) for what is wrong with splitting documents of `schema` (a canonical type's
    JSON Schema) so: the field must be a property of the document, the items an array of it."""
    properties = schema.get("properties", {})
    problems = []
    if split.by not in properties:
        known = ", ".join(sorted(properties))
        problems.append(("by", f'"{split.by}" is not a field of the document (it becomes the header '
                        f"field of each part); fields: {known}"))
    items = properties.get(split.items)
    if items is None:
        problems.append(("items", f'the document has no field "{split.items}" to split'))
    elif items.get("type") != "array":
        kind = items.get("type", "not an array")
        problems.append(("items", f'"{split.items}" is not a list (its type: {kind})'))
    return problems
