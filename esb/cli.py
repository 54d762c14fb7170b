"""The `esb` command line. The only module (with the monitoring app) that knows about terminals.

Each sub-command is a `_cmd_<name>(args) -> int` function; exit codes: 0 ok, 1 problems found
or the command failed with a clear message, 2 usage errors (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

DEFAULT_CONFIG = "routes.yaml"


def _config_path(args: argparse.Namespace) -> str:
    return args.config or os.environ.get("ESB_CONFIG") or DEFAULT_CONFIG


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
    destinations = sum(len(route.destinations) for route in config.routes)
    print(f"{path}: {len(config.routes)} route{'s' if len(config.routes) != 1 else ''}, "
          f"{destinations} destination{'s' if destinations != 1 else ''}, ok")
    return 0


def _cmd_map(args: argparse.Namespace) -> int:
    raise NotImplementedError("esb map: foundation issue")


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from esb.config import build_routes_schema

    # sorted keys and a final newline: schemas/routes.schema.json is this output, byte for byte
    print(json.dumps(build_routes_schema(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def _cmd_topology(args: argparse.Namespace) -> int:
    raise NotImplementedError("esb topology: transport issue")


def _cmd_dlq(args: argparse.Namespace) -> int:
    raise NotImplementedError("esb dlq: transport issue")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esb", description="WMS <-> ERP integration bus")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, handler) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("-c", "--config", help=f"routes file (default: $ESB_CONFIG or ./{DEFAULT_CONFIG})")
        sub.set_defaults(handler=handler)
        return sub

    command("check", "check routes.yaml, its mappings, schemas and adapters; exit 1 listing every problem",
            _cmd_check)

    mapper = command("map", "run a mapping file on an input file and print the result as JSON", _cmd_map)
    mapper.add_argument("mapping", help="mapping file (YAML)")
    mapper.add_argument("input", help="input file (as the mapping's input format says), or - for stdin")
    mapper.add_argument("--validate", metavar="TYPE", help="validate each result against this canonical type")

    command("schema", "print the JSON Schema of routes.yaml, built from the registered adapters", _cmd_schema)

    topology = command("topology", "show or declare the RabbitMQ queues and exchanges of the routes",
                       _cmd_topology)
    topology.add_argument("action", choices=["show", "declare"])
    topology.add_argument("--broker", help="broker URL (default: $ESB_BROKER_URL)")

    dlq = command("dlq", "list, show, replay or purge dead-lettered messages", _cmd_dlq)
    dlq.add_argument("action", choices=["list", "show", "replay", "purge"])
    dlq.add_argument("route")
    dlq.add_argument("destination", nargs="?")
    dlq.add_argument("--id", dest="message_id", help="only the message with this id")
    dlq.add_argument("--all", action="store_true", help="every message (replay, purge)")
    dlq.add_argument("--broker", help="broker URL (default: $ESB_BROKER_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
