"""The outbound outcomes a transport reports (delivered, retried, dead-lettered), written into the
trace journal: the transport knows nothing of the journal, the journal nothing of transports."""

from __future__ import annotations

from esb.journal import Journal
from esb.transport.contract import Delivery, TransportEvents


class JournalEvents(TransportEvents):
    """Writes the outbound outcomes the transport reports into the trace journal.

    `answered(delivery, target_id)` notes what a sink returned (the target's id for the document,
    an AS2 receipt); the `delivered` entry that follows carries it in its detail."""

    def __init__(self, journal: Journal):
        self.journal = journal
        self._answers: dict[tuple, str] = {}

    @staticmethod
    def _key(delivery: Delivery) -> tuple:
        return delivery.route, delivery.destination, delivery.message_id, delivery.attempt

    def answered(self, delivery: Delivery, target_id: str) -> None:
        self._answers[self._key(delivery)] = target_id

    def _record(self, step: str, delivery: Delivery, detail: str | None = None) -> None:
        self.journal.record(step, message_id=delivery.message_id or "?", route=delivery.route,
                            destination=delivery.destination, correlation_id=delivery.correlation_id,
                            detail=detail)

    def acked(self, delivery: Delivery, seconds: float) -> None:
        answer = self._answers.pop(self._key(delivery), None)
        self._record("delivered", delivery, f"attempt {delivery.attempt}, {seconds * 1000:.0f} ms"
                                            + (f"; target: {answer}" if answer else ""))

    def retried(self, delivery: Delivery, error: BaseException, delay: float) -> None:
        self._record("retried", delivery, f"attempt {delivery.attempt}: {type(error).__name__}: {error}; "
                                          f"next try in {delay:g} s")

    def dead_lettered(self, delivery: Delivery, error: BaseException, reason: str) -> None:
        self._record("dead_lettered", delivery, f"{reason} after attempt {delivery.attempt}: "
                                                f"{type(error).__name__}: {error}")
