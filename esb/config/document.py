"""Reading routes.yaml: plain data, the line of every value, and `${VAR}` substitution.

A string value may hold `${VAR}` or `${VAR:-default}` (the default is used when VAR is unset or
empty) and `$$` for a literal `$`. A value that is a bare `${VAR}` (unquoted) is typed as YAML
would type the text (`port: ${PORT:-8080}` is a number); quote it to keep a string. Which values
came from the environment is noted, so that no problem ever repeats them: they may be secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from esb.problems import Problem

JsonPath = tuple[str | int, ...]

MAX_NODES = 100_000
"""A routes file with more YAML nodes than this (e.g. through aliases of aliases) is refused."""

_ENV_REFERENCE = re.compile(r"\$(?:\$|\{([^}]*)\}|\{)")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

@dataclass
class Document:
    """The file's data, the line of every JSON path in it, and which values came from ${VAR}."""

    file: str
    data: Any = None
    lines: dict[JsonPath, int] = field(default_factory=dict)
    from_environment: set[JsonPath] = field(default_factory=set)
    unset_variables: set[JsonPath] = field(default_factory=set)  # their schema errors would only repeat
    quoted_references: set[JsonPath] = field(default_factory=set)  # "${VAR}": kept a string
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: JsonPath) -> int:
        """The line of `path`, or of its nearest parent that has one."""
        path = tuple(path)
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1 if self.data is not None else 0)

    def add(self, path: JsonPath, sentence: str, line: int | None = None) -> None:
        """A problem at `path` (on `line` when given, else on the line of `path`)."""
        where = format_path(path)
        text = f"{where}: {sentence}" if where else sentence
        self.problems.append(Problem(self.file, line or self.line(path), text))


def format_path(path: JsonPath) -> str:
    """`routes[1].retry.attempts` for ("routes", 1, "retry", "attempts")."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def read_document(document: Document, path: Path, environ: Mapping[str, str]) -> None:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        document.problems.append(Problem(document.file, 0, "routes file not found"))
        return
    except UnicodeDecodeError as error:
        document.problems.append(Problem(document.file, 0, f"not UTF-8 text ({error.reason} at byte "
                                                           f"{error.start})"))
        return
    except OSError as error:
        document.problems.append(Problem(document.file, 0, f"cannot read the file: {error.strerror}"))
        return
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            document.problems.append(Problem(document.file, 0, "the file is empty; it needs at least "
                                                               "version: 1 and routes:"))
            return
        document.lines[()] = node.start_mark.line + 1
        converter = Converter(loader, document, environ)
        document.data = converter.convert(node, ())
    except yaml.MarkedYAMLError as error:
        document.problems.append(_syntax_problem(document.file, error))
    except yaml.YAMLError as error:
        document.problems.append(Problem(document.file, 0, f"YAML syntax error: {error}"))
    finally:
        loader.dispose()


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    sentence = f"YAML syntax error: {error.problem or error.context}"
    if mark is not None:
        sentence += f" (column {mark.column + 1})"
    if error.context and error.problem and error.context_mark is not None:
        sentence += f", {error.context} on line {error.context_mark.line + 1}"
    return Problem(file, mark.line + 1 if mark is not None else 0, sentence)


class Converter:
    """YAML nodes to plain data (as yaml.safe_load would), noting each path's line on the way."""

    def __init__(self, loader: yaml.SafeLoader, document: Document, environ: Mapping[str, str]):
        self.loader = loader
        self.document = document
        self.environ = environ
        self.nodes = 0

    def convert(self, node: yaml.Node, path: JsonPath) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise yaml.YAMLError(f"more than {MAX_NODES} values (aliases of aliases?)")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            result = []
            for index, item in enumerate(node.value):
                self.document.lines[(*path, index)] = item.start_mark.line + 1
                result.append(self.convert(item, (*path, index)))
            return result
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            return self._substitute(node, value, path)
        return value

    def _mapping(self, node: yaml.MappingNode, path: JsonPath) -> dict:
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.document.problems.append(Problem(self.document.file, line, "a key must be plain text"))
                continue
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key)  # e.g. `1: x`; JSON keys are strings
            if key in result:
                self.document.add(path, f'"{key}" appears twice in this block '
                                                f"(the first on line {self.document.lines[(*path, key)]})",
                                  line=line)
                continue
            self.document.lines[(*path, key)] = line
            result[key] = self.convert(value_node, (*path, key))
        return result

    def _substitute(self, node: yaml.ScalarNode, text: str, path: JsonPath) -> Any:
        used_environment = False

        def replace(match: re.Match) -> str:
            nonlocal used_environment
            if match.group(0) == "$$":
                return "$"
            if match.group(1) is None:
                self.document.add(path, '"${" without its closing "}"; write $$ for a literal $')
                return match.group(0)
            name, has_default, default = match.group(1).partition(":-")
            if not _VARIABLE_NAME.match(name):
                self.document.add(path, f'"${{{match.group(1)}}}" is not a variable reference; names are '
                                        "letters, digits and _ (write $$ for a literal $)")
                return match.group(0)
            value = self.environ.get(name)
            if value:
                used_environment = True
                return value
            if has_default:
                return default
            if value is None:
                self.document.unset_variables.add(path)
                self.document.add(path, f"environment variable {name} is not set "
                                        f"(set it, or write ${{{name}:-default}})")
            else:
                used_environment = True
            return ""

        result = _ENV_REFERENCE.sub(replace, text)
        if used_environment:
            self.document.from_environment.add(path)
        whole_reference = _ENV_REFERENCE.fullmatch(text.strip()) and not text.startswith("$$")
        if node.style is not None and whole_reference:
            self.document.quoted_references.add(path)
        if node.style is None and whole_reference:
            # an unquoted `${PORT:-8080}` is typed as if the text had been written there
            tag = self.loader.resolve(yaml.ScalarNode, result, (True, False))
            return self.loader.construct_object(yaml.ScalarNode(tag, result), deep=True)
        return result

