"""The headers a failed, dead-lettered or replayed message carries, and the pure functions
that write them, so that both transports record failures alike.

AMQP headers on RabbitMQ; the embedded transport stores the same names.

| header | value |
| --- | --- |
| `esb-route`, `esb-destination` | where the message failed |
| `esb-attempts` | deliveries that failed so far (absent = none) |
| `esb-first-error-class`, `esb-first-error`, `esb-first-failed-at` | the first failure |
| `esb-last-error-class`, `esb-last-error`, `esb-last-failed-at` | the latest failure |
| `esb-dead-letter-reason` | `permanent`, `attempts-exhausted`, `undecodable` or `input` |
| `esb-dead-lettered-at` | when it reached the dead-letter queue |
| `esb-replays`, `esb-replayed-at` | how often and when last it was replayed |

Error texts are cut to `MAX_ERROR_TEXT` characters (AMQP frames are bounded). Times are
RFC 3339 UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from esb.envelope import now_rfc3339

MAX_ERROR_TEXT = 2000
"""Characters of an error's text kept in a header."""

H_ROUTE = "esb-route"
H_DESTINATION = "esb-destination"
H_ATTEMPTS = "esb-attempts"
H_FIRST_ERROR_CLASS = "esb-first-error-class"
H_FIRST_ERROR = "esb-first-error"
H_FIRST_FAILED_AT = "esb-first-failed-at"
H_LAST_ERROR_CLASS = "esb-last-error-class"
H_LAST_ERROR = "esb-last-error"
H_LAST_FAILED_AT = "esb-last-failed-at"
H_DEAD_LETTER_REASON = "esb-dead-letter-reason"
H_DEAD_LETTERED_AT = "esb-dead-lettered-at"
H_REPLAYS = "esb-replays"
H_REPLAYED_AT = "esb-replayed-at"

FAILURE_HEADERS = (H_ATTEMPTS, H_FIRST_ERROR_CLASS, H_FIRST_ERROR, H_FIRST_FAILED_AT, H_LAST_ERROR_CLASS,
                   H_LAST_ERROR, H_LAST_FAILED_AT, H_DEAD_LETTER_REASON, H_DEAD_LETTERED_AT)
"""Headers a replay removes: the message starts afresh."""

BROKER_HEADER_PREFIXES = ("x-death", "x-first-death", "x-last-death", "x-delivery-count")
"""Headers RabbitMQ adds when it dead-letters or redelivers; dropped when the bus re-publishes."""

REASON_PERMANENT = "permanent"
REASON_EXHAUSTED = "attempts-exhausted"
REASON_UNDECODABLE = "undecodable"
REASON_INPUT = "input"


def error_class(error: BaseException) -> str:
    """`ValueError`, `esb.errors.Permanent`, `adapters.rest.HttpError`: builtins stay short."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def error_text(error: BaseException) -> str:
    text = str(error) or error_class(error)
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def header_text(headers: Mapping[str, Any], name: str) -> str | None:
    """A header as text (AMQP clients may hand long strings back as bytes)."""
    value = headers.get(name)
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value


def attempts_so_far(headers: Mapping[str, Any] | None) -> int:
    """Failed deliveries recorded on the message (0 for a fresh one)."""
    if not headers:
        return 0
    try:
        return int(headers.get(H_ATTEMPTS) or 0)
    except (TypeError, ValueError):
        return 0


def without_broker_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (headers or {}).items() if not k.startswith(BROKER_HEADER_PREFIXES)}


def failure_headers(headers: Mapping[str, Any] | None, error: BaseException, *, route: str,
                    destination: str | None, attempts: int, now: str | None = None) -> dict[str, Any]:
    """The message's headers after a failed delivery: attempt count, first and last error, times."""
    now = now or now_rfc3339()
    updated = without_broker_headers(headers)
    updated[H_ROUTE] = route
    if destination is not None:
        updated[H_DESTINATION] = destination
    updated[H_ATTEMPTS] = attempts
    kind, text = error_class(error), error_text(error)
    if H_FIRST_ERROR_CLASS not in updated:
        updated[H_FIRST_ERROR_CLASS] = kind
        updated[H_FIRST_ERROR] = text
        updated[H_FIRST_FAILED_AT] = now
    updated[H_LAST_ERROR_CLASS] = kind
    updated[H_LAST_ERROR] = text
    updated[H_LAST_FAILED_AT] = now
    return updated


def dead_letter_headers(headers: Mapping[str, Any] | None, error: BaseException, *, route: str,
                        destination: str | None, attempts: int, reason: str,
                        now: str | None = None) -> dict[str, Any]:
    """`failure_headers` plus why and when the message was dead-lettered."""
    now = now or now_rfc3339()
    updated = failure_headers(headers, error, route=route, destination=destination, attempts=attempts,
                              now=now)
    updated[H_DEAD_LETTER_REASON] = reason
    updated[H_DEAD_LETTERED_AT] = now
    return updated


def replay_headers(headers: Mapping[str, Any] | None, now: str | None = None) -> dict[str, Any]:
    """A dead letter's headers for its replay: a fresh attempt count, no errors, one more replay."""
    updated = {k: v for k, v in without_broker_headers(headers).items() if k not in FAILURE_HEADERS}
    try:
        replays = int((headers or {}).get(H_REPLAYS) or 0)
    except (TypeError, ValueError):
        replays = 0
    updated[H_REPLAYS] = replays + 1
    updated[H_REPLAYED_AT] = now or now_rfc3339()
    return updated
