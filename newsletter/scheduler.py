"""The long-running scheduler: the weekly job on its cron, retries every minute, the notes to
the author every hour (and right after the weekly job), the nightly purge, and the bounce
mailbox every few minutes when NEWSLETTER_BOUNCE_IMAP_URL is set.

No job raises into APScheduler: a relay that refuses makes the minute's retries wait longer
each time (never spin), and the author hears of it once; a database that is away is logged in
one line and tried again. Every job reads the time from `Jobs.now`, so a test can run weeks of
jobs on a fake clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.delivery import bounces
from newsletter.delivery.engine import deliver
from newsletter.delivery.run import Clock, DeliveryReport
from newsletter.delivery.senders import SenderBusy
from newsletter.delivery.worker import Backoff
from newsletter.mail.imap import MailboxUnavailable
from newsletter.mail.transport import RelayUnavailable
from newsletter.notices import run as notices
from newsletter.publishing import planning
from newsletter.publishing.editions import EditionError, Settled, SettleOutcome, settle
from newsletter.readers import signup
from newsletter.settings import Settings
from newsletter.storage.db import DatabaseUnavailable, describe_error, transaction

log = logging.getLogger(__name__)

WEEKLY_JOB_ID = "weekly-send"
RETRY_JOB_ID = "deliver-due"
RETRY_INTERVAL_SECONDS = 60
PURGE_JOB_ID = "purge-unconfirmed"
BOUNCES_JOB_ID = "bounces-fetch"
BOUNCES_INTERVAL_MINUTES = 5
NOTICES_JOB_ID = "notes-to-the-author"


def run_job(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, clock: Clock
) -> tuple[Settled, DeliveryReport]:
    """The weekly job: settle this week's edition if due, then deliver what is due."""
    settled = settle(factory, settings, clock.now())
    return settled, deliver(engine, factory, settings, clock)


class Jobs:
    """The scheduler's jobs, each a plain call that never raises into APScheduler."""

    def __init__(
        self,
        engine: Engine,
        factory: sessionmaker[Session],
        settings: Settings,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.factory = factory
        self.settings = settings
        self.now = now
        # While the relay refuses or is away, the minute's retries wait longer each time.
        self.relay = Backoff(RETRY_INTERVAL_SECONDS)
        self.relay_not_before = 0.0

    def _relay_failed(self, what: str, exc: Exception) -> None:
        wait = self.relay.next_wait()
        self.relay_not_before = time.monotonic() + wait
        log.warning("%s: %s; trying again in %.0f s", what, exc, wait)
        self._guarded("telling the author", notices.relay_stopped, str(exc))

    def _guarded(self, what: str, job: Callable[..., object], *args: object) -> None:
        """Run a notes job; the database or a template failing is one log line."""
        try:
            job(self.factory, self.settings, self.now(), *args)
        except (SQLAlchemyError, DatabaseUnavailable) as exc:
            log.warning("%s: the database: %s; the next run tries again", what, describe_error(exc))

    def weekly(self) -> None:
        self._weekly()
        self.notices()

    def _weekly(self) -> None:
        try:
            settled, report = run_job(self.engine, self.factory, self.settings, Clock(self.now()))
        except RelayUnavailable as exc:
            self._relay_failed("weekly job", exc)
            return
        except EditionError as exc:
            log.warning("weekly job: %s", exc)
            self._guarded("telling the author", notices.unbuildable, str(exc))
            return
        except SenderBusy as exc:
            log.warning("weekly job: %s", exc)
            return
        except SQLAlchemyError as exc:
            log.warning(
                "weekly job: the database: %s; the next run tries again", describe_error(exc)
            )
            return
        except DatabaseUnavailable as exc:
            log.warning("weekly job: %s; the next run tries again", exc)
            return
        self.relay.reset()
        if settled.outcome is SettleOutcome.MISSED:
            log.warning("missed the send of %s: past the grace", settled.scheduled_at)
        elif settled.outcome is SettleOutcome.NOTHING_QUEUED:
            log.warning("nothing queued for %s: no email this week", settled.scheduled_at)
        for theme in settled.skipped_themes:
            log.warning("nothing queued for the theme %s; skipped this week", theme)
        log.info(
            "weekly job: edition %s, sent %d, failed %d, to retry %d",
            settled.edition_id,
            report.progress.sent,
            report.progress.failed,
            report.progress.retry,
        )

    def deliver_due(self) -> None:
        if time.monotonic() < self.relay_not_before:
            return  # backing off: the relay refused or was away
        try:
            report = deliver(self.engine, self.factory, self.settings, Clock(self.now()))
        except RelayUnavailable as exc:
            self._relay_failed("delivering retries", exc)
            return
        except SenderBusy as exc:
            log.warning("delivering retries: %s", exc)
            return
        except (SQLAlchemyError, DatabaseUnavailable) as exc:
            log.warning("delivering retries: the database: %s", describe_error(exc))
            return
        self.relay.reset()
        if report.progress.handled:
            log.info(
                "delivered due messages: sent %d, failed %d, to retry %d",
                report.progress.sent,
                report.progress.failed,
                report.progress.retry,
            )

    def notices(self) -> None:
        """The notes to the author that are due: dry queue, skipped Sunday, reports."""
        self._guarded("notes to the author", notices.tick)

    def purge_unconfirmed(self) -> None:
        """Delete sign-ups never confirmed within NEWSLETTER_PENDING_RETENTION_DAYS."""
        try:
            with transaction(self.factory) as session:
                purged = signup.purge(session, self.settings, self.now())
        except SQLAlchemyError as exc:
            log.warning(
                "purging unconfirmed sign-ups: %s; tomorrow's run tries again", describe_error(exc)
            )
            return
        if purged:
            log.info("purged %d unconfirmed sign-up%s", purged, "" if purged == 1 else "s")


def fetch_bounces(factory: sessionmaker[Session], settings: Settings) -> None:
    """`newsletter bounces fetch` as a job: read the bounce mailbox; never raises."""
    try:
        fetched = bounces.fetch(factory, settings, datetime.now(UTC))
    except (MailboxUnavailable, SQLAlchemyError) as exc:
        log.warning("reading the bounce mailbox: %s; the next run tries again", exc)
        return
    if any(fetched.moved.values()):
        log.info("bounce mailbox: %s", {k.value: n for k, n in fetched.moved.items() if n})


def build_scheduler(jobs: Jobs, settings: Settings) -> BlockingScheduler:
    """APScheduler 3 with the weekly cron: coalescing, one run at a time, the misfire grace."""
    grace_seconds = int(planning.grace(settings).total_seconds())
    scheduler = BlockingScheduler(
        # One worker thread: the jobs never overlap, so on SQLite they never contend.
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace_seconds},
        timezone=settings.zone,
    )
    scheduler.add_job(
        jobs.weekly,
        planning.trigger(settings),
        id=WEEKLY_JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=grace_seconds,
    )
    # A scheduler started after 07:00 still sends this week's edition, within the grace:
    # the job itself settles only the latest scheduled time, and only once.
    scheduler.add_job(jobs.weekly, DateTrigger(datetime.now(UTC)), id="catch-up")
    scheduler.add_job(
        jobs.deliver_due, IntervalTrigger(seconds=RETRY_INTERVAL_SECONDS), id=RETRY_JOB_ID
    )
    scheduler.add_job(jobs.purge_unconfirmed, CronTrigger(hour=3, minute=17), id=PURGE_JOB_ID)
    if settings.bounce_imap_url is not None:
        trigger = IntervalTrigger(minutes=BOUNCES_INTERVAL_MINUTES)
        scheduler.add_job(fetch_bounces, trigger, args=(jobs.factory, settings), id=BOUNCES_JOB_ID)
    scheduler.add_job(jobs.notices, CronTrigger(minute=5), id=NOTICES_JOB_ID)
    return scheduler
