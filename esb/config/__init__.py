"""Loading and checking routes.yaml: every problem found, each with its file and line.

- `check_config(path)` returns every `Problem` (YAML syntax, `${VAR}` references, the routes
  schema, then the references: systems, adapters, mapping files, canonical types, filters,
  durations, adapter checks); it never stops at the first one.
- `load_config(path)` is the same check, then the `esb.routes.Config` model; it raises
  `ConfigError(problems)` when anything is wrong.
- `build_routes_schema()` is the JSON Schema (draft 2020-12) of routes.yaml, made from the
  registered adapters' specs; `esb schema` prints it and `schemas/routes.schema.json` is its copy.

Environment variables: a string value may hold `${VAR}` or `${VAR:-default}` (the default is used
when VAR is unset or empty) and `$$` for a literal `$`. A value that is a bare `${VAR}` (unquoted)
is typed as YAML would type the text (`port: ${PORT:-8080}` is a number); quote it to keep a
string. Values taken from the environment are never repeated in a problem: they may be secrets.

Adapter option schemas may carry these keywords, which this module reads:
`x-esb-role: source|sink` (an option only one side takes), `x-esb-path: true` (a file or
directory, resolved relative to the routes file), `x-esb-secret: true` (a password: only from
`${VAR}`, never inline), `x-esb-source-required` / `x-esb-sink-required`
(options one side needs), and `x-esb-source` / `x-esb-sink` on the endpoint schema (what the
adapter can be). A string option with `"pattern": DURATION_PATTERN` is a duration. In the built
model every option is present (missing ones take their default), paths are absolute and
durations are seconds as floats.

The package, one module per concern: `document` (YAML with lines and `${VAR}`), `schema` (the
routes schema), `sentences` (schema errors in words), `checker` (references, and the model).
"""


from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from esb.config.checker import Checker
from esb.config.document import MAX_NODES, Document, JsonPath, format_path, read_document
from esb.config.schema import (
    CONFIG_VERSION,
    DESTINATION_KEYS,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    RESERVED_DESTINATION_NAMES,
    build_routes_schema,
)
from esb.config.sentences import schema_problems
from esb.errors import ConfigError
from esb.problems import Problem
from esb.routes import Config

__all__ = ["CONFIG_VERSION", "DESTINATION_KEYS", "MAX_NAME_LENGTH", "MAX_NODES", "NAME_PATTERN",
           "RESERVED_DESTINATION_NAMES", "JsonPath", "build_routes_schema", "check_config", "format_path",
           "load_config"]


def _check(path: str | os.PathLike, environ: Mapping[str, str]) -> tuple[list[Problem], Config | None]:
    file = str(path)
    document = Document(file=file)
    read_document(document, Path(path), environ)
    if document.data is None:
        return document.problems, None
    broken = schema_problems(document, build_routes_schema())
    config = Checker(document, os.path.abspath(path), broken).check()
    problems = sorted(document.problems, key=lambda p: (p.file != file, p.file, p.line))
    return problems, (None if problems else config)


def check_config(path: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> list[Problem]:
    """Every problem of the routes file at `path` (empty when it is fine)."""
    return _check(path, environ)[0]


def load_config(path: str | os.PathLike, environ: Mapping[str, str] = os.environ) -> Config:
    """The checked configuration; raises `ConfigError` listing every problem."""
    problems, config = _check(path, environ)
    if problems:
        raise ConfigError(problems)
    if config is None:  # no problem reported but nothing built: a checker bug, say so plainly
        raise ConfigError([Problem(str(path), 0, "the configuration could not be built")])
    return config
