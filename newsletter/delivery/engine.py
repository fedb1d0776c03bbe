"""The delivery engine: connections that claim due deliveries, send them, and record every outcome.

Several connections (threads) share one process (and `processes` runs several such processes):
each owns a transport and claims its own batches, so at most `NEWSLETTER_INFLIGHT_WINDOW`
accepted messages can ever be unrecorded. How senders share a database (one at a time on SQLite,
any number on PostgreSQL) is in `senders`. A bounce is orchestrated here: the outcome recorded
and the reader marked bounced, in one transaction.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.delivery import decisions
from newsletter.delivery.breaker import Breaker
from newsletter.delivery.pacing import Caps, CapsShare, Pacer
from newsletter.delivery.run import (
    Clock,
    DeliveryReport,
    Progress,
    Shared,
    new_owner,
    next_retry_at,
    unfinished_count,
)
from newsletter.delivery.senders import Holder, Senders, senders_for
from newsletter.i18n import _
from newsletter.mail.composing import Recipient, wire_address
from newsletter.mail.transport import Envelope, RelayUnavailable, Stage, Transport, make_transport
from newsletter.readers import consent, subscriptions
from newsletter.settings import Settings
from newsletter.storage import ledger, ledger_editions
from newsletter.storage.db import (
    DatabaseUnavailable,
    describe_error,
    is_connection_fault,
    retrying,
)
from newsletter.storage.models import DeliveryStatus

log = logging.getLogger(__name__)

# Deliveries claimed at once by one connection; outcomes are recorded in smaller groups.
CLAIM_SIZE = 500
T = TypeVar("T")


class CapReached(RuntimeError):
    """The hourly or daily cap is used up; sending resumes when the window moves on."""


class ConnectionLoop:
    """One connection's loop: claim a batch, send it, record it, until nothing is due."""

    def __init__(self, shared: Shared, transport: Transport) -> None:
        self.shared = shared
        self.transport = transport
        self.lease = timedelta(seconds=shared.settings.lease_seconds)
        self.max_age = timedelta(hours=shared.settings.retry_max_age_hours)
        self.rng = random.Random()
        # Leases are on the wall clock (ledger docstring); this one only times the renewals.
        self.renewed = time.monotonic()

    def claim_size(self) -> int:
        """No more than this connection can send within half a lease at the current pace."""
        rate = self.shared.pacer.current
        if rate is None:
            return CLAIM_SIZE
        per_connection = rate / max(self.shared.connections, 1)
        return max(1, min(CLAIM_SIZE, int(per_connection * self.lease.total_seconds() / 2)))

    def run(self) -> None:
        shared = self.shared
        watch = shared.senders.status_reader()
        try:
            while not shared.stopping():
                shared.still_alive()
                limit = shared.caps.take(self.claim_size())
                if limit == 0:
                    shared.capped = True  # the other connections finish what they claimed
                    return
                now = shared.clock.now()
                batch = shared.write(
                    lambda session, now=now, limit=limit: ledger.claim(  # type: ignore[misc]
                        session,
                        owner=shared.owner,
                        now=now,
                        lease=self.lease,
                        limit=limit,
                        skip_locked=shared.senders.skip_locked,
                        wall=datetime.now(UTC),
                    )
                )
                if not batch:
                    return
                self.renewed = time.monotonic()
                self._send_batch(batch, watch.holder)
        finally:
            watch.close()

    def _send_batch(
        self, batch: list[ledger.Claimed], holder: Callable[[int], Holder | None]
    ) -> None:
        """Send a claimed batch, recording outcomes every `batch_size` messages.

        Claimed but unsent rows are never a duplicate risk (a crash puts them back untried); only
        accepted-but-unrecorded messages are, so those are what the in-flight window bounds.
        """
        shared = self.shared
        unrecorded: list[tuple[ledger.Claimed, decisions.Decision]] = []
        handled = recorded = 0
        why: str | None = None  # why the rest goes back untried, when the relay is at fault
        try:
            for item in batch:
                if shared.stopping():
                    break  # finish in-flight work only; the rest is released below
                self._keep_lease(batch[recorded:])
                decision = self._handle(item, holder(item.delivery_id))
                handled += 1
                if decision is not None:
                    unrecorded.append((item, decision))
                if len(unrecorded) >= shared.batch_size:
                    self._record(unrecorded, [])
                    unrecorded, recorded = [], handled
        except RelayUnavailable as exc:
            why = f"{Stage.CONNECTION}: {exc}"
            raise
        finally:
            self._record(unrecorded, batch[handled:], why)

    def _keep_lease(self, held: list[ledger.Claimed]) -> None:
        """Renew the lease of what this connection holds once a third of it has passed."""
        if time.monotonic() - self.renewed < self.lease.total_seconds() / 3:
            return
        ids = [c.delivery_id for c in held]
        until = datetime.now(UTC) + self.lease
        self.shared.write(
            lambda session: ledger.renew(session, ids, owner=self.shared.owner, until=until)
        )
        self.renewed = time.monotonic()

    def _handle(self, item: ledger.Claimed, found: Holder | None) -> decisions.Decision | None:
        """Send one delivery if it is still ours and still due; None: leave the row alone."""
        if found is None:
            return None  # the row is gone: the reader was erased; never send
        status, owner = found
        if status == DeliveryStatus.SKIPPED or (not item.active and owner == self.shared.owner):
            # The reader left (or bounced) after the edition was settled.
            return decisions.skipped(item, "not subscribed any more")
        if status != DeliveryStatus.SENDING or owner != self.shared.owner:
            log.warning("delivery %d was taken over by another sender; not sent", item.delivery_id)
            return None
        return self._send_one(item)

    def _record(
        self,
        decided: list[tuple[ledger.Claimed, decisions.Decision]],
        untried: list[ledger.Claimed],
        why: str | None = None,
    ) -> None:
        """Outcomes, bounced readers and untried deliveries, in one transaction."""
        shared = self.shared
        if not decided and not untried:
            return
        outcomes = [decision.outcome for _, decision in decided]
        bounced = [item.subscriber_id for item, decision in decided if decision.bounced]
        now = shared.clock.now()

        def write(session: Session) -> None:
            ledger.record(session, outcomes, owner=shared.owner, now=now)
            subscriptions.mark_bounced(
                session, bounced, now, source=consent.Source.RELAY, detail="refused by the relay"
            )
            ledger.release(session, untried, owner=shared.owner, reason=why)

        shared.write(write)
        shared.progress.add(outcomes)

    def _build(self, item: ledger.Claimed) -> tuple[str, bytes]:
        shared = self.shared
        message = shared.message(item.edition_id)
        url = links.unsubscribe_url(shared.settings.base_url, shared.keys, item.token_id)
        recipient = Recipient(item.delivery_id, item.email, item.name, url)
        return wire_address(item.email), message.build(recipient, datetime.now(UTC))

    def _send_one(self, item: ledger.Claimed) -> decisions.Decision:
        shared = self.shared
        shared.pacer.wait()
        try:
            address, data = self._build(item)
        except Exception as exc:  # one reader's message fails only that reader
            reason = f"the message could not be built: {type(exc).__name__}: {exc}"
            log.warning("delivery %d failed: %s", item.delivery_id, reason)
            return decisions.failed(item, reason)
        envelope = Envelope(self._sender(item), address)
        try:
            verdict = self.transport.send(envelope, data)
        except RelayUnavailable:
            raise
        except Exception as exc:  # a fault of ours mid-hand-over: this reader only
            reason = f"unexpected error while handing over: {type(exc).__name__}: {exc}"
            log.warning("delivery %d failed: %s", item.delivery_id, reason)
            self.transport.close()
            return decisions.failed(item, reason)
        if verdict.throttled:
            shared.pacer.throttled()
        shared.breaker.see(address, item, verdict)  # raises RelayRefuses when it refuses all
        return decisions.decide(item, verdict, shared.clock.now(), self.max_age, self.rng)

    def _sender(self, item: ledger.Claimed) -> str:
        """The return path: a VERP address naming the delivery, or the From address."""
        return self.shared.message(item.edition_id).envelope_sender(item.delivery_id)


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
        family: str | None = None,
        caps_share: CapsShare | None = None,
    ) -> None:
        connections = settings.smtp_connections
        if settings.smtp is None:
            connections = 1  # the outbox is a folder; more threads gain nothing
        self.connections = connections
        self.transport_factory = transport_factory or (lambda: make_transport(settings))
        self.shared = Shared(
            factory=factory,
            settings=settings,
            senders=senders,
            clock=clock,
            owner=new_owner(family),
            connections=connections,
            batch_size=max(1, settings.inflight_window // connections),
            pacer=Pacer(settings.smtp_rate or None),
            caps=Caps(factory, settings, clock.now, caps_share),
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
        self.shared.breaker = Breaker()
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
            if isinstance(errors[0], RelayUnavailable):
                self._forgive(errors[0])
            raise errors[0]
        if on_batch is not None:
            on_batch(self.shared.progress)
        if self.shared.capped:
            raise CapReached(_("the hourly or daily sending cap is reached"))
        self.shared.write(
            lambda session: ledger_editions.finish_editions(session, self.shared.clock.now())
        )

    def _forgive(self, refusal: RelayUnavailable) -> None:
        """The relay refused everyone: the streak's tries do not count against its readers."""
        streak = self.shared.breaker.streak()
        ids = [c.delivery_id for c in streak]
        fresh = [c.delivery_id for c in streak if c.fresh]
        self.shared.write(lambda session: ledger.forgive(session, ids, fresh, str(refusal)))


def deliver(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    *,
    on_batch: Callable[[Progress], None] | None = None,
    transport_factory: Callable[[], Transport] | None = None,
    stop: threading.Event | None = None,
    senders: Senders | None = None,
    family: str | None = None,
    caps_share: CapsShare | None = None,
) -> DeliveryReport:
    """Send every due delivery of every edition in this process; RelayUnavailable or CapReached
    stop the run. (`processes.deliver` spreads it over several; they pass the last three.)

    A dropped database connection starts the run again as a new sender (its claims are taken
    back); DatabaseUnavailable when the database stays away.
    """
    senders = senders or senders_for(engine)
    progress = Progress()
    recovered = 0
    patience = settings.database_patience_seconds
    deadline = time.monotonic() + patience
    with senders.exclusive():
        while True:
            handled = progress.handled
            run = SendingProcess(
                senders,
                factory,
                settings,
                clock,
                transport_factory=transport_factory,
                stop=stop,
                progress=progress,
                family=family,
                caps_share=caps_share,
            )
            try:
                with senders.alive(run.shared.owner) as proof:
                    run.shared.alive_check = proof.check
                    owner = run.shared.owner
                    recovered += retrying(
                        lambda: senders.recover(factory, owner),  # noqa: B023
                        patience=patience,
                    )
                    run.run_once(on_batch)
                break
            except DBAPIError as exc:
                if progress.handled > handled:  # it went on since the last fault: a new outage
                    deadline = time.monotonic() + patience
                if not is_connection_fault(exc) or time.monotonic() > deadline:
                    said = _("the database is unreachable: {reason}")
                    raise DatabaseUnavailable(said.format(reason=describe_error(exc))) from None
                log.warning("lost the database connection (%s); going on", describe_error(exc))
                engine.dispose()
    report = retrying(lambda: _report(factory), patience=patience)
    return DeliveryReport(progress, recovered, report[0], report[1])


def _report(factory: sessionmaker[Session]) -> tuple[int, datetime | None]:
    with factory() as session:
        next_retry = next_retry_at(session)
    return unfinished_count(factory), next_retry


def retry_edition(
    session: Session, edition_id: int, *, include_bounced: bool, now: datetime
) -> tuple[int, int]:
    """An edition's failed deliveries back in the queue (after the relay was fixed).

    Readers marked bounced by this edition stay off the list unless `include_bounced`, for when
    the relay, not the address, was at fault. Returns (requeued, readers restored).
    """
    restored = 0
    if include_bounced:
        restored = subscriptions.restore_bounced(
            session, ledger_editions.failed_readers(edition_id), now
        )
    return ledger_editions.requeue_failed(session, edition_id), restored
