"""The `Mapping` object, and loading it: `load_mapping` (compiled once, cached) and `check_mapping`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from esb import codecs
from esb.conversions import ConversionError
from esb.errors import ConfigError, DecodeError, MappingError
from esb.mapping.compiler import CompiledMapping, compile_file
from esb.mapping.expressions import InputScope, is_empty
from esb.mapping.grouping import group_by_header, group_by_key
from esb.mapping.nodes import OMIT, Run
from esb.problems import Problem


class Mapping:
    """A loaded, checked, compiled mapping file. Build it with `load_mapping`."""

    def __init__(self, path: str, compiled: CompiledMapping, name: str | None = None):
        self.path = path
        self.name = name or path  # what error messages call it: never the server's path, to senders
        self.direction: str = compiled.direction
        self.canonical_type: str | None = compiled.canonical_type
        self._root = compiled.root
        self._input = dict(compiled.input)
        self._input_format = self._input.pop("format")
        self._output = dict(compiled.output)
        self._output_format = self._output.pop("format")
        self._split = compiled.split
        self._group_by = compiled.group_by
        self._group_starts_with = compiled.group_starts_with

    def __repr__(self) -> str:
        return f"<Mapping {self.path} {self.direction} {self.canonical_type}>"

    @property
    def input_format(self) -> str:
        return self._input_format

    @property
    def output_format(self) -> str:
        return self._output_format

    def decode(self, raw: bytes | BinaryIO) -> Iterator[Any]:
        """The input documents in ``raw`` (lazily): split, or grouped from records, as declared."""
        items = codecs.decode(self._input_format, raw, **self._input)
        if self._group_by is not None:
            items = group_by_key(items, self._group_by)
        elif self._group_starts_with is not None:
            items = group_by_header(items, self._group_starts_with)
        if self._split is None:
            yield from items
            return
        for document in items:
            try:
                with InputScope(document):
                    parts = self._split.search(document)
            except ConversionError as error:
                raise DecodeError(f"input.split: {error}") from None
            if is_empty(parts):
                raise DecodeError(f"the input holds no document at {self._split.text} (input.split)")
            yield from parts if isinstance(parts, list) else [parts]

    def apply(self, document: Any) -> dict:
        """One input document -> one output document; MappingError listing every field problem."""
        run = Run()
        with InputScope(document):
            result = self._root.build(document, run, "")
        if run.problems:
            count = len(run.problems)
            raise MappingError(f"mapping {self.name}: {count} field{'s' if count > 1 else ''} could not be "
                               f"mapped", run.problems)
        return {} if result is OMIT else result

    def run(self, raw: bytes | BinaryIO) -> Iterator[dict]:
        """decode + apply: every output document of one input (file, request body)."""
        for document in self.decode(raw):
            yield self.apply(document)

    def encode(self, document: dict) -> bytes:
        """The output document as bytes: the target format ("out"), canonical JSON ("in")."""
        try:
            return codecs.encode(self._output_format, document, **self._output)
        except (ValueError, TypeError, LookupError) as error:
            raise MappingError(f"mapping {self.name}: the result cannot be written as {self._output_format}: "
                               f"{error}") from None


# === load, check, cache ====================================================================

_CACHE: dict[str, tuple[tuple[int, int], Mapping]] = {}
_CACHE_LOCK = threading.Lock()


def check_mapping(path: str | Path) -> list[Problem]:
    """Every problem of a mapping file (empty when it is fine), each with its YAML line."""
    return compile_file(path)[1]


def load_mapping(path: str | Path, *, name: str | None = None) -> Mapping:
    """The compiled mapping, cached by path and modification time; ConfigError listing every problem.
    `name` is what its errors call it (default: `path`); the runtime names it relative to the
    routes file, so an external sender never sees where the server keeps its files."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    key = f"{resolved}\0{name}"
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    compiled, problems = compile_file(path)
    if problems or compiled is None:
        raise ConfigError(problems)
    mapping = Mapping(str(path), compiled, name)
    if stamp is not None:
        with _CACHE_LOCK:
            _CACHE[key] = (stamp, mapping)
    return mapping
