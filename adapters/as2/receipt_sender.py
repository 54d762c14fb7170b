"""Sending the asynchronous receipts we owe partners: a thread per inbound AS2 route that POSTs each
receipt of the outbox (`receipt_store`) to the partner's URL until it is taken (2xx).

A receipt is never dropped: a failure is written into the trace of the messages it answers
(`receipt_failed`, with the attempt and the error), and it is tried again after BACKOFF, the last
delay repeating for as long as it takes. A bus stopped in between sends it after its restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import requests

from adapters.as2.receipt_store import OwedReceipt, ReceiptStore

log = logging.getLogger("esb.adapters.as2")

BACKOFF = (1.0, 5.0, 30.0, 120.0, 600.0)
"""Seconds before each new attempt to send a receipt; after the last, every 600 s until it is taken."""

LEASE = 120.0
"""Seconds a claimed receipt is held for the node sending it (longer than a POST's timeout)."""

IDLE = 0.5
"""Seconds between two looks at the outbox when nothing woke the sender."""

Trace = Callable[[str, str, str], None]
"""trace(step, message_id, detail): one entry of a message's trace."""


def delay_after(attempts: int) -> float:
    """Seconds to wait after `attempts` failed attempts (1, 2, ...)."""
    return BACKOFF[min(attempts, len(BACKOFF)) - 1]


class ReceiptSender:
    """Sends `route`'s owed receipts from `store`; `wake()` after adding one, `stop()` at shutdown."""

    def __init__(self, store: ReceiptStore, route: str, *, timeout: float, trace: Trace | None):
        self.store = store
        self.route = route
        self.timeout = timeout
        self._trace = trace or (lambda step, message_id, detail: None)
        self._session = requests.Session()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"esb-as2-receipts-{route}", daemon=True)

    def start(self) -> ReceiptSender:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=self.timeout + 5)
        self._session.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                for owed in self.store.claim_due(self.route, LEASE):
                    if self._stopping.is_set():
                        break
                    self._send(owed)
            except Exception as error:  # a database that is away: the receipts wait there
                log.warning("AS2 receipts of route %s: cannot read the outbox: %s", self.route, error,
                            extra={"route": self.route})
            self._wake.wait(IDLE)
            self._wake.clear()

    def _send(self, owed: OwedReceipt) -> None:
        attempt = owed.attempts + 1
        try:
            response = self._session.post(owed.url, data=owed.body, headers=owed.headers,
                                          timeout=self.timeout)
            error = None if 200 <= response.status_code < 300 else \
                f"{owed.url} answered {response.status_code}: {response.text[:200]}"
        except requests.RequestException as failure:
            error = f"{owed.url}: {type(failure).__name__}: {failure}"
        if error is None:
            self.store.sent(owed.id)
            for message_id in owed.message_ids:
                self._trace("receipt_sent", message_id, f"asynchronous receipt "
                            f"{owed.headers.get('Message-ID')} taken by {owed.url}, attempt {attempt}")
            return
        delay = delay_after(attempt)
        self.store.failed(owed.id, attempts=attempt, next_at=time.time() + delay, error=error)
        log.warning("AS2 receipt to %s not taken (attempt %d), next try in %g s: %s", owed.url, attempt,
                    delay, error, extra={"route": self.route})
        for message_id in owed.message_ids:
            self._trace("receipt_failed", message_id, f"attempt {attempt}: {error}; next try in {delay:g} s")
