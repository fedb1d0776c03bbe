"""What one delivery run shares and reports: its clock, its identity, its running totals."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage import ledger
from newsletter.storage.models import UNFINISHED, DeliveryStatus


class Clock:
    """The job's clock: real time, or real time shifted to start at --now."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0)


def new_owner() -> str:
    """A sender process's identity in the ledger: host, pid and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Progress:
    """Running totals of one delivery run, shared by its connections."""

    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcomes: Sequence[ledger.Outcome]) -> None:
        with self.lock:
            for outcome in outcomes:
                status = outcome.status
                if status is DeliveryStatus.SENT:
                    self.sent += 1
                elif status is DeliveryStatus.FAILED:
                    self.failed += 1
                elif status is DeliveryStatus.RETRY:
                    self.retry += 1
                elif status is DeliveryStatus.SKIPPED:
                    self.skipped += 1

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.retry + self.skipped

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.handled / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class DeliveryReport:
    """What one delivery run did, and what is left."""

    progress: Progress
    recovered: int
    unfinished: int
    next_retry_at: datetime | None


def unfinished_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        totals = ledger.counts(session)
    return sum(totals[s] for s in UNFINISHED)
