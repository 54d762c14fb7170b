"""Transports, looked up by the scheme of the broker URL and loaded lazily.

The contract every transport keeps is `esb.transport.contract`; its errors are in
`esb.transport.errors` and its failure headers in `esb.transport.headers`. The implementations:
`esb.transport.rabbitmq` (production) and `esb.transport.embedded` (one SQLite file, no broker).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from esb.problems import did_you_mean
from esb.transport.contract import Transport
from esb.transport.errors import TransportError

SCHEMES = ("amqp", "amqps", "embedded")
"""The broker URL schemes a transport is known by (RabbitMQ, RabbitMQ over TLS, the SQLite file)."""


def create_transport(url: str | None, routes: Iterable[Any], *, path: Any = None, data_dir: Any = None,
                     **options: Any) -> Transport:
    """The transport for a broker URL: `amqp://` or `amqps://` means RabbitMQ (loaded lazily); none,
    `""` or `embedded://<path>` means the embedded transport (one SQLite file).

    The embedded transport's file is the URL's path, else `path`, else `<data_dir>/transport.sqlite`,
    else `.esb/transport.sqlite`. `path` and `data_dir` are ignored for RabbitMQ.
    """
    scheme = url.split(":", 1)[0] if url else ""
    if scheme in ("amqp", "amqps"):
        from esb.transport.rabbitmq import RabbitMQTransport

        return RabbitMQTransport(url, routes, **options)
    if not url or scheme == "embedded":
        from pathlib import Path

        from esb.transport.embedded import DEFAULT_PATH, EmbeddedTransport

        if url and url.startswith("embedded://") and url[len("embedded://"):]:
            path = url[len("embedded://"):]
        elif path is None:
            path = Path(data_dir) / DEFAULT_PATH.name if data_dir else DEFAULT_PATH
        return EmbeddedTransport(path, routes, **options)
    raise TransportError(f'unknown broker URL scheme "{scheme}" in {url!r}{did_you_mean(scheme, SCHEMES)} '
                         "(use amqp://, amqps:// or embedded://<path>)")


def transport_scope(transport: Transport) -> str:
    """What message ids refer to: the embedded transport's file or the broker (no credentials)."""
    path = getattr(transport, "path", None)
    if path is not None:
        return f"embedded:{Path(path).resolve()}"
    url = urlsplit(getattr(transport, "url", "") or "")
    return f"{url.scheme}://{url.hostname}:{url.port or 5672}{url.path or '/'}"
