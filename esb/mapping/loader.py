"""The `Mapping` object, and loading it: `load_mapping` (compiled once, cached) and `check_mapping`."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from esb import codecs
from esb.codecs import LINE_KEY
from esb.conversions import ConversionError
from esb.errors import ConfigError, DecodeError, MappingError
from esb.mapping.compiler import CompiledMapping, compile_file
from esb.mapping.functions import InputScope, SourceInfo, is_empty
from esb.mapping.grouping import grouped
from esb.mapping.nodes import OMIT, Run
from esb.mapping.outline import Outline, outline_of
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
        self._grouping = compiled.grouping

    def __repr__(self) -> str:
        return f"<Mapping {self.path} {self.direction} {self.canonical_type}>"

    @property
    def input_format(self) -> str:
        return self._input_format

    @property
    def output_format(self) -> str:
        return self._output_format

    def decode(self, raw: bytes | BinaryIO, source: SourceInfo | None = None) -> Iterator[Any]:
        """The input documents in ``raw`` (lazily): split, or grouped from records, as declared.

        When ``source.line`` says on which line of a file the input's first record is, every
        record's line becomes a line of that file (errors name those lines too)."""
        items = codecs.decode(self._input_format, raw, **self._input)
        if source is not None and source.line is not None:
            items = _lines_of_the_file(items, source)
        items = grouped(items, self._grouping)
        if self._split is None:
            yield from items
            return
        for document in items:
            try:
                with InputScope(document, source):
                    parts = self._split.search(document)
            except ConversionError as error:
                raise DecodeError(f"input.split: {error}") from None
            if is_empty(parts):
                raise DecodeError(f"the input holds no document at {self._split.text} (input.split)")
            yield from parts if isinstance(parts, list) else [parts]

    def apply(self, document: Any, source: SourceInfo | None = None) -> dict:
        """One input document -> one output document; MappingError listing every field problem.
        ``source``: what the functions source_file(), source_line(), received_at() give."""
        run = Run()
        with InputScope(document, source):
            result = self._root.build(document, run, "")
        if run.problems:
            count = len(run.problems)
            raise MappingError(f"mapping {self.name}: {count} field{'s' if count > 1 else ''} could not be "
                               f"mapped", run.problems)
        return {} if result is OMIT else result

    def run(self, raw: bytes | BinaryIO, source: SourceInfo | None = None) -> Iterator[dict]:
        """decode + apply: every output document of one input (file, request body)."""
        for document in self.decode(raw, source):
            yield self.apply(document, source)

    def outline(self) -> Outline:
        """What this mapping writes, field by field (see `esb.mapping.outline`)."""
        return Outline(self.path, outline_of(self._root), self._output_format, dict(self._output))

    def encode(self, document: dict) -> bytes:
        """The output document as bytes: the target format ("out"), canonical JSON ("in")."""
        try:
            return codecs.encode(self._output_format, document, **self._output)
        except (ValueError, TypeError, LookupError) as error:
            raise MappingError(f"mapping {self.name}: the result cannot be written as {self._output_format}: "
                               f"{error}") from None


def _lines_of_the_file(records: Iterator[Any], source: SourceInfo) -> Iterator[Any]:
    """Records of a part of a file, their lines moved to be the file's: the first record is on
    ``source.line``; a decode error names the part's place in the file."""
    offset = None
    try:
        for record in records:
            if isinstance(record, dict) and isinstance(record.get(LINE_KEY), int):
                if offset is None:
                    offset = source.line - record[LINE_KEY]
                record[LINE_KEY] += offset
            yield record
    except DecodeError as error:
        where = f" of {source.file}" if source.file else ""
        raise DecodeError(f"{error} (counted in the part{where} whose first record is on line "
                          f"{source.line})") from None


# === load, check, cache ====================================================================

_CACHE: dict[tuple[str, str | None, str | None], tuple[tuple[int, int], Mapping]] = {}
_CACHE_LOCK = threading.Lock()


def check_mapping(path: str | Path, *, timezone: str | None = None) -> list[Problem]:
    """Every problem of a mapping file (empty when it is fine), each with its YAML line."""
    return compile_file(path, timezone=timezone)[1]


def load_mapping(path: str | Path, *, timezone: str | None = None, name: str | None = None) -> Mapping:
    """The compiled mapping, cached by path, modification time, ``timezone`` and ``name``;
    ConfigError listing every problem. ``timezone`` (an IANA name, ``settings.timezone``) is the
    zone of local times for a mapping that declares none (default UTC). ``name`` is what its
    errors call it (default: ``path``); the runtime names it relative to the routes file, so an
    external sender never sees where the server keeps its files."""
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None
    key = (str(resolved), timezone or None, name)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    compiled, problems = compile_file(path, timezone=timezone)
    if problems or compiled is None:
        raise ConfigError(problems)
    mapping = Mapping(str(path), compiled, name)
    if stamp is not None:
        with _CACHE_LOCK:
            _CACHE[key] = (stamp, mapping)
    return mapping


def mapping_name(path: str, config_path: str) -> str:
    """A mapping as its errors name it: its path relative to the routes file's directory without
    `.yaml` (`mappings/wms/shipment_confirmation.in`), or its file name when it lies outside."""
    relative = os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(config_path)))
    if relative.startswith(os.pardir):
        relative = os.path.basename(path)
    return relative.replace(os.sep, "/").removesuffix(".yaml").removesuffix(".yml")
