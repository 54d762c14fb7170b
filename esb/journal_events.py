"""The outbound outcomes a transport reports (delivered, retried, dead-lettered), written into the
trace journal: the transport knows nothing of the journal, the journal nothing of transports."""

from __future__ import annotations

from esb.journal import Journal
from esb.transport.contract import Delivery, TransportEvents


class JournalEvents(TransportEvents):
    """Writes the outbound outcomes the transport reports into the trace journal."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def _record(self, step: str, delivery: Delivery, detail: str | None = None) -> None:
        self.journal.record(step, message_id=delivery.message_id or "?", route=delivery.route,
                            destination=delivery.destination, correlation_id=delivery.correlation_id,
                            detail=detail)

    def acked(self, delivery: Delivery, seconds: float) -> None:
        self._record("delivered", delivery, f"attempt {delivery.attempt}, {seconds * 1000:.0f} ms")

    def retried(self, delivery: Delivery, error: BaseException, delay: float) -> None:
        self._record("retried", delivery, f"attempt {delivery.attempt}: {type(error).__name__}: {error}; "
                                          f"next try in {delay:g} s")

    def dead_lettered(self, delivery: Delivery, error: BaseException, reason: str) -> None:
        self._record("dead_lettered", delivery, f"{reason} after attempt {delivery.attempt}: "
                                                f"{type(error).__name__}: {error}")
