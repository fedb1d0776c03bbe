"""The relay circuit breaker: when the relay refuses everyone, the run stops.

A relay that answers every reader with a temporary or throttling reply (421 to everything), or
that refuses the sender itself (5xx to MAIL FROM: authentication required, sender not
verified), has a problem of its own; hammering it for the whole retry age, or failing every
reader as if their address were bad, helps nobody. The breaker sees each verdict; it trips on
`REFUSALS_IN_A_ROW` temporary verdicts for different readers with no acceptance between them,
or at once on a refusal at MAIL FROM. The tries of the streak are then forgiven (not counted
against the readers) by the engine.
"""

from __future__ import annotations

import threading

from newsletter.mail.transport import Kind, RelayRefuses, Stage, Verdict
from newsletter.storage.ledger import Claimed

REFUSALS_IN_A_ROW = 10


def refuses_the_sender(verdict: Verdict) -> bool:
    """A permanent refusal at MAIL FROM: about the sender, never about the reader."""
    return verdict.kind is Kind.PERMANENT and verdict.stage is Stage.MAIL


class Breaker:
    """Shared by the connections of one sending process."""

    def __init__(self, threshold: int = REFUSALS_IN_A_ROW) -> None:
        self.threshold = threshold
        self._lock = threading.Lock()
        self._streak: dict[str, Claimed] = {}  # recipient -> its delivery, in this streak
        self.tripped: RelayRefuses | None = None

    def streak(self) -> list[Claimed]:
        """The deliveries tried since the relay last accepted one."""
        with self._lock:
            return list(self._streak.values())

    def see(self, recipient: str, claimed: Claimed, verdict: Verdict) -> None:
        """Note one verdict; raises RelayRefuses when the relay refuses everyone."""
        with self._lock:
            if self.tripped is not None:
                raise self.tripped
            if verdict.accepted:
                self._streak.clear()
                return
            if refuses_the_sender(verdict):
                self._trip(f"{verdict.code} at MAIL FROM: {verdict.text}")
            if not verdict.temporary:
                return  # a permanent refusal of one reader says nothing about the others
            if len(self._streak | {recipient: claimed}) >= self.threshold:
                # This last try is handed back untried by its connection, not forgiven here.
                self._trip(
                    f"{self.threshold} readers in a row got a temporary refusal, "
                    f"the last: {verdict.describe()}"
                )
            self._streak[recipient] = claimed

    def _trip(self, reason: str) -> None:
        self.tripped = RelayRefuses(reason)
        raise self.tripped
