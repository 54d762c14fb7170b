"""The retry policy of a route: how many attempts, and how long each retry waits.

The attempt count travels with the message (an AMQP header), never in a worker's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from esb.durations import parse_duration

DEFAULT_ATTEMPTS = 5
"""Deliveries tried in all (the first one included) before a message is dead-lettered."""

DEFAULT_BACKOFF = (1.0, 5.0, 30.0, 120.0)
"""Seconds a message waits before retry 1, 2, 3, ...; the last delay repeats when attempts outnumber it."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` deliveries in all; retry n waits `backoff[n-1]` seconds (the last one repeats)."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff: tuple[float, ...] = DEFAULT_BACKOFF

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry attempts must be 1 or more")
        if not self.backoff or any(delay < 0 for delay in self.backoff):
            raise ValueError("retry backoff needs one or more delays, none negative")

    @classmethod
    def from_config(cls, block: dict | None) -> RetryPolicy:
        """From a route's `retry: {attempts: N, backoff: [1s, 5s, ...]}`; missing keys take the defaults."""
        block = block or {}
        backoff = tuple(parse_duration(d) for d in block.get("backoff", DEFAULT_BACKOFF))
        return cls(attempts=int(block.get("attempts", DEFAULT_ATTEMPTS)), backoff=backoff)

    @property
    def retries(self) -> int:
        """How many times a message may go back to its queue after the first delivery."""
        return self.attempts - 1

    def delay(self, retry_number: int) -> float:
        """Seconds before retry `retry_number` (1-based)."""
        return self.backoff[min(retry_number, len(self.backoff)) - 1]

    def distinct_delays(self) -> tuple[float, ...]:
        """The delays actually used for this policy's retries, in order, without repeats.

        One retry queue is declared per distinct delay (a per-queue TTL keeps FIFO expiry correct).
        """
        delays: list[float] = []
        for n in range(1, self.retries + 1):
            if self.delay(n) not in delays:
                delays.append(self.delay(n))
        return tuple(delays)
