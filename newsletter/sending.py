"""The weekly job: settle this week's edition, then deliver every due message exactly once."""

from __future__ import annotations

import fcntl
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, insert, literal, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter import ledger, planning
from newsletter.composing import EditionMessage, Recipient
from newsletter.db import is_sqlite, transaction
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.rendering import IssueContent, render_edition
from newsletter.settings import Settings
from newsletter.subscriptions import unsubscribe_url
from newsletter.transport import OutboxTransport, RelayUnavailable, SmtpTransport, Transport

log = logging.getLogger(__name__)

# How often a sender re-reads which of its claimed deliveries were skipped by an unsubscribe.
SKIP_REFRESH_SECONDS = 0.5


class SenderBusy(RuntimeError):
    """Another process is already sending from this SQLite database."""


class Clock:
    """The job's clock: real time, or real time shifted to start at --now."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0)


@dataclass(frozen=True)
class Settled:
    """What settling found: the edition of the latest scheduled time, or why there is none."""

    scheduled_at: datetime | None
    edition_id: int | None = None
    created: bool = False
    recipients: int = 0
    missed: bool = False
    nothing_queued: bool = False
    skipped_themes: list[str] = field(default_factory=list)
    theme: str | None = None
    subject: str | None = None


def settle(factory: sessionmaker[Session], settings: Settings, now: datetime) -> Settled:
    """Create the edition of the latest scheduled time at or before now, once, within the grace."""
    scheduled_at = planning.latest_time(settings, now)
    if scheduled_at is None:
        return Settled(None)
    with transaction(factory) as session:
        existing = session.scalars(
            select(Edition).where(Edition.scheduled_at == scheduled_at)
        ).one_or_none()
        if existing is not None:
            return Settled(
                scheduled_at, existing.id, theme=existing.theme, subject=existing.subject
            )
    if now - scheduled_at > planning.grace(settings):
        return Settled(scheduled_at, missed=True)
    try:
        with transaction(factory) as session:
            return _create_edition(session, settings, scheduled_at, now)
    except IntegrityError:
        # Another scheduler or `send` settled the same time first: the database said no.
        with transaction(factory) as session:
            edition = session.scalars(
                select(Edition).where(Edition.scheduled_at == scheduled_at)
            ).one()
            return Settled(scheduled_at, edition.id, theme=edition.theme, subject=edition.subject)


def _create_edition(
    session: Session, settings: Settings, scheduled_at: datetime, now: datetime
) -> Settled:
    choice = planning.choose_issue(session, settings.themes)
    if choice.issue is None:
        return Settled(scheduled_at, nothing_queued=True, skipped_themes=choice.skipped_themes)
    issue = choice.issue
    seed = secrets.token_hex(8)
    rendered = render_edition(
        IssueContent(issue.subject, issue.theme, issue.question, issue.preheader, issue.body),
        settings,
        seed=seed,
        send_at=scheduled_at,
    )
    edition = Edition(
        scheduled_at=scheduled_at,
        issue_id=issue.id,
        theme=issue.theme,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        message_id_seed=seed,
        status=EditionStatus.SENDING,
        created_at=now,
    )
    session.add(edition)
    session.flush()
    issue.status = IssueStatus.SENT
    result = session.execute(
        insert(Delivery).from_select(
            ["edition_id", "subscriber_id", "status", "attempts"],
            select(
                literal(edition.id),
                Subscriber.id,
                literal(DeliveryStatus.PENDING.value),
                literal(0),
            ).where(Subscriber.status == SubscriberStatus.SUBSCRIBED),
        )
    )
    return Settled(
        scheduled_at,
        edition.id,
        created=True,
        recipients=int(result.rowcount),  # type: ignore[attr-defined]
        skipped_themes=choice.skipped_themes,
        theme=edition.theme,
        subject=edition.subject,
    )


def new_owner() -> str:
    """A sender's identity in the ledger: host, pid and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def make_transport(settings: Settings) -> Transport:
    smtp = settings.smtp
    if smtp is None:
        return OutboxTransport(settings.outbox_dir)
    return SmtpTransport(
        smtp,
        timeout=settings.smtp_timeout,
        max_messages=settings.smtp_messages_per_connection,
    )


@dataclass
class Progress:
    """Running totals of one delivery run."""

    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, status: DeliveryStatus) -> None:
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


class Sender:
    """Claims due deliveries in small batches, sends each over one transport, records outcomes."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        transport: Transport,
        clock: Clock,
        *,
        owner: str | None = None,
        skip_locked: bool = False,
        batch_size: int | None = None,
        on_batch: Callable[[Progress], None] | None = None,
        pace: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.owner = owner or new_owner()
        self.skip_locked = skip_locked
        self.batch_size = batch_size or settings.inflight_window
        self.on_batch = on_batch
        self.pace = pace
        self.keys = settings.secret_keys()
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.max_age = timedelta(hours=settings.retry_max_age_hours)
        self.rng = random.Random()
        self.progress = Progress()
        self._messages: dict[int, EditionMessage] = {}

    def _message(self, edition_id: int) -> EditionMessage:
        message = self._messages.get(edition_id)
        if message is None:
            with self.factory() as session:
                edition = session.get_one(Edition, edition_id)
                message = EditionMessage(
                    self.settings,
                    subject=edition.subject,
                    html=edition.html,
                    text=edition.text,
                    seed=edition.message_id_seed,
                )
            self._messages[edition_id] = message
        return message

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> Progress:
        """Send until nothing is due (or asked to stop); RelayUnavailable stops the run."""
        while not should_stop():
            with transaction(self.factory) as session:
                batch = ledger.claim(
                    session,
                    owner=self.owner,
                    now=self.clock.now(),
                    lease=self.lease,
                    limit=self.batch_size,
                    skip_locked=self.skip_locked,
                )
            if not batch:
                break
            self._send_batch(batch)
        with transaction(self.factory) as session:
            ledger.finish_editions(session, self.clock.now())
        return self.progress

    def _send_batch(self, batch: list[ledger.Claimed]) -> None:
        results: list[ledger.Result] = []
        skipped: set[int] = set()
        refreshed = time.monotonic()
        try:
            for index, item in enumerate(batch):
                if time.monotonic() - refreshed > SKIP_REFRESH_SECONDS:
                    with self.factory() as session:
                        skipped = ledger.skipped_among(
                            session, [c.delivery_id for c in batch[index:]]
                        )
                    refreshed = time.monotonic()
                if item.delivery_id in skipped:
                    continue  # already marked skipped by the unsubscribe itself
                if not item.active:
                    results.append(ledger.Result(item, DeliveryStatus.SKIPPED))
                    continue
                if self.pace is not None:
                    self.pace()
                message = self._message(item.edition_id)
                url = unsubscribe_url(self.settings.base_url, self.keys, item.token_id)
                recipient = Recipient(item.delivery_id, item.email, item.name, url)
                data = message.build(recipient, datetime.now(UTC))
                outcome = self.transport.send(
                    message.envelope_from, item.email, data, self._file_name(item)
                )
                results.append(
                    ledger.decide(item, outcome, self.clock.now(), self.max_age, self.rng)
                )
        except RelayUnavailable:
            done = {r.claimed.delivery_id for r in results}
            with transaction(self.factory) as session:
                ledger.record(session, results, owner=self.owner, now=self.clock.now())
                ledger.release(
                    session,
                    [c.delivery_id for c in batch if c.delivery_id not in done],
                    owner=self.owner,
                )
            self._count(results)
            raise
        with transaction(self.factory) as session:
            ledger.record(session, results, owner=self.owner, now=self.clock.now())
        self._count(results)

    def _count(self, results: list[ledger.Result]) -> None:
        for result in results:
            self.progress.add(result.status)
        if self.on_batch is not None:
            self.on_batch(self.progress)

    @staticmethod
    def _file_name(item: ledger.Claimed) -> str:
        """Where the outbox writes this message: one folder per edition."""
        safe = "".join(ch if ch.isalnum() or ch in "@.-_" else "_" for ch in item.email)
        return f"edition-{item.edition_id}/{item.delivery_id:07d}-{safe}"


def _sqlite_lock_path(engine: Engine) -> Path | None:
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + ".sender-lock")


@contextmanager
def sender_lock(engine: Engine) -> Iterator[bool]:
    """On SQLite, one sending process at a time (an OS lock, gone when the process dies).

    Yields True when this process may treat every claimed-but-unfinished delivery as abandoned.
    """
    if not is_sqlite(engine):
        yield False
        return
    path = _sqlite_lock_path(engine)
    if path is None:
        yield True
        return
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SenderBusy(
                f"another sender ({holder}) is already sending from this SQLite database; "
                "on SQLite one sending process at a time. Wait for it to finish, or move to "
                "PostgreSQL to run several workers."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield True
    finally:
        handle.close()


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
    return sum(totals[s] for s in ledger.UNFINISHED)


def deliver(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    *,
    on_batch: Callable[[Progress], None] | None = None,
    transport: Transport | None = None,
) -> DeliveryReport:
    """Send every due delivery of every edition; RelayUnavailable stops the run."""
    with sender_lock(engine) as alone:
        recovered = 0
        if alone:
            with transaction(factory) as session:
                recovered = ledger.recover_abandoned(session)
        transport = transport or make_transport(settings)
        try:
            progress = Sender(factory, settings, transport, clock, on_batch=on_batch).run()
        finally:
            transport.close()
    with factory() as session:
        next_retry = ledger.next_retry_at(session)
    return DeliveryReport(progress, recovered, unfinished_count(factory), next_retry)


def run_job(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, clock: Clock
) -> tuple[Settled, DeliveryReport]:
    """The weekly job: settle this week's edition if due, then deliver what is due."""
    settled = settle(factory, settings, clock.now())
    return settled, deliver(engine, factory, settings, clock)
