"""XML <-> dicts that JMESPath can search, parsed safely (no DTD, no entities, no network).

The convention (both ways):

- the document is ``{root name: root content}``;
- an element with neither attributes nor child elements becomes its text (``None`` when empty);
- any other element becomes a dict: attributes under ``"@name"``, child elements under their
  name, its own non-blank text under ``"#text"``;
- a child element that occurs more than once becomes a list; name it in ``repeat`` to get a
  list even when it occurs once (``repeat: [E1EDP01, E1EDKA1]``), so that mappings can rely on
  the shape;
- namespaces are stripped: elements and attributes go by their local name;
- comments and processing instructions are dropped.

In JMESPath, quote names that are not identifiers: ``E1EDK01."@SEGMENT"``, ``"#text"``.

A document with a DOCTYPE is refused: no DTD means no external entities (XXE) and no entity
expansion (billion laughs); the parser also runs with entity resolution, DTD loading and network
access off, and with libxml2's size limits on (no ``huge_tree``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any, BinaryIO

from lxml import etree

from esb.codecs import DEFAULT_MAX_DEPTH, read_limited
from esb.errors import DecodeError

MEDIA_TYPES = ("application/xml", "text/xml")
"""Content types of this format; the first is the one sent (see `esb.codecs.content_type`)."""

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

OPTIONS = {
    "repeat": "element names that always become lists, even when they occur once (default none)",
    "max_bytes": f"largest accepted input in bytes (default {DEFAULT_MAX_BYTES})",
    "max_depth": f"deepest nesting of elements accepted, the root being 1 (default {DEFAULT_MAX_DEPTH})",
    "root": "decode: the root element names accepted, one or a list (an IDoc's basic type and its "
            "extensions: [ORDERS05, ZORDERS05]); the document is then keyed by the first, so one mapping "
            "reads them all (default: any root, keyed by its own name). encode: wrap the document in an "
            "element of this name (default: the document's one key)",
    "namespace": "encode: default namespace URI of the output (default none)",
    "encoding": "encode: output encoding (default utf-8)",
    "declaration": "encode: write the <?xml ...?> declaration (default true)",
    "pretty": "encode: indent the output (default true)",
}

TEXT_KEY = "#text"
ATTRIBUTE_PREFIX = "@"


def safe_parser(resolver: etree.Resolver | None = None) -> etree.XMLParser:
    """An lxml parser with entities, DTDs and network access off (no XXE, no billion laughs)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             dtd_validation=False, remove_comments=True, remove_pis=True)
    if resolver is not None:
        parser.resolvers.add(resolver)
    return parser


def safe_root(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The root element of untrusted XML; DecodeError for malformed XML, a DOCTYPE, an entity or
    elements nested deeper than `max_depth` (libxml2 itself stops at 256)."""
    if b"<!DOCTYPE" in data[:4096] or b"<\x00!\x00D\x00O\x00C" in data[:8192]:
        raise DecodeError("XML with a DOCTYPE is refused (DTDs and entities are not allowed)")
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as error:
        line, column = error.position
        if "Excessive depth" in error.msg:  # libxml2's own limit, 256, is above ours
            raise DecodeError(f"XML elements nested deeper than {max_depth} levels (max_depth), at line "
                              f"{line}") from None
        raise DecodeError(f"malformed XML at line {line}, column {column}: {error.msg}") from None
    if root is None:
        raise DecodeError("empty XML document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise DecodeError("XML with a DOCTYPE is refused (DTDs and entities are not allowed)")
    _check_depth(root, max_depth)
    return root


def _check_depth(root: Any, max_depth: int) -> None:
    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > max_depth:
            raise DecodeError(f"XML elements nested deeper than {max_depth} levels (max_depth), at line "
                              f"{element.sourceline}")


def option_problems(options: dict[str, Any]) -> list[str]:
    """What is wrong with the options a mapping gives (for the mapping checker), as sentences."""
    root = options.get("root")
    if root is not None and not (isinstance(root, str) and root or isinstance(root, list) and root
                                 and all(isinstance(name, str) and name for name in root)):
        return [f"root is an element name or a list of them ([ORDERS05, ZORDERS05]), not {root!r}"]
    return []


def decode(source: bytes | BinaryIO, *, repeat: Iterable[str] = (), max_bytes: int = DEFAULT_MAX_BYTES,
           root: str | list[str] | None = None, max_depth: int = DEFAULT_MAX_DEPTH) -> Iterator[Any]:
    data = read_limited(source, max_bytes, "XML")
    yield parse(data, repeat=repeat, root=root, max_depth=max_depth)


def parse(data: bytes, *, repeat: Iterable[str] = (), root: str | list[str] | None = None,
          max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """One XML document as a dict (see the module docstring); DecodeError on bad or unsafe XML.

    ``root``: the accepted root element names (a DecodeError names any other); the document is
    keyed by the first of them."""
    element = safe_root(data, max_depth)
    name = _local(element.tag)
    if root is not None:
        accepted = [root] if isinstance(root, str) else list(root)
        if name not in accepted:
            raise DecodeError(f"the root element is <{name}>, but the mapping reads {' or '.join(accepted)} "
                              f"(input.root)")
        name = accepted[0]
    return {name: _convert(element, frozenset(repeat))}


def _local(tag: str) -> str:
    return tag.rpartition("}")[2] if tag[:1] == "{" else tag


def _convert(element: Any, repeat: frozenset[str]) -> Any:
    children = []
    for child in element:
        if isinstance(child.tag, str):
            children.append(child)
        elif isinstance(child, etree._Entity):
            raise DecodeError(f"XML entity reference &{child.name}; is refused (line {child.sourceline})")
    if not children and not element.attrib:
        return element.text
    result: dict[str, Any] = {ATTRIBUTE_PREFIX + _local(name): value
                              for name, value in element.attrib.items()}
    text = element.text
    if text and text.strip():
        result[TEXT_KEY] = text
    listed: set[str] = set()  # names whose value is a list made here (appended to, not nested)
    for child in children:
        name = _local(child.tag)
        value = _convert(child, repeat)
        if name in listed:
            result[name].append(value)
        elif name in result:
            result[name] = [result[name], value]
            listed.add(name)
        elif name in repeat:
            result[name] = [value]
            listed.add(name)
        else:
            result[name] = value
    return result


# --- encoding ------------------------------------------------------------------------------

def encode(document: Any, *, root: str | list[str] | None = None, namespace: str | None = None,
           encoding: str = "utf-8", declaration: bool = True, pretty: bool = True) -> bytes:
    if isinstance(root, list):
        root = root[0] if root else None
    if root is None:
        if not isinstance(document, dict) or len(document) != 1:
            raise ValueError("an XML document must be a dict with one key (the root element), or set 'root'")
        ((root, document),) = document.items()
    prefix = f"{{{namespace}}}" if namespace else ""
    element = etree.Element(prefix + root, nsmap={None: namespace} if namespace else None)
    _fill(element, document, prefix)
    if pretty:
        etree.indent(element)
    return etree.tostring(element, encoding=encoding, xml_declaration=declaration)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _fill(element: Any, value: Any, prefix: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        element.text = _text(value)
        return
    for key, item in value.items():
        if key == TEXT_KEY:
            element.text = _text(item)
        elif key.startswith(ATTRIBUTE_PREFIX):
            if item is not None:
                element.set(key[1:], _text(item))
        else:
            for one in item if isinstance(item, list) else [item]:
                _fill(etree.SubElement(element, prefix + key), one, prefix)
