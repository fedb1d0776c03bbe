"""The pure decisions of delivery: what a relay's verdict means for the delivery and the reader.

No I/O here: every function takes plain values, so each rule is a table test.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from newsletter.mail.transport import Kind, Stage, Verdict
from newsletter.storage.ledger import Claimed, Outcome
from newsletter.storage.models import DeliveryStatus

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=4)
# Enhanced status codes that say the address itself is bad (RFC 3463): 5.1.x, 5.2.1.
_ADDRESS_GONE = re.compile(r"\b5\.(1\.\d+|2\.1)\b")


def backoff(attempts: int, rng: random.Random) -> timedelta:
    """Exponential backoff, jittered in its upper half: 1, 2, 4 … minutes, at most 4 hours."""
    ceiling: timedelta = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)
    return ceiling * (0.5 + rng.random() / 2)


def is_hard_bounce(verdict: Verdict) -> bool:
    """A permanent refusal of the address itself: at RCPT, or with a 5.1.x / 5.2.1 status."""
    if verdict.kind is not Kind.PERMANENT:
        return False
    return verdict.stage is Stage.RCPT or bool(_ADDRESS_GONE.search(verdict.text))


@dataclass(frozen=True)
class Decision:
    """A claimed delivery's outcome, and whether its reader is to be marked bounced."""

    outcome: Outcome
    bounced: bool = False


def decide(
    claimed: Claimed, verdict: Verdict, now: datetime, max_age: timedelta, rng: random.Random
) -> Decision:
    """Turn a relay's verdict into the delivery's next state."""
    delivery = claimed.delivery_id
    if verdict.accepted:
        return Decision(Outcome(delivery, DeliveryStatus.SENT, verdict.code, verdict.describe()))
    if not verdict.temporary:
        outcome = Outcome(delivery, DeliveryStatus.FAILED, verdict.code, verdict.describe())
        return Decision(outcome, bounced=is_hard_bounce(verdict))
    if now - claimed.first_attempt_at >= max_age:
        reply = f"gave up after {claimed.attempts} attempts: {verdict.describe()}"
        return Decision(Outcome(delivery, DeliveryStatus.FAILED, verdict.code, reply[:500]))
    retry_at = now + backoff(claimed.attempts, rng)
    return Decision(
        Outcome(delivery, DeliveryStatus.RETRY, verdict.code, verdict.describe(), retry_at)
    )


def skipped(claimed: Claimed, why: str) -> Decision:
    """The reader left, paused or bounced after the edition was settled."""
    return Decision(Outcome(claimed.delivery_id, DeliveryStatus.SKIPPED, None, why))


def failed(claimed: Claimed, why: str) -> Decision:
    """This reader's message could not be built or handed over: it fails, and only it."""
    return Decision(Outcome(claimed.delivery_id, DeliveryStatus.FAILED, None, why[:500]))
