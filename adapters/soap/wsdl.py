"""WSDL files: loaded once per file version with zeep's forbid settings on, their operations looked
up by name (an unknown one gets "did you mean"), and `esb check`'s checks of a soap endpoint.

WSDLs are local files, parsed once per file version (path, size, modification time) and shared by
every route that uses them; zeep runs strict, with DTDs, entity declarations and external
references forbidden, so neither a WSDL nor an answer can expand entities or fetch from the network.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import jmespath
import zeep
import zeep.exceptions
from lxml import etree

from adapters.soap.paging import paging_problems
from esb.problems import unknown

ZEEP_FORBID = {"forbid_dtd": True, "forbid_entities": True, "forbid_external": True}
"""zeep's XML safety switches: no DOCTYPE, no entity declarations, no fetch of a remote import."""

WSDL_LOAD_TIMEOUT = 10.0
"""Seconds zeep may spend loading a WSDL (local files only: remote imports are forbidden)."""

SOAP11_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENVELOPE = "http://www.w3.org/2003/05/soap-envelope"
WSDL_NAMESPACE = "http://schemas.xmlsoap.org/wsdl/"
XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
WSSE_NAMESPACE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
ESB_NAMESPACE = "urn:esb:soap"
"""Namespace of the bus's own SOAP header (`esb:Accepted`) and fault details (`esb:problems`)."""


def zeep_settings() -> zeep.Settings:
    """Strict parsing with the forbid switches on; one per client (its overrides are per thread)."""
    return zeep.Settings(strict=True, xml_huge_tree=False, **ZEEP_FORBID)


# --- WSDL files: loaded once per file version ---------------------------------------------------

class WsdlError(Exception):
    """A WSDL file that cannot be used; the message says why, in a sentence."""


_documents: dict[tuple[str, int, int], Any] = {}
_documents_lock = threading.Lock()


def load_wsdl(path: str | os.PathLike) -> Any:
    """The parsed WSDL (a `zeep.wsdl.Document`) of a local file, cached per (path, size, mtime)."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as error:
        raise WsdlError(f"WSDL file {path} cannot be read: {error.strerror}") from None
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _documents_lock:
        document = _documents.get(key)
        if document is None:
            document = _parse_wsdl(resolved, path)
            for stale in [k for k in _documents if k[0] == key[0]]:
                del _documents[stale]
            _documents[key] = document
    return document


def _parse_wsdl(resolved: Path, shown: str | os.PathLike) -> Any:
    transport = zeep.Transport(timeout=WSDL_LOAD_TIMEOUT)
    try:
        return zeep.wsdl.Document(str(resolved), transport, settings=zeep_settings())
    except zeep.exceptions.DTDForbidden:
        reason = "it has a DOCTYPE (DTDs and entities are refused)"
    except zeep.exceptions.EntitiesForbidden as error:
        reason = f"it declares the entity {error.name!r} (entities are refused)"
    except zeep.exceptions.ExternalReferenceForbidden as error:
        reason = f"it imports {error.url}, and nothing is fetched over the network: use a local copy"
    except (zeep.exceptions.Error, etree.Error, OSError, ValueError, KeyError) as error:
        reason = f"{type(error).__name__}: {getattr(error, 'message', None) or error}"
    finally:
        transport.session.close()
    raise WsdlError(f"WSDL file {shown} cannot be used: {reason}")


class OperationInfo:
    """One operation of a WSDL, with the binding that offers it and that binding's address."""

    def __init__(self, binding: Any, operation: Any, address: str | None):
        self.binding = binding
        self.operation = operation
        self.address = address
        self.name = operation.name
        self.soap_version = "1.2" if isinstance(binding, zeep.wsdl.bindings.Soap12Binding) else "1.1"

    @property
    def soap_action(self) -> str:
        return getattr(self.operation, "soapaction", None) or ""

    def input_fields(self) -> list[str] | None:
        """Names of the request's parameters (document/literal wrapped), None when unknown."""
        return child_names(getattr(self.operation.input, "body", None))

    def input_element(self) -> Any:
        return getattr(self.operation.input, "body", None)

    def output_element(self) -> Any:
        output = self.operation.output
        return getattr(output, "body", None) if output is not None else None


def child_names(element: Any) -> list[str] | None:
    try:
        return [name for name, _ in element.type.elements]
    except AttributeError:
        return None


def wsdl_operations(document: Any) -> dict[str, OperationInfo]:
    """Every operation of the WSDL by name; bindings that a service port offers come first, so an
    operation offered by two bindings is called through the port the WSDL names first."""
    found: dict[str, OperationInfo] = {}
    addresses: dict[str, str | None] = {}
    ordered = []
    for service in document.services.values():
        for port in service.ports.values():
            key = str(port.binding.name)
            if key not in addresses:
                addresses[key] = port.binding_options.get("address")
                ordered.append(port.binding)
    ordered.extend(binding for key, binding in document.bindings.items() if key not in addresses)
    for binding in ordered:
        for name, operation in getattr(binding, "_operations", {}).items():
            found.setdefault(name, OperationInfo(binding, operation, addresses.get(str(binding.name))))
    return found


def find_operation(wsdl: str | os.PathLike, name: str) -> OperationInfo:
    """The operation `name` of the WSDL file; WsdlError (with "did you mean") when it has none."""
    operations = wsdl_operations(load_wsdl(wsdl))
    if name not in operations:
        raise WsdlError(f"{unknown('operation', name, operations)} (in {wsdl})")
    return operations[name]


# --- esb check -----------------------------------------------------------------------------------

def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """A source polls or is inbound; the WSDL it uses loads safely and offers the operation; the
    fixed parameters, the watermark parameter and the paging parameters are parameters of that
    operation; the paging options fit together (`adapters.soap.paging.paging_problems`)."""
    options = endpoint.options
    problems = []
    is_source = "inbound" in options  # only a source's options carry the source-only keys
    if is_source and not options.get("inbound") and options.get("poll") is None:
        problems.append("a soap source needs poll: (call the operation every so often) "
                        "or inbound: true (accept calls at POST /soap/<route>)")
    if is_source and options.get("inbound") and options.get("poll") is not None:
        problems.append("a soap source either polls (poll:) or accepts calls (inbound: true), not both: "
                        "make two routes")
    if is_source and options.get("poll") is not None and not options.get("system"):
        problems.append("a polling soap source needs system: (whose WSDL and credentials to use)")
    if is_source:
        problems.extend(_watermark_problems(options))
        problems.extend(paging_problems(options))
    wsdl = options.get("wsdl") or (system or {}).get("wsdl")
    if is_source and options.get("inbound") and not wsdl:
        problems.append("an inbound soap source needs wsdl: (or a system with one)")
    if wsdl and not Path(wsdl).is_file():
        problems.append(f"WSDL file not found: {wsdl}")
    elif wsdl and options.get("operation"):
        problems.extend(_operation_problems(options, wsdl, system))
    return problems


def _watermark_problems(options: dict) -> list[str]:
    problems = []
    if options.get("watermark_param") and not options.get("watermark"):
        problems.append("watermark_param needs watermark: (the JMESPath that gives each record's value)")
    if options.get("watermark"):
        try:
            jmespath.compile(options["watermark"])
        except jmespath.exceptions.JMESPathError as error:
            problems.append(f"watermark is not a valid JMESPath expression: {error}")
    return problems


def _operation_problems(options: dict, wsdl: str, system: dict | None) -> list[str]:
    try:
        found = find_operation(wsdl, options["operation"])
    except WsdlError as error:
        return [str(error)]
    problems = []
    fields = found.input_fields()
    if fields is not None:
        for name in options.get("params") or {}:
            if name not in fields:
                problems.append(f"params: {unknown(f'parameter of {found.name}', name, fields)}")
        for option in ("watermark_param", "page_param", "page_token_param"):
            parameter = options.get(option)
            if parameter and parameter not in fields:
                problems.append(f"{option}: {unknown(f'parameter of {found.name}', parameter, fields)}")
    calls = not options.get("inbound")
    if calls and system is not None and not system.get("endpoint_url") and not found.address:
        problems.append(f"the WSDL gives no address for {found.name}: set endpoint_url in the system")
    return problems
