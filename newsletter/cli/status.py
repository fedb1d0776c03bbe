"""`newsletter status`: each edition's deliveries per state, and why some failed or wait."""

from __future__ import annotations

from collections.abc import Sequence

import click
from rich import box
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.cli._i18n import command
from newsletter.cli._runtime import Runtime, console, pass_runtime
from newsletter.cli._terminal import cell
from newsletter.cli.reports import show_reports
from newsletter.delivery import run as run_reads
from newsletter.i18n import N_, _
from newsletter.storage.models import Delivery, DeliveryStatus, Edition, EditionStatus

# The states as people read them (and never cut short in a table).
DELIVERY_WORDS = {
    DeliveryStatus.PENDING: N_("pending"),
    DeliveryStatus.SENDING: N_("sending"),
    DeliveryStatus.SENT: N_("sent"),
    DeliveryStatus.RETRY: N_("retry"),
    DeliveryStatus.FAILED: N_("failed"),
    DeliveryStatus.SKIPPED: N_("skipped"),
}
EDITION_WORDS = {EditionStatus.SENDING: N_("sending"), EditionStatus.DONE: N_("done")}


def _deliveries(per_state: dict[DeliveryStatus, int]) -> str:
    """'sent 120' and the like, one state a line, only the states that occur."""
    lines = [f"{_(DELIVERY_WORDS[state])} {n}" for state, n in per_state.items() if n]
    return "\n".join(lines) or _("none")


def _editions_table(rt: Runtime, session: Session, editions: Sequence[Edition]) -> Table:
    """One row per edition; it fits 80 columns: the subject wraps, states are never cut."""
    table = Table(title=_("Editions"), box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column(_("send time"), no_wrap=True)
    table.add_column(_("subject (theme)"), ratio=1, overflow="fold")
    widest = max(len(_(word)) for word in EDITION_WORDS.values())
    table.add_column(_("state"), no_wrap=True, min_width=widest)
    table.add_column(_("deliveries"), no_wrap=True)
    for item in editions:
        table.add_row(
            str(item.id),
            item.scheduled_at.astimezone(rt.settings.zone).strftime("%Y-%m-%d %H:%M"),
            cell(f"{item.subject} ({item.theme})"),
            _(EDITION_WORDS[item.status]),
            _deliveries(run_reads.counts(session, item.id)),
        )
    return table


@command()
@click.argument("edition", required=False, type=int)
@pass_runtime
def status(rt: Runtime, edition: int | None) -> None:
    """Each edition's subject and deliveries per state, and why deliveries failed or wait.

    The reasons are grouped by the relay's reply; deliveries handed back because the relay could
    not be reached (or refused the connection) say so too.
    """
    with rt.factory()() as session:
        query = select(Edition).order_by(Edition.scheduled_at.desc())
        if edition is not None:
            query = query.where(Edition.id == edition)
        editions = session.scalars(query.limit(1 if edition else 20)).all()
        if edition is not None and not editions:
            raise click.ClickException(_("there is no edition {edition}").format(edition=edition))
        console.print(_editions_table(rt, session, editions))
        reasons = select(Delivery.last_code, Delivery.last_reply, func.count()).where(
            Delivery.status.in_([DeliveryStatus.FAILED, DeliveryStatus.RETRY]),
            Delivery.edition_id.in_([e.id for e in editions]),
        )
        grouped = session.execute(
            reasons.group_by(Delivery.last_code, Delivery.last_reply)
            .order_by(func.count().desc())
            .limit(30)
        ).all()
    if grouped:
        failures = Table(title=_("Failures and retries by reply"), box=box.SIMPLE_HEAD)
        failures.add_column(_("code"), no_wrap=True)
        failures.add_column(_("reply"), ratio=1, overflow="fold")
        failures.add_column(_("deliveries"), justify="right", no_wrap=True)
        for code, reply, count in grouped:
            failures.add_row(str(code or "—"), cell(reply or _("no reply recorded")), str(count))
        console.print(failures)
    if edition is not None:
        show_reports(rt, edition)
