"""Route test cases: a route's whole path (decode, map, validate, split, filter, the transport,
every destination's rendering) run in-process on the embedded transport, sinks captured.

Convention: beside the routes file is a folder ``routes.cases/<route name>/`` holding one YAML
file per case, ``<case>.yaml``::

    input:                      # what the route's source would hand the bus
      file: ../../mappings/erp/item.in.cases/olive_oil_with_cartons.input.xml   # relative to the case
      # or body: '{"a": 1}'     (text, UTF-8)
      content_type: application/xml    # default: the source's format
      metadata: {file: GR_1.csv}       # default: the file name for file sources
      idempotency_key: abc             # optional
    canonical:                  # the canonical payload(s) the route makes: one object, or a list
      itemCode: "100234"
    destinations:               # per destination name: what its sink was given, one entry per message
      wms: [{...}]              # JSON and XML bodies compare as data; other formats as text
      # a destination left out must receive nothing
    ignore: [id, received_at]   # keys left out of every comparison, at any depth (or a.b.c paths)
    error: [unknown unit]       # instead of the above: the input is refused with these texts

`esb test` runs them after the mapping cases (`esb.mapping_cases`); tests/test_route_cases.py
runs the shipped ones.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from esb import codecs, jsonfmt
from esb.errors import InputError
from esb.mapping_cases import MAX_DIFFERENCES, differences_between
from esb.plugins import RawMessage, Sink
from esb.routes import Config, Destination, Route
from esb.runtime import Runtime, RuntimeOptions

CASES_FOLDER = "routes.cases"
DELIVERY_TIMEOUT = 10.0
"""Seconds a case waits for its deliveries before it reports the missing ones."""


@dataclass(frozen=True)
class RouteCase:
    path: Path
    route: str
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def id(self) -> str:
        return f"{self.route} :: {self.name}"


@dataclass(frozen=True)
class RouteCaseResult:
    case: RouteCase
    ok: bool
    message: str = ""


def cases_root(config_path: str | Path) -> Path:
    return Path(config_path).resolve().parent / CASES_FOLDER


def discover_route_cases(root: str | Path) -> list[RouteCase]:
    """Every ``<route>/<case>.yaml`` under ``root``, sorted (unreadable YAML fails in `run`)."""
    root = Path(root)
    found = []
    for path in sorted(root.glob("*/*.yaml")):
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            spec = {"_problem": f"not readable YAML: {error}"}
        found.append(RouteCase(path, path.parent.name, spec if isinstance(spec, dict) else
                               {"_problem": "must be a mapping (input:, canonical:, destinations:)"}))
    return found


FED_BY_THE_BUS = ("aggregate", "alerts")
"""Sources whose input other routes make (the aggregator's groups, the alert outbox): a case has
no outside input to give them; tests/test_reconcile_runtime.py runs them end to end."""


def routes_without_cases(config: Config, cases: list[RouteCase]) -> list[str]:
    covered = {case.route for case in cases}
    return [route.name for route in config.routes
            if route.name not in covered and route.source.adapter not in FED_BY_THE_BUS]


class _CaptureSink(Sink):
    """Keeps what a destination would send."""

    def __init__(self, captured: list, route: str, destination: str, condition: threading.Condition):
        self._captured, self._route, self._destination = captured, route, destination
        self._condition = condition

    def deliver(self, envelope: Any, body: bytes, content_type: str) -> str | None:
        with self._condition:
            self._captured.append((self._route, self._destination, envelope.id, body, content_type))
            self._condition.notify_all()
        return None


class _Recorder:
    """Wraps an inbound pipeline: remembers what `prepare` made (canonical payloads, destinations)."""

    def __init__(self, pipeline: Any):
        self._pipeline = pipeline
        self.last: list = []

    def prepare(self, *args: Any, **kwargs: Any) -> list:
        self.last = self._pipeline.prepare(*args, **kwargs)
        return self.last


class CaptureRuntime(Runtime):
    """A runtime of every route with no sources, no HTTP and capturing sinks."""

    def __init__(self, config: Config, data_dir: Path):
        options = RuntimeOptions(broker_url=None, data_dir=data_dir, http=False, sources=False)
        super().__init__(config, options)
        self.captured: list[tuple[str, str, str, bytes, str]] = []
        self.condition = threading.Condition()
        self.recorders = {name: _Recorder(pipeline) for name, pipeline in self.pipelines.items()}
        self.pipelines = dict(self.recorders)

    def _make_sink(self, route: Route, destination: Destination) -> Sink:
        return _CaptureSink(self.captured, route.name, destination.name, self.condition)

    def failures(self, message_ids: set[str]) -> list[str]:
        """The journal's retried / dead-lettered entries of these messages (a rendering failed)."""
        self.journal.flush()
        return [f"{entry.destination}: {entry.step}: {entry.detail}" for message_id in message_ids
                for entry in self.journal.trace(message_id=message_id)
                if entry.step in ("retried", "dead_lettered")]


def run_route_cases(config: Config, cases: list[RouteCase],
                    timeout: float = DELIVERY_TIMEOUT) -> list[RouteCaseResult]:
    """Run every case on one in-process runtime (embedded transport in a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="esb-route-cases-") as folder:
        runtime = CaptureRuntime(config, Path(folder))
        runtime.start()
        try:
            return [_run(runtime, config, case, timeout) for case in cases]
        finally:
            runtime.stop()


def _run(runtime: CaptureRuntime, config: Config, case: RouteCase, timeout: float) -> RouteCaseResult:
    spec = case.spec
    if "_problem" in spec:
        return RouteCaseResult(case, False, f"{case.path.name}: {spec['_problem']}")
    try:
        route = config.route(case.route)
    except LookupError as error:
        return RouteCaseResult(case, False, f"the folder names no route: {error}")
    try:
        raw, key = _raw_input(case, route)
    except (OSError, ValueError) as error:
        return RouteCaseResult(case, False, f"input: {error}")
    start = len(runtime.captured)
    try:
        runtime.submit(route.name, raw, idempotency_key=key)
    except InputError as error:
        if "error" in spec:
            missing = [text for text in _texts(spec["error"]) if text not in str(error)]
            return RouteCaseResult(case, not missing, f"refused, but the message lacks {missing!r}:\n{error}"
                                   if missing else "")
        return RouteCaseResult(case, False, f"the input was refused: {error}")
    if "error" in spec:
        return RouteCaseResult(case, False, "was expected to be refused, but was accepted")
    prepared = runtime.recorders[route.name].last
    wanted = sum(len(message.destinations) for message in prepared)
    ids = {message.envelope.id for message in prepared}
    failures = _wait(runtime, start, wanted, ids, timeout)
    ignore = [str(item) for item in spec.get("ignore") or []]
    problems = list(failures)
    if "canonical" in spec:
        actual = [message.envelope.payload for message in prepared]
        expected = spec["canonical"]
        problems += _compare("canonical", expected, actual if isinstance(expected, list) else
                             (actual[0] if len(actual) == 1 else actual), ignore)
    outputs: dict[str, list] = {}
    order = {message.envelope.id: index for index, message in enumerate(prepared)}
    # in the order of the messages the input made (consumers may deliver them in any order)
    for _route, destination, _message_id, body, content_type in sorted(
            runtime.captured[start:], key=lambda captured: order.get(captured[2], len(order))):
        outputs.setdefault(destination, []).append(_as_data(body, content_type))
    expected_outputs = spec.get("destinations") or {}
    for name in dict.fromkeys([*expected_outputs, *outputs]):
        expected = expected_outputs.get(name, [])
        problems += _compare(f"destinations.{name}", expected if isinstance(expected, list) else [expected],
                             outputs.get(name, []), ignore)
    if not problems:
        return RouteCaseResult(case, True)
    shown = "\n".join(f"  - {line}" for line in problems[:MAX_DIFFERENCES])
    more = f"\n  ... and {len(problems) - MAX_DIFFERENCES} more" if len(problems) > MAX_DIFFERENCES else ""
    return RouteCaseResult(case, False, f"differs from {case.path.name}:\n{shown}{more}")


def _raw_input(case: RouteCase, route: Route) -> tuple[RawMessage, str | None]:
    given = case.spec.get("input")
    if not isinstance(given, dict) or ("file" in given) == ("body" in given):
        raise ValueError("give input: with exactly one of file: or body:")
    metadata = {"route": route.name}
    if "file" in given:
        path = (case.path.parent / str(given["file"])).resolve()
        body = path.read_bytes()
        if route.source.adapter == "file":
            metadata["file"] = path.name
    else:
        body = str(given["body"]).encode("utf-8")
    if route.source.system:
        metadata["sender"] = route.source.system
    metadata.update(given.get("metadata") or {})
    source_format = route.source.options.get("format") or "json"
    content_type = given.get("content_type") or _content_type(source_format)
    return RawMessage(body, content_type, metadata), given.get("idempotency_key")


def _content_type(format_name: str) -> str | None:
    try:
        return codecs.content_type(format_name)
    except LookupError:
        return None


def _wait(runtime: CaptureRuntime, start: int, wanted: int, ids: set[str], timeout: float) -> list[str]:
    """Until `wanted` deliveries were captured after `start`; the failures seen meanwhile, if any."""
    deadline = time.monotonic() + timeout
    with runtime.condition:
        while len(runtime.captured) - start < wanted:
            failures = runtime.failures(ids)
            if failures or time.monotonic() > deadline:
                got = len(runtime.captured) - start
                return failures or [f"{got} of {wanted} deliveries within {timeout:g} s"]
            runtime.condition.wait(0.05)
    return []


def _as_data(body: bytes, content_type: str) -> Any:
    format_name = codecs.format_of(content_type)
    try:
        if format_name == "json":
            return jsonfmt.loads(body)
        if format_name == "xml":
            from esb.codecs import xml

            return xml.parse(body)
    except (InputError, ValueError):
        pass
    return body.decode("utf-8", "replace")


def _compare(where: str, expected: Any, actual: Any, ignore: list[str]) -> list[str]:
    """Differences as data: both sides through JSON (numbers as Decimals), ignored keys left out."""
    def normal(value: Any) -> Any:
        return jsonfmt.loads(jsonfmt.dump_bytes(_without(value, ignore, "")))

    return differences_between(normal(expected), normal(actual), where)


def _without(value: Any, ignore: list[str], path: str) -> Any:
    if isinstance(value, dict):
        return {key: _without(item, ignore, f"{path}.{key}" if path else key) for key, item in value.items()
                if key not in ignore and (f"{path}.{key}" if path else key) not in ignore}
    if isinstance(value, list):
        return [_without(item, ignore, path) for item in value]
    return value


def _texts(value: Any) -> list[str]:
    return [str(item) for item in (value if isinstance(value, list) else [value])]
