"""The delivery engine: connections that claim due deliveries, send them, and record every outcome.

Several connections (threads) share one process: each owns a transport and claims its own
batches, so at most `NEWSLETTER_INFLIGHT_WINDOW` accepted messages can ever be unrecorded. How
senders share a database (one at a time on SQLite, any number on PostgreSQL) is in `senders`.
A bounce is orchestrated here: the outcome recorded and the reader marked bounced, in one
transaction.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.delivery import decisions
from newsletter.delivery.pacing import Caps, Pacer
from newsletter.delivery.run import Clock, DeliveryReport, Progress, new_owner, unfinished_count
from newsletter.delivery.senders import Senders, senders_for
from newsletter.mail.composing import EditionMessage, Recipient
from newsletter.mail.transport import Envelope, RelayUnavailable, Transport, make_transport
from newsletter.readers import consent, subscriptions
from newsletter.settings import Settings
from newsletter.storage import ledger
from newsletter.storage.db import transaction
from newsletter.storage.models import DeliveryStatus, Edition

log = logging.getLogger(__name__)

# Deliveries claimed at once by one connection; outcomes are recorded in smaller groups.
CLAIM_SIZE = 500


class CapReached(RuntimeError):
    """The hourly or daily cap is used up; sending resumes when the window moves on."""


@dataclass
class Shared:
    """What the connections of one process share."""

    factory: sessionmaker[Session]
    settings: Settings
    senders: Senders
    clock: Clock
    owner: str
    batch_size: int
    pacer: Pacer
    caps: Caps
    progress: Progress
    stop: threading.Event  # asked from outside (SIGTERM): finish in-flight messages, then stop
    keys: list[bytes]
    abort: threading.Event = field(default_factory=threading.Event)  # one connection failed
    capped: bool = False  # a connection found the hourly or daily cap used up
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
                        edition_id=edition.id,
                        theme=edition.theme,
                        keys=self.keys,
                    )
                self.messages[edition_id] = message
            return message


class ConnectionLoop:
    """One connection's loop: claim a batch, send it, record it, until nothing is due."""

    def __init__(self, shared: Shared, transport: Transport) -> None:
        self.shared = shared
        self.transport = transport
        self.lease = timedelta(seconds=shared.settings.lease_seconds)
        self.max_age = timedelta(hours=shared.settings.retry_max_age_hours)
        self.rng = random.Random()

    def run(self) -> None:
        shared = self.shared
        watch = shared.senders.status_reader()
        try:
            while not shared.stopping():
                limit = shared.caps.take(CLAIM_SIZE)
                if limit == 0:
                    shared.capped = True  # the other connections finish what they claimed
                    return
                with shared.senders.write_turns(), transaction(shared.factory) as session:
                    batch = ledger.claim(
                        session,
                        owner=shared.owner,
                        now=shared.clock.now(),
                        lease=self.lease,
                        limit=limit,
                        skip_locked=shared.senders.skip_locked,
                    )
                if not batch:
                    return
                self._send_batch(batch, watch.status)
        finally:
            watch.close()

    def _send_batch(self, batch: list[ledger.Claimed], status: Callable[[int], str | None]) -> None:
        """Send a claimed batch, recording outcomes every `batch_size` messages.

        Claimed but unsent rows are never a duplicate risk (a crash puts them back untried); only
        accepted-but-unrecorded messages are, so those are what the in-flight window bounds.
        """
        shared = self.shared
        unrecorded: list[tuple[ledger.Claimed, decisions.Decision]] = []
        handled = 0
        try:
            for item in batch:
                if shared.stopping():
                    break  # finish in-flight work only; the rest is released below
                if not item.active or status(item.delivery_id) == DeliveryStatus.SKIPPED:
                    # The reader left (or bounced) after the edition was settled.
                    unrecorded.append((item, decisions.skipped(item, "not subscribed any more")))
                else:
                    unrecorded.append((item, self._send_one(item)))
                handled += 1
                if len(unrecorded) >= shared.batch_size:
                    self._record(unrecorded, [])
                    unrecorded = []
        finally:
            self._record(unrecorded, [c.delivery_id for c in batch[handled:]])

    def _record(
        self, decided: list[tuple[ledger.Claimed, decisions.Decision]], untried: list[int]
    ) -> None:
        """Outcomes, bounced readers and untried deliveries, in one transaction."""
        shared = self.shared
        if not decided and not untried:
            return
        outcomes = [decision.outcome for _, decision in decided]
        bounced = [item.subscriber_id for item, decision in decided if decision.bounced]
        now = shared.clock.now()
        with shared.senders.write_turns(), transaction(shared.factory) as session:
            ledger.record(session, outcomes, owner=shared.owner, now=now)
            subscriptions.mark_bounced(
                session, bounced, now, source=consent.Source.RELAY, detail="refused by the relay"
            )
            ledger.release(session, untried, owner=shared.owner)
        shared.progress.add(outcomes)

    def _send_one(self, item: ledger.Claimed) -> decisions.Decision:
        shared = self.shared
        shared.pacer.wait()
        message = shared.message(item.edition_id)
        url = links.unsubscribe_url(shared.settings.base_url, shared.keys, item.token_id)
        data = message.build(
            Recipient(item.delivery_id, item.email, item.name, url), datetime.now(UTC)
        )
        envelope = Envelope(message.envelope_sender(item.delivery_id), item.email)
        verdict = self.transport.send(envelope, data)
        if verdict.throttled:
            shared.pacer.throttled()
        return decisions.decide(item, verdict, shared.clock.now(), self.max_age, self.rng)


class SendingProcess:
    """The connections of one sending process, and their shared state."""

    def __init__(
        self,
        senders: Senders,
        factory: sessionmaker[Session],
        settings: Settings,
        clock: Clock,
        *,
        transport_factory: Callable[[], Transport] | None = None,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.connections = settings.smtp_connections
        if settings.smtp is None:
            self.connections = 1  # the outbox is a folder; more threads gain nothing
        self.transport_factory = transport_factory or (lambda: make_transport(settings))
        self.shared = Shared(
            factory=factory,
            settings=settings,
            senders=senders,
            clock=clock,
            owner=new_owner(),
            batch_size=max(1, settings.inflight_window // self.connections),
            pacer=Pacer(settings.smtp_rate or None),
            caps=Caps(factory, settings, clock.now),
            progress=progress or Progress(),
            stop=stop or threading.Event(),
            keys=settings.secret_keys(),
        )

    def run_once(self, on_batch: Callable[[Progress], None] | None = None) -> None:
        """Run every connection until nothing is due; the first fatal error stops them all."""
        errors: list[BaseException] = []

        def connection_main() -> None:
            transport = self.transport_factory()
            try:
                ConnectionLoop(self.shared, transport).run()
            except BaseException as exc:
                errors.append(exc)
                self.shared.abort.set()
            finally:
                transport.close()

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
    senders = senders_for(engine)
    run = SendingProcess(
        senders, factory, settings, clock, transport_factory=transport_factory, stop=stop
    )
    with senders.exclusive(), senders.alive(run.shared.owner):
        recovered = senders.recover(factory, run.shared.owner)
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
    senders = senders_for(engine)
    with senders.exclusive():
        while not stop.is_set():
            run = SendingProcess(senders, factory, settings, clock, stop=stop, progress=progress)
            try:
                with senders.alive(run.shared.owner) as proof:
                    _work_while_alive(
                        run, senders, proof.check, idle_seconds, pause_seconds, on_batch
                    )
            except OperationalError as exc:
                log.warning("lost the database connection (%s); reconnecting", exc.orig)
                engine.dispose()
                stop.wait(min(idle_seconds, 5.0))
    return progress


def _work_while_alive(
    run: SendingProcess,
    senders: Senders,
    still_alive: Callable[[], None],
    idle_seconds: float,
    pause_seconds: float,
    on_batch: Callable[[Progress], None] | None = None,
) -> None:
    stop = run.shared.stop
    while not stop.is_set():
        still_alive()
        recovered = senders.recover(run.shared.factory, run.shared.owner)
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


def retry_edition(
    session: Session, edition_id: int, *, include_bounced: bool, now: datetime
) -> tuple[int, int]:
    """An edition's failed deliveries back in the queue (after the relay was fixed).

    Readers marked bounced by this edition stay off the list unless `include_bounced`, for when
    the relay, not the address, was at fault. Returns (requeued, readers restored).
    """
    restored = 0
    if include_bounced:
        restored = subscriptions.restore_bounced(session, ledger.failed_readers(edition_id), now)
    return ledger.requeue_failed(session, edition_id), restored
