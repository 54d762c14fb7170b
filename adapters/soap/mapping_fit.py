"""`esb check`: does a soap destination's mapping write what the operation takes?

The mapping's outline (`esb.mapping.outline`: its output fields, nested) is compared with the
WSDL operation's input element, as the sink calls it: the rendered document's fields are the
operation's parameters (for XML output, the children of its root element), merged over the
destination's fixed ``params``. A message that could never be sent is a problem now rather than
a dead letter later, so each of these is refused:

- a field the operation does not take there ("did you mean");
- a required parameter (``minOccurs`` 1, outside a choice) that neither the mapping nor
  ``params`` ever writes (one the mapping writes only sometimes passes: the data decides);
- a list where the WSDL allows one element, an object where it wants a value, or a value
  where it wants an object.

An element that allows any content (``xsd:any``) takes any field; rpc-style operations, whose
parameters are not one wrapper element, are not compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zeep.xsd

from adapters.soap.wsdl import WsdlError, find_operation
from esb.problems import did_you_mean

MAX_LISTED = 12
"""Names listed in a sentence that says what an element takes."""


def check_mapping(endpoint, system: dict | None, outline) -> list[str]:
    """The problems of a soap destination's mapping against its operation's input (sentences);
    what check_endpoint already reports (no WSDL, unknown operation) is not repeated."""
    options = endpoint.options
    wsdl = options.get("wsdl") or (system or {}).get("wsdl")
    if not wsdl or not options.get("operation") or not Path(wsdl).is_file():
        return []
    try:
        operation = find_operation(wsdl, options["operation"])
    except WsdlError:
        return []
    element = operation.input_element()
    if _content_of(getattr(element, "type", None)) is None:
        return []  # rpc style, or no body: nothing to compare with
    fields = _request_fields(outline)
    if isinstance(fields, str):
        return [f"mapping {outline.path}: {fields}"]
    fixed = set(options.get("params") or {})
    return [f"mapping {outline.path}: {sentence}"
            for sentence in _compare(fields, element.type, operation.name, "", fixed)]


def _request_fields(outline) -> dict | str:
    """The fields that become the operation's parameters, or the sentence saying why none do."""
    fields = outline.fields
    if outline.output_format != "xml" or outline.output_options.get("root"):
        return fields
    if len(fields) != 1:
        return (f"writes XML with {len(fields)} top-level fields; the request is the children of one root "
                f"element (or set output.root)")
    (top,) = fields.values()
    if top.fields is None or top.is_list:
        return f"writes XML whose root element {top.name} holds no fields, so the request has no parameters"
    return top.fields


@dataclass(frozen=True, slots=True)
class _Expected:
    """A child element of the WSDL: the zeep element, and whether every request needs it."""

    element: Any
    required: bool

    @property
    def repeats(self) -> bool:
        most = self.element.max_occurs
        return most == "unbounded" or isinstance(most, int) and most > 1


def _content_of(xsd_type: Any) -> tuple[dict[str, _Expected], bool] | None:
    """The child elements of a type by name, and whether it takes any element (xsd:any); None
    for a simple type."""
    nested = getattr(xsd_type, "elements_nested", None)
    if nested is None:
        return None
    found: dict[str, _Expected] = {}
    takes_any = [False]
    for _, particle in nested:
        _walk(particle, False, found, takes_any)
    return found, takes_any[0]


def _walk(particle: Any, optional: bool, found: dict[str, _Expected], takes_any: list[bool]) -> None:
    if isinstance(particle, zeep.xsd.Any):
        takes_any[0] = True
    elif isinstance(particle, zeep.xsd.Group):
        _walk(particle.child, optional or particle.min_occurs == 0, found, takes_any)
    elif isinstance(particle, zeep.xsd.Choice):
        for each in particle:  # one of them is enough: none is required on its own
            _walk(each, True, found, takes_any)
    elif isinstance(particle, zeep.xsd.Sequence | zeep.xsd.All):
        for each in particle:
            _walk(each, optional or particle.min_occurs == 0, found, takes_any)
    elif getattr(particle, "name", None):
        found[particle.name] = _Expected(particle, not optional and (particle.min_occurs or 0) >= 1)


def _compare(fields: dict, xsd_type: Any, operation: str, prefix: str, fixed: set[str]) -> Iterator[str]:
    content = _content_of(xsd_type)
    if content is None:
        return
    expected, takes_any = content
    where = f"{prefix.rstrip('.')} of {operation}" if prefix else operation
    for name, field in fields.items():
        if name.startswith("@") or name == "#text":
            continue  # XML attributes and text: zeep takes them as its type says
        if name not in expected:
            if not takes_any:
                yield f"writes {prefix}{name}, which {where} does not take{did_you_mean(name, expected)}; " \
                      f"it takes: {_listing(expected)}"
            continue
        yield from _compare_field(field, expected[name], operation, f"{prefix}{name}")
    for name, child in expected.items():
        if child.required and name not in fields and not (not prefix and name in fixed):
            yield f"never writes {prefix}{name}, which {where} requires (minOccurs 1)"


def _compare_field(field: Any, expected: _Expected, operation: str, path: str) -> Iterator[str]:
    if field.is_list and not expected.repeats:
        yield f"writes a list at {path}, but {operation} takes one {path.rpartition('.')[2]} there " \
              f"(maxOccurs 1)"
    content = _content_of(expected.element.type)
    has_children = content is not None and bool(content[0] or content[1])
    if field.fields is not None and not has_children:
        yield f"writes an object at {path}, but {operation} takes a value there"
    elif field.fields is None and has_children:
        yield f"writes a value at {path}, but {operation} takes an element with fields there: " \
              f"{_listing(content[0])}"
    elif field.fields is not None:
        yield from _compare(field.fields, expected.element.type, operation, f"{path}.", set())


def _listing(expected: dict[str, _Expected]) -> str:
    names = [f"{name} (required)" if child.required else name for name, child in expected.items()]
    shown = ", ".join(names[:MAX_LISTED])
    return (shown + (", ..." if len(names) > MAX_LISTED else "")) or "nothing"
