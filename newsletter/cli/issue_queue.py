"""`newsletter issues list|withdraw|pin|plan`: the queue as the author sees it and steers it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click
from rich import box
from rich.table import Table
from sqlalchemy import select

from newsletter.cli._i18n import command
from newsletter.cli._runtime import Runtime, console, day, local, parse_now, pass_runtime
from newsletter.cli._terminal import cell, printable
from newsletter.i18n import _, ngettext
from newsletter.publishing import control, planning
from newsletter.storage.db import transaction
from newsletter.storage.models import Edition, Issue, IssueStatus

PLAN_LIMIT = 520


def shown_path(source: str) -> str:
    """A file as the author would type it: relative to here when it is below here."""
    path = Path(source)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return os.fspath(path)


def notes(standing: control.Standing, *, short: bool = False) -> list[str]:
    """What the author should know about an issue's file and text (short: for a table)."""
    said: list[str] = []
    slug = standing.issue.slug
    if standing.file is control.FileState.MISSING:
        said.append(
            _("file gone")
            if short
            else _(
                "file gone: the text as queued still goes out; to stop that: "
                "newsletter issues withdraw {name}"
            ).format(name=slug)
        )
    elif standing.file is control.FileState.CHANGED:
        said.append(
            _("file changed since queued")
            if short
            else _("file changed since queued: queue it again to send the new text")
        )
    elif standing.file is control.FileState.BROKEN:
        said.append(_("file changed since queued and has errors now (issues check)"))
    if standing.doubles:
        said.append(_("same text as {names}").format(names=", ".join(standing.doubles)))
    if standing.copies:
        copies = ", ".join(shown_path(str(p)) for p in standing.copies)
        said.append(
            _("same text in {files}").format(files=copies)
            if short
            else _("same text in {files} (renamed or copied?)").format(files=copies)
        )
    return said


def planned_times(rt: Runtime, now: datetime) -> dict[int, tuple[datetime, bool]]:
    """Each queued issue's planned time, and whether it is pinned there."""
    with rt.factory()() as session:
        queued = session.scalar(select(Issue.id).where(Issue.status == IssueStatus.QUEUED).limit(1))
        if queued is None:
            return {}
        weeks = planning.plan(session, rt.settings, now, PLAN_LIMIT)
    return {w.issue.id: (w.when, w.pinned) for w in weeks if w.issue is not None}


@command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in IssueStatus]),
    default=None,
    help="Only queued or only sent issues.",
)
@pass_runtime
def issues_list(rt: Runtime, status: str | None) -> None:
    """Every queued and sent issue: name, theme, subject, date and file, with what needs a look.

    A queued issue's file is compared with what was queued: changed since, gone, or the same
    text as another issue or file is said beside it.
    """
    settings = rt.settings
    planned = planned_times(rt, datetime.now(UTC))
    with rt.factory()() as session:
        query = select(Issue).order_by(Issue.id)
        if status:
            query = query.where(Issue.status == IssueStatus(status))
        found = list(session.scalars(query))
        sent = {
            i: when for i, when in session.execute(select(Edition.issue_id, Edition.scheduled_at))
        }
        standing = control.standings(session, settings, found)
    far = datetime.max.replace(tzinfo=UTC)

    def order(issue: Issue) -> datetime:
        return sent.get(issue.id) or planned.get(issue.id, (far, False))[0]

    for issue in sorted(found, key=order):
        if issue.status is IssueStatus.SENT:
            when = _("sent {date}").format(
                date=day(sent[issue.id], settings) if issue.id in sent else ""
            )
        elif issue.id in planned:
            moment, pinned = planned[issue.id]
            when = day(moment, settings) + (_(" (pinned)") if pinned else "")
        else:
            when = _("not planned: its theme is not in NEWSLETTER_THEMES")
        click.echo(printable(f"{when:<24} {issue.theme:<12} {issue.subject}"))
        click.echo(printable(f"    {issue.slug} · {shown_path(issue.source_path)}"))
        for note in notes(standing[issue.id]):
            click.echo(printable(f"    ! {note}"))
    queued = sum(1 for i in found if i.status is IssueStatus.QUEUED)
    click.echo(
        ngettext(
            "{count} issue, {queued} of them queued.",
            "{count} issues, {queued} of them queued.",
            len(found),
        ).format(count=len(found), queued=queued)
    )


@command("withdraw")
@click.argument("name")
@pass_runtime
def issues_withdraw(rt: Runtime, name: str) -> None:
    """Take a queued issue (NAME: its name or its file) out of the queue; the file stays."""
    try:
        with transaction(rt.factory()) as session:
            issue = control.withdraw(session, name)
            slug, source = issue.slug, issue.source_path
    except control.QueueError as exc:
        raise click.ClickException(printable(str(exc))) from None
    click.echo(
        _(
            "Took {name} out of the queue. Its file ({file}) is left as it is; queue it again "
            "when you want to send it."
        ).format(name=printable(slug), file=printable(shown_path(source)))
    )


@command("pin")
@click.argument("name")
@click.option(
    "--date",
    "on_day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The send date (YYYY-MM-DD) to send it on, whatever the rotation says.",
)
@click.option("--unpin", is_flag=True, help="Undo the pin: back into the rotation.")
@click.option("--now", "now_text", metavar="ISO-8601", help="Pin as of this moment.")
@pass_runtime
def issues_pin(
    rt: Runtime, name: str, on_day: datetime | None, unpin: bool, now_text: str | None
) -> None:
    """Send a queued issue (NAME: its name or its file) on a given send date.

    The rotation goes on around it. A date that is not a send date is refused, with the
    nearest ones named.
    """
    if unpin == (on_day is not None):
        raise click.UsageError(_("give either --date YYYY-MM-DD or --unpin"))
    try:
        with transaction(rt.factory()) as session:
            if unpin:
                slug = control.unpin(session, name).slug
            else:
                assert on_day is not None
                now = parse_now(now_text, rt.settings)
                when = control.pin(session, rt.settings, name, on_day.date(), now)
                slug = control.find(session, name).slug
    except control.QueueError as exc:
        raise click.ClickException(printable(str(exc))) from None
    if unpin:
        click.echo(
            _("{name} is no longer pinned; it goes out when its turn comes.").format(
                name=printable(slug)
            )
        )
    else:
        click.echo(
            _("Pinned {name} to {when}; the rotation goes on around it.").format(
                name=printable(slug), when=local(when, rt.settings)
            )
        )


@command("plan")
@click.option("--weeks", default=6, show_default=True, type=click.IntRange(1, 520))
@click.option("--now", "now_text", metavar="ISO-8601", help="Plan as of this moment.")
@pass_runtime
def issues_plan(rt: Runtime, weeks: int, now_text: str | None) -> None:
    """Show the coming send dates with their theme and subject, and where the queue runs dry.

    Pinned issues are marked, and so are files changed since they were queued, files that are
    gone, and texts queued twice.
    """
    settings = rt.settings
    now = parse_now(now_text, settings)
    with rt.factory()() as session:
        weeks_planned = planning.plan(session, settings, now, weeks)
        standing = control.standings(
            session, settings, [w.issue for w in weeks_planned if w.issue is not None]
        )
    title = _("The next {count} scheduled sends ({zone})").format(
        count=weeks, zone=settings.timezone
    )
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in (_("send time"), _("theme"), _("subject"), _("file")):
        table.add_column(column, overflow="fold")
    dry_from: datetime | None = None
    flagged = False
    for week in weeks_planned:
        when = local(week.when, settings) + (_(" (due now)") if week.catching_up else "")
        if week.issue is None:
            dry_from = dry_from or week.when
            nothing = _("nothing queued: no email this week")
            table.add_row(when, "—", f"[bold]{nothing}[/]", "")
            continue
        said = notes(standing[week.issue.id], short=True)
        flagged = flagged or bool(said)
        if week.pinned:
            said.insert(0, _("pinned"))
        table.add_row(
            when,
            week.issue.theme,
            cell(week.issue.subject),
            cell(week.issue.slug + "".join(f"\n{note}" for note in said), lines=True),
        )
        if week.skipped_themes:
            skipped = _("skipped: {themes}").format(themes=", ".join(week.skipped_themes))
            table.add_row("", f"[dim]{skipped}[/]", f"[dim]{_('nothing queued for it')}[/]", "")
    console.print(table)
    if flagged:
        console.print(
            _(
                "A changed or vanished file still goes out as it was queued: queue it again, or "
                "withdraw it. `newsletter issues list` says more."
            )
        )
    if dry_from is None:
        console.print(_("The queue covers all {count} weeks.").format(count=weeks))
    else:
        console.print(
            _("The queue runs dry on {when}: queue more issues.").format(
                when=local(dry_from, settings)
            )
        )


# Added to `newsletter issues` by newsletter/cli/__init__.py.
QUEUE_COMMANDS = (issues_list, issues_withdraw, issues_pin, issues_plan)
