"""`newsletter send` and `newsletter status`: the weekly job and what it did."""

from __future__ import annotations

import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from rich import box
from rich.table import Table
from sqlalchemy import func, select

from newsletter.cli._runtime import Runtime, console, local, log, parse_now, pass_runtime
from newsletter.cli.check import refuse_to_send_wrong
from newsletter.cli.reports import show_reports
from newsletter.delivery import run as run_reads
from newsletter.delivery.engine import CapReached, deliver, retry_edition
from newsletter.delivery.run import Clock, DeliveryReport, unfinished_count
from newsletter.delivery.run import Progress as SendProgress
from newsletter.delivery.senders import SenderBusy
from newsletter.delivery.worker import work
from newsletter.mail.transport import RelayRefuses, RelayUnavailable
from newsletter.publishing.editions import EditionError, Settled, SettleOutcome, settle
from newsletter.settings import Settings
from newsletter.storage.db import retrying, transaction
from newsletter.storage.models import Delivery, DeliveryStatus, Edition

LOG_EVERY_SECONDS = 5.0


def describe_settled(settled: Settled, settings: Settings) -> None:
    """Say plainly what settling found."""
    if settled.scheduled_at is None:
        click.echo("No scheduled send time in the past year: nothing to settle.")
        return
    when = local(settled.scheduled_at, settings)
    outcome = settled.outcome
    if outcome is SettleOutcome.MISSED:
        local_iso = settled.scheduled_at.astimezone(settings.zone).isoformat()
        hours = settings.misfire_grace_hours
        click.echo(
            f"Missed: the send of {when} is more than {hours:g} hours ago (the grace); that week "
            "is skipped and its issue stays queued.\n"
            f"To send it anyway: newsletter send --now {local_iso}",
            err=True,
        )
    elif outcome is SettleOutcome.NOTHING_QUEUED:
        click.echo(
            f"Warning: nothing is queued for {when}; no email this week. "
            "Queue issues with: newsletter issues queue issues/*.md",
            err=True,
        )
    elif outcome is SettleOutcome.BEHIND:
        click.echo(
            f"Nothing settled: --now is before the newest edition, {settled.edition_id} of "
            f"{when} (“{settled.subject}”); time only moves forward. Due retries still go out.",
            err=True,
        )
    elif outcome is SettleOutcome.CREATED:
        click.echo(
            f"{when}: edition {settled.edition_id} settled: {settled.theme}, "
            f"“{settled.subject}”, {settled.recipients} recipients."
        )
    else:
        click.echo(f"{when}: edition {settled.edition_id} was settled before; finishing it.")
    for theme in settled.skipped_themes:
        if outcome in (SettleOutcome.CREATED, SettleOutcome.NOTHING_QUEUED):
            click.echo(
                f"Warning: nothing queued for the theme {theme}; skipped this week.", err=True
            )


@contextmanager
def progress_reporter(total: int) -> Iterator[Callable[[SendProgress], None]]:
    """A rich progress bar on a terminal, a log line every few seconds otherwise."""
    if console.is_terminal and total > 0:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.0f} msg/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("send", total=total, rate=0.0)

            def update(p: SendProgress) -> None:
                bar.update(task, completed=p.handled, rate=p.rate())

            yield update
        return
    yield progress_logger(total)


def progress_logger(total: int | None) -> Callable[[SendProgress], None]:
    """A log line every few seconds while something moves: sent, failed, rate, time left."""
    last = [time.monotonic(), 0]

    def log_line(p: SendProgress) -> None:
        if p.handled != last[1] and time.monotonic() - last[0] >= LOG_EVERY_SECONDS:
            last[0], last[1] = time.monotonic(), p.handled
            rate = p.rate()
            left = max(total - p.handled, 0) if total is not None else 0
            eta = f", about {left / rate:.0f} s left" if rate > 0 and left else ""
            log.info(
                "sent %d, failed %d, retry %d, skipped %d, %.0f msg/s%s",
                p.sent,
                p.failed,
                p.retry,
                p.skipped,
                rate,
                eta,
            )

    return log_line


def describe_report(report: DeliveryReport, settings: Settings) -> None:
    p = report.progress
    if report.recovered:
        click.echo(f"Took back {report.recovered} deliveries left unfinished by a stopped sender.")
    if p.handled:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        click.echo(
            f"Sent {p.sent}, failed {p.failed}, to retry {p.retry}, skipped {p.skipped} "
            f"({p.rate():.0f} messages/s, peak memory {peak} KiB)."
        )
        if settings.smtp is None:
            click.echo(f"The messages are .eml files in {settings.outbox_dir}/.")
    else:
        click.echo("Nothing to deliver right now.")
    if report.unfinished:
        when = f" at {local(report.next_retry_at, settings)}" if report.next_retry_at else ""
        click.echo(
            f"{report.unfinished} deliveries are not finished; the next retry is due{when}. "
            "The scheduler or `newsletter worker` sends them; so does the next `newsletter send`."
        )


@click.command()
@click.option("--now", "now_text", metavar="ISO-8601", help="Run the job as of this moment.")
@pass_runtime
def send(rt: Runtime, now_text: str | None) -> None:
    """The weekly job: settle this week's edition if due, then deliver what is due."""
    rt.require_secret_key()
    refuse_to_send_wrong(rt.settings)
    settings = rt.settings
    factory = rt.factory()
    clock = Clock(parse_now(now_text, settings))
    unsettled: EditionError | None = None
    try:
        # Settling twice is harmless (one edition per time), so a dropped connection retries it.
        settled = retrying(
            lambda: settle(factory, settings, clock.now()),
            patience=settings.database_patience_seconds,
        )
        describe_settled(settled, settings)
    except EditionError as exc:
        unsettled = exc  # what was due before still goes out; the exit status says it
        click.echo(f"Error: {exc}", err=True)
    try:
        total = retrying(
            lambda: unfinished_count(factory), patience=settings.database_patience_seconds
        )
        with progress_reporter(total) as on_batch:
            report = deliver(rt.engine, factory, settings, clock, on_batch=on_batch)
    except SenderBusy as exc:
        raise click.ClickException(str(exc)) from None
    except CapReached as exc:
        click.echo(
            f"{exc}: {unfinished_count(factory)} deliveries wait; the scheduler, a worker "
            "or a later `newsletter send` goes on when the cap allows."
        )
        return
    except RelayRefuses as exc:
        raise click.ClickException(
            f"{exc}. Nothing more was sent; {unfinished_count(factory)} deliveries wait "
            "(the tries do not count against the readers). Fix the relay and run "
            "`newsletter send` again."
        ) from None
    except RelayUnavailable as exc:
        raise click.ClickException(
            f"{exc}\nNothing more was sent; {unfinished_count(factory)} deliveries wait. "
            "Fix the relay and run `newsletter send` again."
        ) from None
    describe_report(report, settings)
    if unsettled is not None:
        sys.exit(1)


@click.command()
@click.argument("edition", required=False, type=int)
@pass_runtime
def status(rt: Runtime, edition: int | None) -> None:
    """Each edition's deliveries per state, and the failure reasons grouped by reply."""
    settings = rt.settings
    with rt.factory()() as session:
        query = select(Edition).order_by(Edition.scheduled_at.desc())
        if edition is not None:
            query = query.where(Edition.id == edition)
        editions = session.scalars(query.limit(1 if edition else 20)).all()
        if edition is not None and not editions:
            raise click.ClickException(f"there is no edition {edition}")
        table = Table(title="Editions", box=box.SIMPLE_HEAD)
        states = list(DeliveryStatus)
        for column in ("edition", "send time", "theme", "state", *[s.value for s in states]):
            numeric = column in {s.value for s in states}
            table.add_column(column, justify="right" if numeric else "left")
        for item in editions:
            per_state = run_reads.counts(session, item.id)
            table.add_row(
                str(item.id),
                item.scheduled_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M"),
                item.theme,
                item.status.value,
                *[str(per_state[s]) for s in states],
            )
        console.print(table)
        reasons = select(Delivery.last_code, Delivery.last_reply, func.count()).where(
            Delivery.status.in_([DeliveryStatus.FAILED, DeliveryStatus.RETRY])
        )
        if edition is not None:
            reasons = reasons.where(Delivery.edition_id == edition)
        else:
            reasons = reasons.where(Delivery.edition_id.in_([e.id for e in editions]))
        grouped = session.execute(
            reasons.group_by(Delivery.last_code, Delivery.last_reply)
            .order_by(func.count().desc())
            .limit(30)
        ).all()
    if grouped:
        failures = Table(title="Failures and retries by reply")
        for column in ("code", "reply", "deliveries"):
            failures.add_column(column)
        for code, reply, count in grouped:
            failures.add_row(str(code or "—"), reply or "", str(count))
        console.print(failures)
    if edition is not None:
        show_reports(rt, edition)


@click.command()
@click.option("--now", "now_text", metavar="ISO-8601", help="Run the clock from this moment.")
@pass_runtime
def worker(rt: Runtime, now_text: str | None) -> None:
    """Claim and send due deliveries until stopped (SIGTERM: finish in-flight messages, exit 0)."""
    rt.require_secret_key()
    refuse_to_send_wrong(rt.settings)
    settings = rt.settings
    factory = rt.factory()
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: finishing in-flight messages", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    clock = Clock(parse_now(now_text, settings))
    log.info(
        "worker started with %d connection(s) to %s",
        settings.smtp_connections,
        settings.smtp.host if settings.smtp else "the outbox",
    )
    try:
        progress = work(
            rt.engine, factory, settings, stop, clock=clock, on_batch=progress_logger(None)
        )
    except SenderBusy as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Worker stopped: sent {progress.sent}, failed {progress.failed}, "
        f"to retry {progress.retry}, skipped {progress.skipped}."
    )


@click.command()
@click.argument("edition", type=int)
@click.option(
    "--include-bounced",
    is_flag=True,
    help="Also put back readers this edition marked bounced (when the relay was at fault).",
)
@pass_runtime
def retry(rt: Runtime, edition: int, include_bounced: bool) -> None:
    """Put an edition's failed deliveries back in the queue, after the relay is fixed."""
    factory = rt.factory()
    with transaction(factory) as session:
        if session.get(Edition, edition) is None:
            raise click.ClickException(f"there is no edition {edition}")
        requeued, restored = retry_edition(
            session, edition, include_bounced=include_bounced, now=datetime.now(UTC)
        )
    click.echo(f"Put {requeued} failed deliveries of edition {edition} back in the queue.")
    if restored:
        click.echo(f"{restored} readers marked bounced by this edition are subscribed again.")
    if requeued:
        click.echo("`newsletter send`, the scheduler or a worker will send them.")
