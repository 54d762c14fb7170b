"""The `esb` command line. The only module (with the monitoring app) that knows about terminals.
It builds the HTTP app of `esb run` from the runtime (`esb.monitoring.create_app`); `esb dlq`
(esb.cli_dlq) acts through `esb.admin`, as the admin API does.

Each sub-command is a `_cmd_<name>(args) -> int` function; exit codes: 0 ok, 1 problems found
or the command failed with a clear message, 2 usage errors (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "routes.yaml"


def _config_path(args: argparse.Namespace) -> str:
    return args.config or os.environ.get("ESB_CONFIG") or DEFAULT_CONFIG


def _broker_and_data_dir(args: argparse.Namespace, config) -> tuple[str | None, Path]:
    """The broker URL (None: the embedded transport) and the data directory, flags first, then
    the environment, then the routes file's settings."""
    settings, env = config.settings, os.environ
    url = getattr(args, "broker", None) or env.get("ESB_BROKER_URL") or settings.get("broker_url") or None
    return url, Path(env.get("ESB_DATA_DIR") or settings.get("data_dir") or ".esb")


class CommandFailed(Exception):
    """A command cannot go on; its text is the one line `main` prints before exit 1."""


def first_set(*values: Any) -> Any:
    """The first value that is set: `--port 0` (any free port) is a choice, not an absence."""
    return next((value for value in values if value is not None and value != ""), None)


def _load_config(args: argparse.Namespace):
    """The checked routes file of `-c`; on problems, prints each one and raises CommandFailed."""
    from esb.config import load_config
    from esb.errors import ConfigError

    path = _config_path(args)
    try:
        return load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        count = len(error.problems)
        raise CommandFailed(f"{count} problem{'s' if count != 1 else ''} in {path}") from None
    except FileNotFoundError:
        raise CommandFailed(f"routes file not found: {path} (give one with -c, or set ESB_CONFIG)") from None


def _fail(message: str) -> int:
    print(f"esb: {message}", file=sys.stderr)
    return 1


def _cmd_check(args: argparse.Namespace) -> int:
    from esb.config import load_config
    from esb.errors import ConfigError

    path = _config_path(args)
    if not os.path.isfile(path):
        return _fail(f"routes file not found: {path} (give one with -c, or set ESB_CONFIG)")
    try:
        config = load_config(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem)
        count = len(error.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found in {path}")
        return 1
    if args.connect:
        from esb.config.connect import connect_problems

        problems = connect_problems(config)
        for problem in problems:
            print(problem)
        if problems:
            count = len(problems)
            print(f"{count} problem{'s' if count != 1 else ''} found on the systems of {path}")
            return 1
    destinations = sum(len(route.destinations) for route in config.routes)
    print(f"{path}: {len(config.routes)} route{'s' if len(config.routes) != 1 else ''}, "
          f"{destinations} destination{'s' if destinations != 1 else ''}, ok"
          + (" (systems connected)" if args.connect else ""))
    return 0


def _cmd_map(args: argparse.Namespace) -> int:
    """Run a mapping file on an input file (``-``: stdin) and print what it makes.

    An "in" mapping prints each canonical document as indented JSON, one after another (a JSON
    stream, as jq reads and writes it: `esb map m.yaml in.csv | jq -s .` gives an array); an
    "out" mapping prints what the sink would send (JSON indented; XML, CSV, fixed-width as bytes).
    ``--validate TYPE`` checks the canonical side: each result of an "in" mapping, the input of an
    "out" mapping. Exit 1 with one message on a bad mapping file, bad input or invalid result.
    """
    import contextlib

    from esb import jsonfmt
    from esb.errors import ConfigError, InputError
    from esb.mapping import SourceInfo, load_mapping

    try:
        mapping = load_mapping(args.mapping, timezone=args.timezone)
    except ConfigError as error:
        return _fail(f"{args.mapping} cannot be used:\n" + "\n".join(f"  {p}" for p in error.problems))
    registry = None
    if args.validate:
        from esb.schemas import SchemaRegistry

        try:
            registry = SchemaRegistry()
            registry.versions(args.validate)  # an unknown type fails here, before any input is read
        except ConfigError as error:
            return _fail("the schemas cannot be used:\n" + "\n".join(f"  {p}" for p in error.problems))
        except KeyError as error:
            return _fail(f"--validate: {error}")
    done = 0
    try:
        with contextlib.ExitStack() as stack:
            raw = sys.stdin.buffer if args.input == "-" else stack.enter_context(open(args.input, "rb"))
            source = SourceInfo(file=None if args.input == "-" else os.path.basename(args.input))
            for document in mapping.decode(raw, source):
                canonical = document if mapping.direction == "out" else None
                result = mapping.apply(document, source)
                canonical = result if canonical is None else canonical
                if registry is not None:
                    registry.validate(args.validate, canonical)
                if mapping.direction == "in" or mapping.output_format == "json":
                    mapping.encode(result)  # fails here as the sink would, not later
                    print(jsonfmt.pretty(result), flush=True)
                else:
                    sys.stdout.buffer.write(mapping.encode(result))
                    sys.stdout.buffer.flush()
                done += 1
    except OSError as error:
        if isinstance(error, BrokenPipeError):  # `esb map ... | head`: the reader has had enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        return _fail(f"cannot read {args.input}: {error.strerror or error}")
    except InputError as error:
        where = f"{args.input}, document {done + 1}" if done else args.input
        return _fail(f"{where}: {error}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from esb.config import build_routes_schema

    # sorted keys and a final newline: schemas/routes.schema.json is this output, byte for byte
    print(json.dumps(build_routes_schema(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    """Everything in one process (inbound endpoints, pollers, consumers, monitoring); with
    `--workers N`, N-1 more that serve the same port and consume the same queues: see esb.cli_run."""
    from esb.cli_run import run_bus

    config = _load_config(args)
    broker_url, data_dir = _broker_and_data_dir(args, config)
    return run_bus(args, _config_path(args), config, broker_url=broker_url, data_dir=data_dir)


def _cmd_test(args: argparse.Namespace) -> int:
    """Run every mapping's test cases, and without a path every route's too (esb.cli_test)."""
    from esb.cli_test import run_tests

    return run_tests(args.path, _config_path(args), lambda: _load_config(args))


def _cmd_topology(args: argparse.Namespace) -> int:
    """`show` prints the queues and exchange the routes need (no broker); `declare` creates them."""
    from esb.transport import create_transport
    from esb.transport.errors import TransportError
    from esb.transport.rabbitmq_connection import redacted
    from esb.transport.topology import Topology

    config = _load_config(args)
    try:
        topology = Topology.from_config(config)
    except TransportError as error:
        return _fail(f"{_config_path(args)}: {error}")
    if args.action == "show":
        print(topology.describe())
        return 0
    url, data_dir = _broker_and_data_dir(args, config)
    try:
        transport = create_transport(url, config, data_dir=data_dir)
        transport.declare()
    except TransportError as error:
        return _fail(str(error))
    where = redacted(url) if url else f"the embedded transport {transport.path}"
    print(f"declared exchange {topology.exchange} and {len(topology.queues)} queues on {where}")
    return 0


def _cmd_dlq(args: argparse.Namespace) -> int:
    """Dead letters of a route (all its queues, or one destination's): see esb.cli_dlq."""
    from esb.cli_dlq import run_dlq

    config = _load_config(args)
    broker_url, data_dir = _broker_and_data_dir(args, config)
    return run_dlq(args, config, broker_url=broker_url, data_dir=data_dir)


def _cmd_demo(args: argparse.Namespace) -> int:
    """A simulated ERP and WMS wired through the shipped routes (see esb.demo); `--once` plays the
    sample traffic, prints the summary and exits 0 when every flow delivered, 1 otherwise."""
    import signal
    import threading

    from esb import logs
    from esb.errors import ConfigError
    from esb.transport.errors import TransportError

    logs.configure(os.environ.get("ESB_LOG_LEVEL", "ERROR"))
    from esb import demo

    routes = Path(args.config) if args.config else demo.SHIPPED_ROUTES
    broker_url = args.broker or os.environ.get("ESB_BROKER_URL") or None
    port = args.port
    if port is None:
        port = 0 if args.once else int(os.environ.get("ESB_HTTP_PORT") or 8080)
        if port and not demo.port_free("127.0.0.1", port):
            port = 0
    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    try:
        run = demo.Demo(broker_url=broker_url, port=port, routes_path=routes,
                        root=routes.resolve().parent).start()
    except ConfigError as error:
        return _fail(f"{routes}: " + "; ".join(str(p) for p in error.problems))
    except (TransportError, OSError) as error:
        return _fail(f"the demo could not start: {error}")
    try:
        print(f"esb demo: bus on {run.bus_url}, simulated ERP {run.erp.url}, simulated WMS {run.wms.url}",
              flush=True)
        run.play()
        results = run.wait(stop)
        print(demo.summary(run, results), flush=True)
        ok = all(result.ok for result in results)
        if not args.once:
            print("\n" + demo.directions(run), flush=True)
            stop.wait()
    finally:
        run.stop()
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esb", description="WMS <-> ERP integration bus")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, handler) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", help=f"routes file (default: $ESB_CONFIG or ./{DEFAULT_CONFIG})")
        sub.set_defaults(handler=handler)
        return sub

    checker = command("check", "check routes.yaml, its mappings, schemas and adapters; exit 1 listing every "
                      "problem", _cmd_check)
    checker.add_argument("--connect", action="store_true",
                         help="also connect to the systems and check what they must have (the tables and "
                              "columns of table routes; the host key and login of SFTP servers)")

    mapper = command("map", "run a mapping file on an input file and print the result as JSON "
                     "(several documents are printed one after another, a JSON stream: | jq -s . makes "
                     "an array)", _cmd_map)
    mapper.add_argument("mapping", help="mapping file (YAML)")
    mapper.add_argument("input", help="input file (as the mapping's input format says), or - for stdin")
    mapper.add_argument("--validate", metavar="TYPE", help="validate each result against this canonical type")
    mapper.add_argument("--timezone", metavar="ZONE",
                        help="IANA zone of local times for a mapping without a timezone of its own (default "
                             "UTC; the bus uses settings.timezone)")

    runner = command("run", "run the bus: inbound endpoints, pollers, consumers and monitoring", _cmd_run)
    runner.add_argument("--broker", help="broker URL (default: $ESB_BROKER_URL, then settings.broker_url)")
    runner.add_argument("--host", help="HTTP host (default: $ESB_HTTP_HOST, settings.http_host, 127.0.0.1)")
    runner.add_argument("--port", type=int,
                        help="HTTP port (default: $ESB_HTTP_PORT, settings.http_port, 8080)")
    runner.add_argument("--workers", type=int,
                        help="processes in all (default: $ESB_WORKERS, settings.workers, 1); each serves the "
                             "HTTP port and consumes, the first alone polls")
    runner.add_argument("--watch", action="store_true",
                        help="reload the routes file and its mappings when they change (as SIGHUP does), "
                             "once esb check passes on them")
    runner.add_argument("--role", choices=["all", "worker"], default="all", help=argparse.SUPPRESS)

    tester = command("test", "run the test cases next to every mapping, then the route cases of "
                     "routes.cases/ (in-process, no broker or network needed)", _cmd_test)
    tester.add_argument("path", nargs="?",
                        help="only the mapping cases of this folder (default: mappings/ beside the routes "
                             "file, then the route cases)")

    command("schema", "print the JSON Schema of routes.yaml, built from the registered adapters", _cmd_schema)

    topology = command("topology", "show or declare the RabbitMQ queues and exchanges of the routes",
                       _cmd_topology)
    topology.add_argument("action", choices=["show", "declare"])
    topology.add_argument("--broker", help="broker URL (default: $ESB_BROKER_URL)")

    from esb.cli_dlq import add_dlq_arguments

    add_dlq_arguments(command("dlq", "list, show, replay or purge dead-lettered messages", _cmd_dlq))

    from esb.cli_as2 import add_as2_arguments, run_as2

    add_as2_arguments(command("as2", "AS2 trading partners: keys NAME makes a self-signed certificate and "
                              "key for testing", run_as2))

    demo = command("demo", "a simulated ERP and WMS wired through the bus (the shipped routes and their "
                   "sample traffic); --once prints a summary and exits 0 when every flow delivered",
                   _cmd_demo)
    demo.add_argument("--once", action="store_true", help="play the sample traffic, print the summary, exit")
    demo.add_argument("--port", type=int, help="the bus's HTTP port (default: a free one with --once, "
                      "else $ESB_HTTP_PORT or 8080 when free)")
    demo.add_argument("--broker",
                      help="a RabbitMQ URL (default: $ESB_BROKER_URL, else the embedded transport)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CommandFailed as failure:
        return _fail(str(failure))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
