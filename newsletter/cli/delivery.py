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

from newsletter.cli._i18n import command
from newsletter.cli._runtime import Runtime, console, local, log, parse_now, pass_runtime
from newsletter.cli.check import refuse_to_send_wrong
from newsletter.delivery.engine import CapReached, retry_edition
from newsletter.delivery.processes import deliver, work
from newsletter.delivery.run import Clock, DeliveryReport, unfinished_count
from newsletter.delivery.run import Progress as SendProgress
from newsletter.delivery.senders import SenderBusy
from newsletter.delivery.share import process_count
from newsletter.i18n import _
from newsletter.mail.transport import RelayRefuses, RelayUnavailable
from newsletter.publishing.editions import EditionError, Settled, SettleOutcome, settle
from newsletter.settings import Settings
from newsletter.storage.db import retrying, transaction
from newsletter.storage.models import Edition

LOG_EVERY_SECONDS = 5.0


def describe_settled(settled: Settled, settings: Settings) -> None:
    """Say plainly what settling found."""
    if settled.scheduled_at is None:
        click.echo(_("No scheduled send time in the past year: nothing to settle."))
        return
    when = local(settled.scheduled_at, settings)
    outcome = settled.outcome
    if outcome is SettleOutcome.MISSED:
        local_iso = settled.scheduled_at.astimezone(settings.zone).isoformat()
        hours = settings.misfire_grace_hours
        click.echo(
            _(
                "Missed: the send of {when} is more than {hours:g} hours ago (the grace); that "
                "week is skipped and its issue stays queued.\n"
                "To send it anyway: newsletter send --now {moment}"
            ).format(when=when, hours=hours, moment=local_iso),
            err=True,
        )
    elif outcome is SettleOutcome.NOTHING_QUEUED:
        click.echo(
            _(
                "Warning: nothing is queued for {when}; no email this week. "
                "Queue issues with: newsletter issues queue issues/*.md"
            ).format(when=when),
            err=True,
        )
    elif outcome is SettleOutcome.BEHIND:
        click.echo(
            _(
                "Nothing settled: --now is before the newest edition, {edition} of {when} "
                "(“{subject}”); time only moves forward. Due retries still go out."
            ).format(edition=settled.edition_id, when=when, subject=settled.subject),
            err=True,
        )
    elif outcome is SettleOutcome.CREATED:
        click.echo(
            _(
                "{when}: edition {edition} settled: {theme}, “{subject}”, {count} recipients."
            ).format(
                when=when,
                edition=settled.edition_id,
                theme=settled.theme,
                subject=settled.subject,
                count=settled.recipients,
            )
        )
    else:
        click.echo(
            _("{when}: edition {edition} was settled before; finishing it.").format(
                when=when, edition=settled.edition_id
            )
        )
    for theme in settled.skipped_themes:
        if outcome in (SettleOutcome.CREATED, SettleOutcome.NOTHING_QUEUED):
            click.echo(
                _("Warning: nothing queued for the theme {theme}; skipped this week.").format(
                    theme=theme
                ),
                err=True,
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
            TextColumn(_("sending")),
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
        click.echo(
            _("Took back {count} deliveries left unfinished by a stopped sender.").format(
                count=report.recovered
            )
        )
    if p.handled:
        # The largest process: this one, or one of the sending processes it ran (reaped by now).
        peak = max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        click.echo(
            _(
                "Sent {sent}, failed {failed}, to retry {retry}, skipped {skipped} "
                "({rate:.0f} messages/s, peak memory {peak} KiB)."
            ).format(
                sent=p.sent,
                failed=p.failed,
                retry=p.retry,
                skipped=p.skipped,
                rate=p.rate(),
                peak=peak,
            )
        )
        if settings.smtp is None:
            click.echo(
                _("The messages are .eml files in {folder}/.").format(folder=settings.outbox_dir)
            )
    else:
        click.echo(_("Nothing to deliver right now."))
    if report.unfinished:
        when = (
            _(" at {when}").format(when=local(report.next_retry_at, settings))
            if report.next_retry_at
            else ""
        )
        click.echo(
            _(
                "{count} deliveries are not finished; the next retry is due{when}. The scheduler "
                "or `newsletter worker` sends them; so does the next `newsletter send`."
            ).format(count=report.unfinished, when=when)
        )


def stop_on_signals() -> threading.Event:
    """SIGTERM and Ctrl-C set the event: in-flight messages are finished and recorded, the
    sending processes end, and the command reports what it did."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s: finishing in-flight messages", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    return stop


@command()
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
        click.echo(_("Error: {message}").format(message=exc), err=True)
    stop = stop_on_signals()
    try:
        total = retrying(
            lambda: unfinished_count(factory), patience=settings.database_patience_seconds
        )
        with progress_reporter(total) as on_batch:
            report = deliver(rt.engine, factory, settings, clock, on_batch=on_batch, stop=stop)
    except SenderBusy as exc:
        raise click.ClickException(str(exc)) from None
    except CapReached as exc:
        click.echo(
            _(
                "{reason}: {count} deliveries wait; the scheduler, a worker or a later "
                "`newsletter send` goes on when the cap allows."
            ).format(reason=exc, count=unfinished_count(factory))
        )
        return
    except RelayRefuses as exc:
        raise click.ClickException(
            _(
                "{reason}. Nothing more was sent; {count} deliveries wait (the tries do not "
                "count against the readers). Fix the relay and run `newsletter send` again."
            ).format(reason=exc, count=unfinished_count(factory))
        ) from None
    except RelayUnavailable as exc:
        raise click.ClickException(
            _(
                "{reason}\nNothing more was sent; {count} deliveries wait. "
                "Fix the relay and run `newsletter send` again."
            ).format(reason=exc, count=unfinished_count(factory))
        ) from None
    describe_report(report, settings)
    if unsettled is not None:
        sys.exit(1)


@command()
@click.option("--now", "now_text", metavar="ISO-8601", help="Run the clock from this moment.")
@pass_runtime
def worker(rt: Runtime, now_text: str | None) -> None:
    """Claim and send due deliveries until stopped (SIGTERM: finish in-flight messages, exit 0)."""
    rt.require_secret_key()
    refuse_to_send_wrong(rt.settings)
    settings = rt.settings
    factory = rt.factory()
    stop = stop_on_signals()
    clock = Clock(parse_now(now_text, settings))
    log.info(
        "worker started with %d connection(s) in %d process(es) to %s",
        settings.smtp_connections,
        process_count(settings),
        settings.smtp.host if settings.smtp else "the outbox",
    )
    try:
        progress = work(
            rt.engine, factory, settings, stop, clock=clock, on_batch=progress_logger(None)
        )
    except SenderBusy as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        _(
            "Worker stopped: sent {sent}, failed {failed}, to retry {retry}, skipped {skipped}."
        ).format(
            sent=progress.sent,
            failed=progress.failed,
            retry=progress.retry,
            skipped=progress.skipped,
        )
    )


@command()
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
            raise click.ClickException(_("there is no edition {edition}").format(edition=edition))
        requeued, restored = retry_edition(
            session, edition, include_bounced=include_bounced, now=datetime.now(UTC)
        )
    click.echo(
        _("Put {count} failed deliveries of edition {edition} back in the queue.").format(
            count=requeued, edition=edition
        )
    )
    if restored:
        click.echo(
            _("{count} readers marked bounced by this edition are subscribed again.").format(
                count=restored
            )
        )
    if requeued:
        click.echo(_("`newsletter send`, the scheduler or a worker will send them."))
