"""The checks after the schema: references (systems, adapters, mapping files, canonical types),
filters, durations and the adapters' own checks; the `esb.routes.Config` model is built on the way."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from esb.config.document import Document, JsonPath
from esb.config.schema import (
    DESTINATION_KEYS,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    RESERVED_DESTINATION_NAMES,
    role_schema,
)
from esb.durations import DURATION_PATTERN, parse_duration
from esb.plugins import adapters
from esb.problems import unknown
from esb.retry import RetryPolicy
from esb.routes import Config, Destination, Endpoint, Route, System
from esb.splitter import Split, split_problems

_NAME = re.compile(NAME_PATTERN)


class Checker:
    """Checks every reference of a schema-checked document and builds the model on the way."""

    def __init__(self, document: Document, config_path: str, broken: set[JsonPath]):
        self.document = document
        self.config_path = config_path
        self.base_dir = Path(config_path).parent
        self.broken = broken
        self.specs = adapters()
        self._registry = None
        data = document.data if isinstance(document.data, dict) else {}
        self.systems_block = data.get("systems") if isinstance(data.get("systems"), dict) else {}
        self.settings_block = data.get("settings") if isinstance(data.get("settings"), dict) else {}

    def is_broken(self, path: JsonPath) -> bool:
        """True when a schema error was found at `path` or inside it."""
        return any(error[:len(path)] == path for error in self.broken)

    def add(self, path: JsonPath, sentence: str) -> None:
        self.document.add(path, sentence)

    def resolve(self, value: str) -> str:
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(value)))

    def options(self, schema: dict, block: dict) -> dict:
        """`block` with every option present (defaults filled in), file paths made absolute and
        durations in seconds (floats)."""
        options = copy.deepcopy(block)
        for key, option in schema.get("properties", {}).items():
            if key not in options and "default" in option:
                options[key] = copy.deepcopy(option["default"])
            if option.get("x-esb-path") and isinstance(options.get(key), str):
                options[key] = self.resolve(options[key])
            if option.get("pattern") == DURATION_PATTERN and options.get(key) is not None:
                options[key] = parse_duration(options[key])
        return options

    # the whole file

    def check(self) -> Config | None:
        data = self.document.data
        if not isinstance(data, dict):
            return None
        systems = self.check_systems()
        self.check_settings()
        routes = []
        route_lines: dict[str, int] = {}
        raw_routes = data.get("routes") if isinstance(data.get("routes"), list) else []
        for index, block in enumerate(raw_routes):
            if not isinstance(block, dict):
                continue
            path = ("routes", index)
            name = block.get("name")
            if isinstance(name, str):
                if name in route_lines:
                    self.add((*path, "name"), f'route name "{name}" is used twice (first on line '
                                              f"{route_lines[name]}); route names name queues and URLs")
                else:
                    route_lines[name] = self.document.line(path)
            route = self.check_route(path, block)
            if route is not None:
                routes.append(route)
        from esb import aggregator, alerts

        for path, sentence in aggregator.link_problems(raw_routes) + alerts.link_problems(raw_routes):
            self.add(path, sentence)
        settings = dict(self.settings_block)
        if isinstance(settings.get("data_dir"), str):
            settings["data_dir"] = self.resolve(settings["data_dir"])
        if self.document.problems or len(routes) != len(raw_routes):
            return None
        return Config(path=self.config_path, systems=systems, routes=tuple(routes), settings=settings)

    def check_systems(self) -> dict[str, System]:
        systems = {}
        for name, block in self.systems_block.items():
            path = ("systems", name)
            if not isinstance(block, dict) or self.is_broken(path):
                continue
            for adapter, options in block.items():
                self.check_secrets((*path, adapter), self.specs[adapter].system_schema, options)
            settings = {adapter: self.options(self.specs[adapter].system_schema, options)
                        for adapter, options in block.items()}
            systems[name] = System(name=name, settings=settings, line=self.document.line(path))
        return systems

    def check_secrets(self, path: JsonPath, schema: dict, options: dict) -> None:
        """An option marked `x-esb-secret` (a password) must come from ${ENV}, never be written inline."""
        for key, option in schema.get("properties", {}).items():
            if option.get("x-esb-secret") and isinstance(options.get(key), str) and options[key] \
                    and (*path, key) not in self.document.from_environment:
                self.add((*path, key), f"{key} is written inline; give it as ${{VAR}} (an environment "
                                       "variable), so that no secret is kept in routes.yaml")

    def check_settings(self) -> None:
        zone = self.settings_block.get("timezone")
        if isinstance(zone, str) and zone and self.default_timezone() is None:
            self.add(("settings", "timezone"), f'unknown time zone "{zone}" (use an IANA name such as '
                                               "Europe/Berlin or Asia/Shanghai)")

    def default_timezone(self) -> str | None:
        """settings.timezone when it names a zone (the mappings' default), else None."""
        zone = self.settings_block.get("timezone")
        if not isinstance(zone, str) or not zone:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return None
        return zone

    # one route

    def check_route(self, path: JsonPath, block: dict) -> Route | None:
        source = self.check_endpoint((*path, "from"), block.get("from"), "source")
        canonical_type = block.get("validate") if isinstance(block.get("validate"), str) else None
        version = block.get("schema_version", 1)
        version = version if isinstance(version, int) and not isinstance(version, bool) else 1
        if canonical_type is not None:
            self.check_canonical_type((*path, "validate"), canonical_type, version)
        inbound_map = None
        if isinstance(block.get("map"), str):
            inbound_map, mapped_type = self.check_mapping((*path, "map"), block["map"], "in", canonical_type)
            canonical_type = canonical_type or mapped_type
        route_filter = self.check_filter((*path, "filter"), block.get("filter"))
        split = self.check_split((*path, "split"), block.get("split"), canonical_type, version)
        retry = self.check_retry((*path, "retry"), block.get("retry"))
        destinations = self.check_destinations(path, block.get("to"), canonical_type)
        if source is None or destinations is None or retry is None or self.is_broken(path):
            return None
        queue_type = block.get("queue_type") or self.settings_block.get("queue_type") or "classic"
        options = {"queue_type": queue_type}
        if "description" in block:
            options["description"] = block["description"]
        return Route(name=block["name"], source=source, destinations=destinations, map=inbound_map,
                     validate=block.get("validate"), schema_version=version, filter=route_filter,
                     split=split, retry=retry, options=options, line=self.document.line(path))

    def check_destinations(self, route_path: JsonPath, entries: Any,
                           canonical_type: str | None) -> tuple[Destination, ...] | None:
        if not isinstance(entries, list):
            return None
        destinations = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            path = (*route_path, "to", index)
            endpoint = self.check_endpoint(path, entry, "sink")
            if not isinstance(entry, dict) or len(entry) != 1:
                continue
            adapter, block = next(iter(entry.items()))
            block = block if isinstance(block, dict) else {}
            name = block.get("name") or block.get("system") or adapter
            if not isinstance(name, str):
                continue
            if name in seen:
                self.add(path, f'two destinations are named "{name}" (the first on line {seen[name]}); give '
                               "each a name: of its own (names pick the destination's queues)")
            else:
                seen[name] = self.document.line(path)
                unfit = (not _NAME.match(name) or len(name) > MAX_NAME_LENGTH
                         or name in RESERVED_DESTINATION_NAMES)
                if "name" not in block and unfit:
                    self.add(path, f'destination name "{name}" (from its system) cannot name a queue; add '
                                   "name: with lower-case letters, digits, - and _")
            map_path = None
            if isinstance(block.get("map"), str):
                map_path, _ = self.check_mapping((*path, adapter, "map"), block["map"], "out", canonical_type)
                if map_path is not None and endpoint is not None:
                    self.check_mapping_fits((*path, adapter, "map"), endpoint, block.get("system"), map_path)
            destination_filter = self.check_filter((*path, adapter, "filter"), block.get("filter"))
            if endpoint is not None:
                destinations.append(Destination(name=name, endpoint=endpoint, map=map_path,
                                                filter=destination_filter, line=self.document.line(path)))
        if len(destinations) != len(entries):
            return None
        return tuple(destinations)

    def check_endpoint(self, path: JsonPath, entry: Any, role: str) -> Endpoint | None:
        named = [key for key in entry if key in self.specs] if isinstance(entry, dict) else []
        if len(named) != 1:
            return None  # no adapter, or several: the schema said so
        adapter = named[0]
        block = entry[adapter]
        spec = self.specs[adapter]
        if not isinstance(block, dict):
            return None
        path = (*path, adapter)
        if role == "source" and not spec.can_source:
            self.add(path, f"the {adapter} adapter cannot be a source (from:)")
        if role == "sink" and not spec.can_sink:
            self.add(path, f"the {adapter} adapter cannot be a destination (to:)")
        system_settings = self.check_system_reference(path, adapter, block.get("system"))
        if self.is_broken(path):
            return None
        schema = role_schema(spec, role)
        # a destination's map, filter and name belong to the Destination, not to the adapter
        own = {key: value for key, value in block.items() if role == "source" or key not in DESTINATION_KEYS}
        options = self.options(schema, own)
        endpoint = Endpoint(adapter=adapter, options=options, line=self.document.line(path))
        if spec.check is not None:
            for sentence in spec.check(endpoint, system_settings, self.base_dir):
                self.add(path, sentence)
        return endpoint

    def check_system_reference(self, path: JsonPath, adapter: str, name: Any) -> dict | None:
        if not isinstance(name, str):
            return None
        if name not in self.systems_block:
            self.add((*path, "system"), unknown("system", name, self.systems_block))
            return None
        block = self.systems_block[name]
        if not isinstance(block, dict) or self.is_broken(("systems", name)):
            return None
        if adapter not in block:
            has = ", ".join(block) or "none"
            self.add((*path, "system"), f'system "{name}" has no {adapter} block (it has: {has}); add '
                                        f"systems.{name}.{adapter}")
            return None
        settings = block[adapter] if isinstance(block[adapter], dict) else {}
        return self.options(self.specs[adapter].system_schema, settings)

    # references to other files and names

    def check_mapping(self, path: JsonPath, value: str, direction: str,
                      canonical_type: str | None) -> tuple[str | None, str | None]:
        """The mapping file exists, loads, maps the right way and to the right type; (abs path, type)."""
        full = self.resolve(value)
        if not os.path.isfile(full):
            self.add(path, f"mapping file not found: {value} (looked for {full})")
            return None, None
        from esb.mapping import check_mapping, load_mapping

        # the mapping's own problems name it as the routes file was named: relative stays relative
        shown = full if os.path.isabs(self.document.file) else os.path.relpath(full)
        zone = self.default_timezone()
        problems = check_mapping(shown, timezone=zone)
        if problems:
            self.document.problems.extend(problems)
            return None, None
        try:
            mapping = load_mapping(shown, timezone=zone)
        except Exception as error:  # check_mapping passed it: say what load_mapping found
            self.add(path, f"mapping {value} cannot be loaded: {error}")
            return None, None
        if mapping.direction != direction:
            place, purpose = (("a route's map:", "source format -> canonical type") if direction == "in"
                              else ("a destination's map:", "canonical type -> target format"))
            self.add(path, f'mapping {value} has direction "{mapping.direction}"; {place} needs direction '
                           f'"{direction}" ({purpose})')
        elif canonical_type and mapping.canonical_type and mapping.canonical_type != canonical_type:
            self.add(path, f'mapping {value} is for canonical type "{mapping.canonical_type}", '
                           f'but the route carries "{canonical_type}"')
        return full, mapping.canonical_type

    def check_mapping_fits(self, path: JsonPath, endpoint: Endpoint, system: Any, mapping_path: str) -> None:
        """The adapter's `check_mapping` hook: the mapping writes what the target takes."""
        hook = self.specs[endpoint.adapter].check_mapping
        if hook is None:
            return
        from esb.mapping import load_mapping

        outline = load_mapping(mapping_path, timezone=self.default_timezone()).outline()
        for sentence in hook(endpoint, self.system_settings(endpoint.adapter, system), outline):
            self.add(path, sentence)

    def system_settings(self, adapter: str, name: Any) -> dict | None:
        """The settings of a system for an adapter (defaults filled in), None when there are none;
        `check_system_reference` reports what is wrong with the reference."""
        block = self.systems_block.get(name) if isinstance(name, str) else None
        if not isinstance(block, dict) or not isinstance(block.get(adapter), dict) or \
                self.is_broken(("systems", name)):
            return None
        return self.options(self.specs[adapter].system_schema, block[adapter])

    def registry(self):
        """The canonical schemas, loaded once per check."""
        if self._registry is None:
            from esb.schemas import SchemaRegistry

            self._registry = SchemaRegistry()
        return self._registry

    def check_canonical_type(self, path: JsonPath, name: str, version: int) -> None:
        if self.registry().has(name, version):
            return
        types = list(self.registry().types())
        if name in types:
            self.add(path, f'canonical type "{name}" has no schema version {version}')
        else:
            self.add(path, unknown("canonical type", name, types))

    def check_split(self, path: JsonPath, block: Any, canonical_type: str | None,
                    version: int) -> Split | None:
        """The splitter's fields exist in the canonical type the route carries."""
        if not isinstance(block, dict) or self.is_broken(path):
            return None
        split = Split.from_config(block)
        if canonical_type is None:
            self.add(path, "split: needs a canonical type to split (validate: or a map: with one)")
            return split
        if not self.registry().has(canonical_type, version):
            return split  # an unknown type is reported where it is named
        for option, sentence in split_problems(split, self.registry().schema(canonical_type, version)):
            self.add((*path, option), sentence)
        return split

    def check_filter(self, path: JsonPath, expression: Any) -> str | None:
        if not isinstance(expression, str):
            return None
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(expression)
        except JMESPathError as error:
            self.add(path, f"not a valid JMESPath expression: {_jmespath_error(error)}")
            return None
        return expression

    def check_retry(self, path: JsonPath, block: Any) -> RetryPolicy | None:
        if block is None:
            return RetryPolicy()
        if not isinstance(block, dict) or self.is_broken(path):
            return None
        for index, delay in enumerate(block.get("backoff") or []):
            try:
                parse_duration(delay)
            except ValueError as error:
                self.add((*path, "backoff", index), str(error))
                return None
        try:
            return RetryPolicy.from_config(block)
        except (ValueError, TypeError) as error:
            self.add(path, str(error))
            return None


def _jmespath_error(error: Exception) -> str:
    """"the expression ends too early at column 13" rather than jmespath's several-line message."""
    from jmespath.exceptions import IncompleteExpressionError

    position = getattr(error, "lex_position", None)
    where = f" at column {position + 1}" if isinstance(position, int) else ""
    if isinstance(error, IncompleteExpressionError):
        return f"the expression ends too early{where}"
    detail = getattr(error, "message", None) or (
        f"unexpected {error.token_value!r}" if getattr(error, "token_value", None) else "syntax error")
    return f"{detail}{where}"

