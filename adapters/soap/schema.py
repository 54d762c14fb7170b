"""The WSDL's XML schema (its inline schemas and the local files they import), compiled by lxml
for checking inbound requests field by field."""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from lxml import etree

from adapters.soap.wsdl import WSDL_NAMESPACE, XSD_NAMESPACE, WsdlError
from esb.codecs.xml import safe_parser
from esb.errors import FieldProblem

log = logging.getLogger("esb.adapters.soap")

_INLINE_PREFIX = "esb-inline-schema-"


class _InlineSchemas(etree.Resolver):
    """Resolves the names given to a WSDL's inline schemas; files on disk load as usual."""

    def __init__(self, schemas: dict[str, bytes]):
        super().__init__()
        self.schemas = schemas

    def resolve(self, url, public_id, context):
        name = str(url).rpartition("/")[2]
        if name in self.schemas:
            return self.resolve_string(self.schemas[name], context, base_url=url)
        if str(url).startswith(("http:", "https:", "ftp:")):
            raise WsdlError(f"the WSDL's schema imports {url}: nothing is fetched over the network")
        return None


_schemas: dict[tuple[str, int, int], Any] = {}
_schemas_lock = threading.Lock()


def request_schema(wsdl: str | os.PathLike) -> Any:
    """An lxml XMLSchema of every schema in the WSDL's types (and the local files they import),
    cached per file version; None (with a warning) when libxml2 cannot compile it."""
    resolved = Path(wsdl).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _schemas_lock:
        if key in _schemas:
            return _schemas[key]
    try:
        schema = _compile_schema(resolved)
    except (etree.Error, WsdlError) as error:
        log.warning("the schema of %s cannot be compiled, inbound requests are checked by element name "
                    "only: %s", wsdl, error)
        schema = None
    with _schemas_lock:
        _schemas[key] = schema
    return schema


def _compile_schema(wsdl: Path) -> Any:
    tree = etree.parse(str(wsdl), safe_parser())
    inline: dict[str, bytes] = {}
    namespaces: dict[str | None, str] = {}
    for index, schema in enumerate(tree.iterfind(f"{{{WSDL_NAMESPACE}}}types/{{{XSD_NAMESPACE}}}schema")):
        name = f"{_INLINE_PREFIX}{index}.xsd"
        namespaces.setdefault(schema.get("targetNamespace"), name)
        standalone = etree.Element(schema.tag, attrib=dict(schema.attrib), nsmap=schema.nsmap)
        standalone.extend(copy.deepcopy(child) for child in schema)
        inline[name] = standalone
    if not inline:
        return None
    for standalone in inline.values():  # imports of a sibling inline schema name it
        for imported in standalone.iterfind(f"{{{XSD_NAMESPACE}}}import"):
            sibling = namespaces.get(imported.get("namespace"))
            if imported.get("schemaLocation") is None and sibling is not None:
                imported.set("schemaLocation", sibling)
    texts = {name: etree.tostring(element) for name, element in inline.items()}
    wrapper = etree.Element(f"{{{XSD_NAMESPACE}}}schema", nsmap={"xsd": XSD_NAMESPACE})
    for namespace, name in namespaces.items():
        if namespace is not None:
            etree.SubElement(wrapper, f"{{{XSD_NAMESPACE}}}import", namespace=namespace, schemaLocation=name)
    parser = safe_parser(_InlineSchemas(texts))
    document = etree.fromstring(etree.tostring(wrapper), parser, base_url=str(wsdl))
    return etree.XMLSchema(document)


_PREFIXES = re.compile(r"[A-Za-z_][\w.-]*:(?=[A-Za-z_])")
_CLARK = re.compile(r"\{[^}]*\}")


def schema_problems(schema: Any, element: Any) -> list[FieldProblem]:
    """Every way the request element breaks the schema, one FieldProblem each (path without
    namespaces, libxml2's sentence)."""
    document = etree.fromstring(etree.tostring(element), safe_parser())
    if schema.validate(document):
        return []
    problems = []
    for entry in schema.error_log:
        path = _PREFIXES.sub("", entry.path or "")
        problems.append(FieldProblem(path or f"line {entry.line}", _CLARK.sub("", entry.message)))
    return problems
