"""The adapter plugin contract and the registry of adapters by name.

An adapter is a module in `adapters/` (or any installed package) that calls `register()` with an
`AdapterSpec` at import time. Built-in adapters are imported on first use; third-party ones are
found through the `esb.adapters` entry point group, whose entry points name such a module:

    [project.entry-points."esb.adapters"]
    sftp = "my_package.sftp_adapter"

The spec's JSON Schema fragments are the single source of each adapter's options: `esb check`
validates route files with them and `schemas/routes.schema.json` is generated from them.
Adapters know this contract and the codecs, never the broker: a sink delivers or raises
`esb.errors.Retryable` / `esb.errors.Permanent`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from esb.problems import unknown

BUILTIN_MODULES = ("adapters.rest", "adapters.soap", "adapters.flatfile")
ENTRY_POINT_GROUP = "esb.adapters"


@dataclass(frozen=True, slots=True)
class RawMessage:
    """What a source produces: undecoded bytes plus what it knows about them."""

    body: bytes
    content_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # file name, line, HTTP headers, ...


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """An adapter's name, what it can do, and the JSON Schema of its options.

    - `endpoint_schema`: the options of a `from:`/`to:` block (`{"rest": {...}}`);
    - `system_schema`: the connection settings under `systems.<name>.<adapter>`;
    - `source_factory(endpoint, system_settings, context)` / `sink_factory(...)` build the
      running parts (None when the adapter cannot be a source or a sink).
    """

    name: str
    summary: str
    endpoint_schema: dict[str, Any]
    system_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    source_factory: Callable[..., Any] | None = None
    sink_factory: Callable[..., Any] | None = None
    check: Callable[..., list[str]] | None = None  # extra checks: (endpoint, system, base_dir) -> sentences

    @property
    def can_source(self) -> bool:
        return self.source_factory is not None or self.endpoint_schema.get("x-esb-source", False)

    @property
    def can_sink(self) -> bool:
        return self.sink_factory is not None or self.endpoint_schema.get("x-esb-sink", False)


_adapters: dict[str, AdapterSpec] = {}
_loaded = False


def register(spec: AdapterSpec) -> AdapterSpec:
    """Make an adapter known by its name; a second adapter with the same name is an error."""
    existing = _adapters.get(spec.name)
    if existing is not None and existing is not spec:
        raise ValueError(f'adapter "{spec.name}" is registered twice')
    _adapters[spec.name] = spec
    return spec


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def adapters() -> dict[str, AdapterSpec]:
    """Every registered adapter by name (built-ins and entry points)."""
    _load()
    return dict(_adapters)


def get_adapter(name: str) -> AdapterSpec:
    """The adapter called `name`; KeyError with a "did you mean" sentence otherwise."""
    _load()
    try:
        return _adapters[name]
    except KeyError:
        raise KeyError(unknown("adapter", name, _adapters)) from None
