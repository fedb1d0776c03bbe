"""What one delivery run shares and reports: its clock, its identity, what its connections
share, its running totals, and the reads of the ledger it reports from."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.delivery.breaker import Breaker
from newsletter.delivery.pacing import Caps, Pacer
from newsletter.delivery.senders import Senders
from newsletter.mail.composing import EditionMessage
from newsletter.settings import Settings
from newsletter.storage import ledger
from newsletter.storage.db import retrying, transaction
from newsletter.storage.models import UNFINISHED, Delivery, DeliveryStatus, Edition

T = TypeVar("T")


class Clock:
    """The job's clock: real time, or real time shifted to start at --now."""

    def __init__(self, start: datetime | None = None, t0: float | None = None) -> None:
        self.start = start or datetime.now(UTC)
        # time.monotonic() is system-wide, so a child process can go on with its parent's clock.
        self.t0 = time.monotonic() if t0 is None else t0

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


@dataclass
class Shared:
    """What the connections of one process share."""

    factory: sessionmaker[Session]
    settings: Settings
    senders: Senders
    clock: Clock
    owner: str
    connections: int
    batch_size: int
    pacer: Pacer
    caps: Caps
    progress: Progress
    stop: threading.Event  # asked from outside (SIGTERM): finish in-flight messages, then stop
    keys: list[bytes]
    abort: threading.Event = field(default_factory=threading.Event)  # one connection failed
    capped: bool = False  # a connection found the hourly or daily cap used up
    breaker: Breaker = field(default_factory=Breaker)
    alive_check: Callable[[], None] = lambda: None  # raises when our proof of life is lost
    alive_lock: threading.Lock = field(default_factory=threading.Lock)
    messages: dict[int, EditionMessage] = field(default_factory=dict)
    messages_lock: threading.Lock = field(default_factory=threading.Lock)

    def stopping(self) -> bool:
        return self.stop.is_set() or self.abort.is_set()

    def still_alive(self) -> None:
        """Raise if this sender's proof of life (PostgreSQL's advisory lock) is gone: others
        may then take back what it holds, so it must stop and start over as a new sender."""
        with self.alive_lock:
            self.alive_check()

    def write(self, unit: Callable[[Session], T]) -> T:
        """One transaction, in this process's write turn; retried while the database is away."""

        def attempt() -> T:
            with self.senders.write_turns(), transaction(self.factory) as session:
                return unit(session)

        return retrying(attempt, patience=self.settings.database_patience_seconds)

    def message(self, edition_id: int) -> EditionMessage:
        with self.messages_lock:
            message = self.messages.get(edition_id)
            if message is None:
                with self.factory() as session:
                    edition = session.get_one(Edition, edition_id)
                    message = EditionMessage(
                        self.settings,
                        subject=edition.subject,
                        html=edition.html,
                        text=edition.text,
                        seed=edition.message_id_seed,
                        edition_id=edition.id,
                        theme=edition.theme,
                        keys=self.keys,
                        archive_url=links.archive_url(self.settings.base_url)
                        if self.settings.archive
                        else None,
                    )
                self.messages[edition_id] = message
            return message


def new_owner(family: str | None = None) -> str:
    """A sender's identity in the ledger: host, pid and a random part; or, for a child process
    of a send, its family (which the parent releases if the child dies) and a random part."""
    if family is not None:
        return f"{family}.{secrets.token_hex(3)}"
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


# Reads of the ledger (its writes are all in storage/ledger.py).


def counts(session: Session, edition_id: int | None = None) -> dict[DeliveryStatus, int]:
    """Deliveries per state, for one edition or all."""
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    if edition_id is not None:
        query = query.where(Delivery.edition_id == edition_id)
    found: dict[DeliveryStatus, int] = {status: n for status, n in session.execute(query)}
    return {status: found.get(status, 0) for status in DeliveryStatus}


def next_retry_at(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(Delivery.status == DeliveryStatus.RETRY)
    )


def unfinished_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        totals = counts(session)
    return sum(totals[s] for s in UNFINISHED)
