"""Checks the runtime makes at start and reports as warnings: what would otherwise fail quietly
later (every post refused for want of a key, messages left behind in another transport)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from esb.credentials import Credentials
from esb.routes import Config
from esb.transport.embedded import DEFAULT_PATH

EMBEDDED_FILE_NAME = DEFAULT_PATH.name
"""The embedded transport's file in a data directory."""


def routes_without_senders(config: Config, pushed_routes: Iterable[str],
                           credentials: Credentials) -> str | None:
    """The warning for push endpoints that need a sender key no configured key has (every post
    would be refused with 401), with the `ESB_API_KEYS` line to set; None when there are none."""
    names = [name for name in pushed_routes
             if config.route(name).source.options.get("auth", "token") != "none"
             and not credentials.anyone_may_send(name)]
    if not names:
        return None
    example = ";".join(f"{config.route(name).source.system or name}:sender={name}:<secret>" for name in names)
    return (f"routes {', '.join(names)} accept posts only with an API key with the role sender=<route>, "
            f"and no configured key has it, so every post is refused with 401; set for example "
            f"ESB_API_KEYS='{example}' (or a file named by ESB_CREDENTIALS_FILE)")


def embedded_leftovers(data_dir: Path, *, in_use: Path | None) -> str | None:
    """The warning for an embedded transport file in `data_dir` that still holds messages while
    the bus runs on another transport (`in_use` is the embedded file the bus uses, if any): they
    are delivered by nobody until it runs on that file again; None when there is nothing left."""
    path = Path(data_dir) / EMBEDDED_FILE_NAME
    if not path.is_file() or (in_use is not None and Path(in_use).resolve() == path.resolve()):
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute("SELECT m.queue, q.kind, COUNT(*) FROM messages m LEFT JOIN queues q"
                              " ON q.name = m.queue GROUP BY m.queue, q.kind").fetchall()
    except sqlite3.Error as error:
        return f"could not read the embedded transport file {path} to see whether it holds messages: {error}"
    undelivered = sum(count for _queue, kind, count in rows if kind == "work")
    dead = sum(count for _queue, kind, count in rows if kind != "work")
    if not undelivered and not dead:
        return None
    queues = ", ".join(sorted(queue for queue, kind, _count in rows if kind == "work"))
    return (f"the embedded transport file {path} still holds {undelivered} undelivered message(s)"
            f"{f' (queues {queues})' if queues else ''} and {dead} dead letter(s), which this bus "
            f"does not deliver: it runs on another transport. To drain it, run the bus once on the embedded "
            f"transport (ESB_BROKER_URL= esb run, same routes and data dir) until `esb dlq list` and the "
            f"queue depths show nothing left, then switch back; or move the file away if they are not needed")
