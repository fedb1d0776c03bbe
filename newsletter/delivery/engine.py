"""The delivery engine: connections that claim due deliveries, send them, and record every outcome.

Several connections (threads) share one process: each owns an SMTP connection and claims its own
small batches, so at most `NEWSLETTER_INFLIGHT_WINDOW` accepted messages can ever be unrecorded.
On PostgreSQL, processes on any machine share the work with `FOR UPDATE SKIP LOCKED`; each holds an
advisory lock for its lifetime, so a sender that died is known at once and its claims are taken
back. On SQLite one process sends at a time, guarded by an OS file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.delivery.pacing import Pacer
from newsletter.mail.composing import EditionMessage, Recipient
from newsletter.mail.transport import OutboxTransport, RelayUnavailable, SmtpTransport, Transport
from newsletter.publishing.editions import Settled, settle
from newsletter.readers.subscriptions import unsubscribe_url
from newsletter.settings import Settings
from newsletter.storage import ledger
from newsletter.storage.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite, transaction
from newsletter.storage.models import UNFINISHED, Delivery, DeliveryStatus, Edition

log = logging.getLogger(__name__)

# Deliveries claimed at once by one connection; outcomes are recorded in smaller groups.
CLAIM_SIZE = 500
# How often the hourly and daily caps are re-counted from the ledger.
CAP_REFRESH_SECONDS = 10.0


class SenderBusy(RuntimeError):
    """Another process is already sending from this SQLite database."""


class CapReached(RuntimeError):
    """The hourly or daily cap is used up; sending resumes when the window moves on."""


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
    """Running totals of one delivery run, shared by its connections."""

    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, results: list[ledger.Result]) -> None:
        with self.lock:
            for result in results:
                status = result.status
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


class Caps:
    """The relay's hourly and daily limits, counted from the ledger across all senders."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, clock: Clock) -> None:
        self.factory = factory
        self.hourly = settings.smtp_hourly_limit
        self.daily = settings.smtp_daily_limit
        self.clock = clock
        self._lock = threading.Lock()
        self._left: int | None = None
        self._counted = 0.0

    def _count(self) -> int | None:
        if not self.hourly and not self.daily:
            return None
        now = self.clock.now()
        left: list[int] = []
        with self.factory() as session:
            for cap, window in ((self.hourly, timedelta(hours=1)), (self.daily, timedelta(days=1))):
                if cap:
                    used = session.scalar(
                        select(func.count()).where(
                            Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.SENDING]),
                            func.coalesce(Delivery.finished_at, now) >= now - window,
                        )
                    )
                    left.append(cap - int(used or 0))
        return max(min(left), 0)

    def take(self, wanted: int) -> int:
        """How many of `wanted` messages may be claimed now (0: the cap is reached)."""
        with self._lock:
            if self._left is None or time.monotonic() - self._counted > CAP_REFRESH_SECONDS:
                self._left = self._count()
                self._counted = time.monotonic()
            if self._left is None:
                return wanted
            granted = min(wanted, self._left)
            self._left -= granted
            return granted


@dataclass
class Shared:
    """What the connections of one process share."""

    factory: sessionmaker[Session]
    settings: Settings
    clock: Clock
    owner: str
    skip_locked: bool
    batch_size: int
    pacer: Pacer
    caps: Caps
    progress: Progress
    stop: threading.Event  # asked from outside (SIGTERM): finish in-flight messages, then stop
    keys: list[bytes]
    abort: threading.Event = field(default_factory=threading.Event)  # one connection failed
    capped: bool = False  # a connection found the hourly or daily cap used up
    # SQLite has one writer at a time; taking turns here avoids its sleeping busy handler.
    write_lock: AbstractContextManager[object] = field(default_factory=contextlib.nullcontext)
    messages: dict[int, EditionMessage] = field(default_factory=dict)
    messages_lock: threading.Lock = field(default_factory=threading.Lock)

    def stopping(self) -> bool:
        return self.stop.is_set() or self.abort.is_set()

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
                    )
                self.messages[edition_id] = message
            return message


class SkipWatch:
    """Asks the ledger, right before each message, whether an unsubscribe skipped it meanwhile.

    One indexed read per message on a connection of its own in autocommit mode, so that from the
    moment a reader leaves, not one more message goes to them (only a message already being
    handed to the relay cannot be called back).
    """

    def __init__(self, engine: Engine) -> None:
        self._close: Callable[[], None]
        self._status: Callable[[int], Any]
        if is_sqlite(engine):
            database = engine.url.database or ""
            lite = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
            lite.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            sql = "SELECT status FROM deliveries WHERE id = ?"
            self._status = lambda delivery_id: lite.execute(sql, (delivery_id,)).fetchone()
            self._close = lite.close
        else:
            pg = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            sql = "SELECT status FROM deliveries WHERE id = %(id)s"
            self._status = lambda delivery_id: pg.exec_driver_sql(sql, {"id": delivery_id}).first()
            self._close = pg.close

    def was_skipped(self, delivery_id: int) -> bool:
        row = self._status(delivery_id)
        return row is not None and row[0] == DeliveryStatus.SKIPPED.value

    def close(self) -> None:
        self._close()


class ConnectionLoop:
    """One connection's loop: claim a batch, send it, record it, until nothing is due."""

    def __init__(self, shared: Shared, transport: Transport, watch: SkipWatch) -> None:
        self.shared = shared
        self.transport = transport
        self.watch = watch
        self.lease = timedelta(seconds=shared.settings.lease_seconds)
        self.max_age = timedelta(hours=shared.settings.retry_max_age_hours)
        self.rng = random.Random()

    def run(self) -> None:
        shared = self.shared
        while not shared.stopping():
            limit = shared.caps.take(CLAIM_SIZE)
            if limit == 0:
                shared.capped = True  # the other connections finish what they claimed
                return
            with shared.write_lock, transaction(shared.factory) as session:
                batch = ledger.claim(
                    session,
                    owner=shared.owner,
                    now=shared.clock.now(),
                    lease=self.lease,
                    limit=limit,
                    skip_locked=shared.skip_locked,
                )
            if not batch:
                return
            self._send_batch(batch)

    def _send_batch(self, batch: list[ledger.Claimed]) -> None:
        """Send a claimed batch, recording outcomes every `batch_size` messages.

        Claimed but unsent rows are never a duplicate risk (a crash puts them back untried); only
        accepted-but-unrecorded messages are, so those are what the in-flight window bounds.
        """
        shared = self.shared
        unrecorded: list[ledger.Result] = []
        handled = 0
        try:
            for item in batch:
                if shared.stopping():
                    break  # finish in-flight work only; the rest is released below
                if not item.active or self.watch.was_skipped(item.delivery_id):
                    # The reader left (or bounced) after the edition was settled.
                    unrecorded.append(ledger.Result(item, DeliveryStatus.SKIPPED))
                else:
                    unrecorded.append(self._send_one(item))
                handled += 1
                if len(unrecorded) >= shared.batch_size:
                    self._record(unrecorded, [])
                    unrecorded = []
        finally:
            self._record(unrecorded, [c.delivery_id for c in batch[handled:]])

    def _record(self, results: list[ledger.Result], untried: list[int]) -> None:
        shared = self.shared
        if not results and not untried:
            return
        with shared.write_lock, transaction(shared.factory) as session:
            ledger.record(session, results, owner=shared.owner, now=shared.clock.now())
            ledger.release(session, untried, owner=shared.owner)
        shared.progress.add(results)

    def _send_one(self, item: ledger.Claimed) -> ledger.Result:
        shared = self.shared
        shared.pacer.wait()
        message = shared.message(item.edition_id)
        url = unsubscribe_url(shared.settings.base_url, shared.keys, item.token_id)
        data = message.build(
            Recipient(item.delivery_id, item.email, item.name, url), datetime.now(UTC)
        )
        outcome = self.transport.send(message.envelope_from, item.email, data, _file_name(item))
        if outcome.throttled:
            shared.pacer.throttled()
        return ledger.decide(item, outcome, shared.clock.now(), self.max_age, self.rng)


def _file_name(item: ledger.Claimed) -> str:
    """Where the outbox writes this message: one folder per edition."""
    safe = "".join(ch if ch.isalnum() or ch in "@.-_" else "_" for ch in item.email)
    return f"edition-{item.edition_id}/{item.delivery_id:07d}-{safe}"


# --- one process, many connections --------------------------------------------------------


def _lock_key(owner: str) -> int:
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:8], "big", signed=True)


@contextmanager
def liveness(engine: Engine, owner: str) -> Iterator[Connection | None]:
    """PostgreSQL: hold an advisory lock named after this sender for as long as it lives."""
    if is_sqlite(engine):
        yield None
        return
    connection = engine.connect()
    try:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _lock_key(owner)})
        connection.commit()
        yield connection
    finally:
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(owner)})
            connection.commit()
        except OperationalError:
            pass  # the connection is gone, and the lock with it
        connection.close()


def recover_dead_senders(engine: Engine, factory: sessionmaker[Session], owner: str) -> int:
    """Take back deliveries claimed by senders that are gone; returns how many."""
    with transaction(factory) as session:
        if is_sqlite(engine):
            # Under the sender file lock no other SQLite sender can be alive.
            return ledger.recover_abandoned(session)
        owners = session.scalars(
            select(Delivery.lease_owner)
            .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_owner != owner)
            .distinct()
        ).all()
        live = [owner]
        for other in owners:
            if other is None:
                continue
            # The try-lock succeeds only if the owner's session (and so the owner) is gone.
            gone = session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _lock_key(other)}
            )
            if not gone:
                live.append(other)
        return ledger.recover_abandoned(session, live_owners=live)


def _sqlite_lock_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + ".sender-lock")


@contextmanager
def sender_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, one sending process at a time (an OS lock, gone when the process dies)."""
    path = _sqlite_lock_path(engine) if is_sqlite(engine) else None
    if path is None:
        yield
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
        yield
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
    return sum(totals[s] for s in UNFINISHED)


class SendingProcess:
    """The connections of one sending process, and their shared state."""

    def __init__(
        self,
        engine: Engine,
        factory: sessionmaker[Session],
        settings: Settings,
        clock: Clock,
        *,
        transport_factory: Callable[[], Transport] | None = None,
        stop: threading.Event | None = None,
        connections: int | None = None,
    ) -> None:
        self.engine = engine
        self.connections = connections or settings.smtp_connections
        if settings.smtp is None:
            self.connections = 1  # the outbox is a folder; more threads gain nothing
        self.transport_factory = transport_factory or (lambda: make_transport(settings))
        self.shared = Shared(
            factory=factory,
            settings=settings,
            clock=clock,
            owner=new_owner(),
            skip_locked=not is_sqlite(engine),
            batch_size=max(1, settings.inflight_window // self.connections),
            pacer=Pacer(settings.smtp_rate or None),
            caps=Caps(factory, settings, clock),
            progress=Progress(),
            stop=stop or threading.Event(),
            keys=settings.secret_keys(),
            write_lock=threading.Lock() if is_sqlite(engine) else contextlib.nullcontext(),
        )

    def run_once(self, on_batch: Callable[[Progress], None] | None = None) -> None:
        """Run every connection until nothing is due; the first fatal error stops them all."""
        errors: list[BaseException] = []

        def connection_main() -> None:
            transport = self.transport_factory()
            watch = SkipWatch(self.engine)
            try:
                ConnectionLoop(self.shared, transport, watch).run()
            except BaseException as exc:
                errors.append(exc)
                self.shared.abort.set()
            finally:
                transport.close()
                watch.close()

        self.shared.abort.clear()
        self.shared.capped = False
        threads = [
            threading.Thread(target=connection_main, name=f"smtp-{i}", daemon=True)
            for i in range(self.connections)
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.25)
            if on_batch is not None:
                on_batch(self.shared.progress)
        if errors:
            raise errors[0]
        if on_batch is not None:
            on_batch(self.shared.progress)
        if self.shared.capped:
            raise CapReached("the hourly or daily sending cap is reached")
        with transaction(self.shared.factory) as session:
            ledger.finish_editions(session, self.shared.clock.now())


def deliver(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    *,
    on_batch: Callable[[Progress], None] | None = None,
    transport_factory: Callable[[], Transport] | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send every due delivery of every edition; RelayUnavailable or CapReached stop the run."""
    run = SendingProcess(
        engine, factory, settings, clock, transport_factory=transport_factory, stop=stop
    )
    with sender_lock(engine), liveness(engine, run.shared.owner):
        recovered = recover_dead_senders(engine, factory, run.shared.owner)
        run.run_once(on_batch)
    with factory() as session:
        next_retry = ledger.next_retry_at(session)
    return DeliveryReport(run.shared.progress, recovered, unfinished_count(factory), next_retry)


def work(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event,
    *,
    clock: Clock | None = None,
    idle_seconds: float = 5.0,
    pause_seconds: float = 30.0,
    on_batch: Callable[[Progress], None] | None = None,
) -> Progress:
    """The worker loop: send whatever falls due until `stop` is set; survives relay outages and a
    lost database connection (it reconnects under a new identity)."""
    clock = clock or Clock()
    progress = Progress()
    with sender_lock(engine):
        while not stop.is_set():
            run = SendingProcess(engine, factory, settings, clock, stop=stop)
            run.shared.progress = progress
            try:
                with liveness(engine, run.shared.owner) as lock_connection:
                    while not stop.is_set():
                        if lock_connection is not None:  # still alive, lock and all
                            lock_connection.execute(text("SELECT 1"))
                            lock_connection.rollback()  # never sit idle in a transaction
                        recovered = recover_dead_senders(engine, factory, run.shared.owner)
                        if recovered:
                            log.info("took back %d deliveries of a sender that stopped", recovered)
                        try:
                            run.run_once(on_batch)
                        except RelayUnavailable as exc:
                            log.warning("%s; trying again in %.0f s", exc, pause_seconds)
                            stop.wait(pause_seconds)
                            continue
                        except CapReached as exc:
                            log.info("%s; waiting %.0f s", exc, pause_seconds)
                            stop.wait(pause_seconds)
                            continue
                        stop.wait(idle_seconds)
            except OperationalError as exc:
                log.warning("lost the database connection (%s); reconnecting", exc.orig)
                engine.dispose()
                stop.wait(min(idle_seconds, 5.0))
    return progress


def run_job(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, clock: Clock
) -> tuple[Settled, DeliveryReport]:
    """The weekly job: settle this week's edition if due, then deliver what is due."""
    settled = settle(factory, settings, clock.now())
    return settled, deliver(engine, factory, settings, clock)
