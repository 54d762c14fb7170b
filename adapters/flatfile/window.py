"""A window of submits in flight: the file source hands each part to `submit` without waiting for
the broker's confirm of the one before, and takes the answers back in file order.

With the runtime's `submit_async` (`esb.inbound.Storing`), each part is decoded, mapped, claimed and
published in the caller's thread and its confirm awaited later: no thread waits for it. Without it
(a source context that gives only `submit`, which blocks until the broker confirmed), the parts in
flight each wait on a thread of a small pool. At most `limit` are outstanding, which bounds memory
(a part's body is held until it is answered) whatever the size of the file. Answers are handed
back strictly in submission order: a part confirmed before an earlier one waits in the window
until that one is answered, so whoever advances a saved offset from them never passes a gap.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from esb.plugins import Accepted, RawMessage

DEFAULT_IN_FLIGHT = 64
"""Parts of a file submitted and not yet answered (per: record or group); 1 submits one at a time."""

MAX_IN_FLIGHT = 512
"""The largest `in_flight` accepted (with only a blocking `submit`, one thread waits on each part)."""


@dataclass(slots=True)
class Part:
    """One record or group of a file, submitted under `key`; `end_offset` and `last_line` are where
    the saved progress goes once it (and every part before it) was answered."""

    raw: RawMessage
    key: str
    span: tuple[int, int]
    end_offset: int
    last_line: int
    future: concurrent.futures.Future | None = None  # set by SubmitWindow.put: submit's answer,
    storing: Any = None  # or, with submit_async, the published part whose confirm is awaited

    def done(self) -> bool:
        return self.storing.done() if self.storing is not None else self.future.done()

    def outcome(self) -> Accepted | BaseException:
        """What `submit` answered: `Accepted`, or what it raised (waits for it)."""
        try:
            return self.storing.wait() if self.storing is not None else self.future.result()
        except BaseException as error:  # noqa: BLE001 - handed to the caller, which decides
            return error


def _at_once(call: Callable[..., Any], part: Part) -> concurrent.futures.Future:
    """`call(part.raw, idempotency_key=part.key)` in this thread, as a future already answered."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    try:
        future.set_result(call(part.raw, idempotency_key=part.key))
    except BaseException as error:  # noqa: BLE001 - kept as its answer, like a pool's future
        future.set_exception(error)
    return future


class SubmitWindow:
    """Up to `limit` parts in flight, answered in order; a context manager (the pool's lifetime).

    `limit` 1 calls `submit` in the caller's thread, one part at a time, with no pool."""

    def __init__(self, submit: Callable[..., Accepted], limit: int = DEFAULT_IN_FLIGHT,
                 submit_async: Callable[..., Any] | None = None):
        self._submit = submit
        self._submit_async = submit_async
        self.limit = max(1, int(limit))
        self._pending: deque[Part] = deque()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def __enter__(self) -> SubmitWindow:
        if self.limit > 1 and self._submit_async is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.limit, thread_name_prefix="esb-file-part")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, part: Part) -> None:
        """Submit `part`; its answer comes back from `answered()` or `drain()`, in order."""
        if self._pool is not None:
            part.future = self._pool.submit(self._submit, part.raw, idempotency_key=part.key)
        elif self._submit_async is not None and self.limit > 1:
            published = _at_once(self._submit_async, part)  # refused at once, or on its way
            if published.exception() is None:
                part.storing = published.result()
            else:
                part.future = published
        else:
            part.future = _at_once(self._submit, part)
        self._pending.append(part)

    def answered(self) -> Iterator[Part]:
        """The oldest parts whose answer is in, in order; when the window is full, waits for the
        oldest first, so that there is room for the next part."""
        while self._pending and (len(self._pending) >= self.limit or self._pending[0].done()):
            yield self._pending.popleft()  # its outcome() waits for it

    def drain(self) -> Iterator[Part]:
        """Every part still in flight, in order, each once answered."""
        while self._pending:
            yield self._pending.popleft()

    def close(self) -> None:
        """Forget what was not answered yet: parts not started are cancelled, those running are
        waited for (their messages may be stored: their keys de-duplicate them when the file is
        resumed). Safe to call twice."""
        for part in self._pending:  # published: settle their keys (confirmed or disowned), or a
            if part.storing is not None:  # resume would wait for keys this process still holds
                part.outcome()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
