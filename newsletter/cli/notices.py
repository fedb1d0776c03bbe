"""`newsletter notices`: what the scheduler told the author (or logged), and when."""

from __future__ import annotations

import click
from rich import box
from rich.table import Table

from newsletter.cli._i18n import command
from newsletter.cli._runtime import Runtime, console, local, pass_runtime
from newsletter.cli._terminal import cell
from newsletter.i18n import _
from newsletter.notices import record


@command()
@click.option(
    "--limit",
    default=30,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Show at most this many notes.",
)
@pass_runtime
def notices(rt: Runtime, limit: int) -> None:
    """List the notes the scheduler sent you (or logged), newest first.

    The queue running dry, a skipped Sunday, a send stopped by the relay, and the report after
    each letter; mailed to NEWSLETTER_AUTHOR_EMAIL, or only logged when it is unset.
    """
    with rt.factory()() as session:
        found = record.latest(session, limit)
    if not found:
        click.echo(_("No notes yet."))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in (_("when"), _("note"), _("to"), _("state")):
        table.add_column(column, overflow="fold")
    for notice in found:
        if notice.recipient is None:
            state = _("logged")
        elif notice.sent_at is not None:
            state = _("sent")
        else:
            state = _("not sent: {reason}").format(reason=notice.last_error or _("not tried yet"))
        table.add_row(
            local(notice.created_at, rt.settings),
            cell(notice.subject),
            cell(notice.recipient or _("the log only")),
            cell(state),
        )
    console.print(table)
