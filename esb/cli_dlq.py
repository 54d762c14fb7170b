"""`esb dlq list|show|replay|purge ROUTE [DESTINATION] [--id ID|--all]`: dead letters from the
command line, through `esb.admin` as the admin API does, so that a replay or purge is journaled
and audited the same way (by `cli:<os user>`). Failures raise `CommandFailed` (exit 1)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from esb import jsonfmt
from esb.admin import Actor, AdminService, find_route
from esb.audit import AUDIT_FILE_NAME, AuditLog
from esb.cli import CommandFailed
from esb.errors import NotFound
from esb.journal import JOURNAL_FILE_NAME, Journal
from esb.routes import Config
from esb.transport import create_transport
from esb.transport.contract import DeadLetter
from esb.transport.errors import TransportError


def add_dlq_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "show", "replay", "purge"])
    parser.add_argument("route")
    parser.add_argument("destination", nargs="?")
    parser.add_argument("--id", dest="message_id", help="only the message with this id")
    parser.add_argument("--all", action="store_true", help="every message (replay, purge)")
    parser.add_argument("--broker", help="broker URL (default: $ESB_BROKER_URL)")


def run_dlq(args: argparse.Namespace, config: Config, *, broker_url: str | None, data_dir: Path) -> int:
    """Run `esb dlq` on the bus of `config` (the transport of `broker_url`, or the embedded one in
    `data_dir`; the journal and audit log of that data directory or `settings.journal`)."""
    if args.action in ("replay", "purge") and not (args.message_id or args.all):
        raise CommandFailed(f"dlq {args.action}: say which messages, --id ID or --all")
    ids = [args.message_id] if args.message_id else None
    where = f"{args.route}/{args.destination}" if args.destination else args.route
    journal = runtime = None
    try:
        find_route(config, args.route)  # a misspelt route touches nothing
        audit = AuditLog(data_dir / AUDIT_FILE_NAME)
        if args.action == "replay":  # raw inbound dead letters go through the route's inbound stage
            runtime = inbound_runtime(config, broker_url=broker_url, data_dir=data_dir)
            admin = AdminService(transport=runtime.transport, journal=runtime.journal, config=config,
                                 audit=audit, resubmit=runtime.resubmit)
        else:
            transport = create_transport(broker_url, config, data_dir=data_dir)
            journal = Journal(config.settings.get("journal") or data_dir / JOURNAL_FILE_NAME)
            admin = AdminService(transport=transport, journal=journal, config=config, audit=audit)
        if args.action in ("list", "show"):
            letters = [d for d in admin.dead_letters(args.route, args.destination)
                       if ids is None or d.message_id in ids]
            if ids and not letters:
                raise CommandFailed(f"no dead letter with id {args.message_id} in {where}")
            if args.action == "show":
                shown = [d.as_dict() for d in letters]
                print(jsonfmt.pretty(shown[0] if ids else shown))
                return 0
            for letter in letters:
                print(dead_letter_line(letter))
            print(f"{len(letters)} dead letter(s) in {where}", file=sys.stderr)
            return 0
        change = admin.replay if args.action == "replay" else admin.purge
        done = change(args.route, args.destination, ids, actor=Actor.command_line())
    except (NotFound, TransportError) as error:
        raise CommandFailed(str(error)) from None
    finally:
        if journal is not None:
            journal.close()  # writes what was journaled before the command exits
        if runtime is not None:
            runtime.stop()
    if done.missing:
        raise CommandFailed(f"no dead letter with id {args.message_id} in {where}")
    print(f"{'replayed' if args.action == 'replay' else 'purged'} {done.count} dead letter(s) of {where}")
    for message_id, why in done.not_replayed.items():
        print(f"not replayed {message_id}: {why}", file=sys.stderr)
    if done.reason and not done.not_replayed:
        print(done.reason, file=sys.stderr)
    return 1 if done.not_replayed else 0


def inbound_runtime(config: Config, *, broker_url: str | None, data_dir: Path):
    """A started runtime with no sources, consumers or port: its `submit` replays raw input through
    the route's inbound stage (decode, map, validate, publish), with the same journal and keys."""
    from esb.runtime import Runtime, RuntimeOptions

    options = RuntimeOptions(broker_url=broker_url, data_dir=data_dir, http=False, sources=False,
                             consumers=False, journal=config.settings.get("journal"))
    return Runtime(config, options).start()


def dead_letter_line(letter: DeadLetter) -> str:
    """One dead letter in one line, as `esb dlq list` prints it."""
    s = letter.summary()
    return (f"{s['id']}  {s['destination'] or '(inbound)'}  attempts={s['attempts']}  "
            f"{s['reason'] or '-'}  {s['last_failed_at'] or '-'}  {(s['last_error'] or '')[:100]}")
