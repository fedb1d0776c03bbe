"""`newsletter issues`: check, queue, plan and preview issue files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from newsletter import links
from newsletter.cli._runtime import Runtime, console, local, parse_now, pass_runtime
from newsletter.mail.images import FOLDER
from newsletter.mail.rendering import (
    IssueContent,
    Markers,
    RenderedEdition,
    greeting,
    personalise,
    render_edition,
)
from newsletter.publishing import issue_files, planning
from newsletter.storage.db import transaction

HEAVY_HTML = 80 * 1024  # bytes of compiled HTML above which `issues check` warns


@click.group()
def issues() -> None:
    """Write, check, queue, plan and preview issues (Markdown files in the issues folder)."""


def _checked(rt: Runtime, paths: tuple[Path, ...]) -> list[issue_files.IssueDraft]:
    if not paths and not rt.settings.issues_dir.is_dir():
        raise click.ClickException(
            f"the issues folder {rt.settings.issues_dir}/ does not exist "
            "(set NEWSLETTER_ISSUES_DIR, or name the files)"
        )
    files = issue_files.collect_paths(paths, rt.settings.issues_dir)
    if not files:
        raise click.ClickException(f"no issue files found in {rt.settings.issues_dir}")
    images = rt.settings.issues_dir / FOLDER
    drafts, problems = issue_files.check_files(files, rt.settings.themes, images)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        bad = len({p.path for p in problems})
        raise click.ClickException(f"{bad} of {len(files)} issue files have errors")
    for draft in drafts:
        _warn_if_heavy(rt, draft)
    return drafts


def _warn_if_heavy(rt: Runtime, draft: issue_files.IssueDraft) -> None:
    """Gmail clips a letter's HTML at about 102 KB, and the footer (the unsubscribe) goes first."""
    size = len(_render(rt, draft, "check").html.encode("utf-8"))
    if size > HEAVY_HTML:
        click.echo(
            f"{draft.path}: warning: the letter's HTML is {size / 1024:.0f} KB; above "
            f"{HEAVY_HTML // 1024} KB Gmail may cut it off (at about 102 KB), footer and "
            "unsubscribe link first: shorten the text or use fewer images",
            err=True,
        )


def _render(rt: Runtime, draft: issue_files.IssueDraft, seed: str) -> RenderedEdition:
    """The letter as it would go out at the next scheduled time."""
    next_time = planning.next_times(rt.settings, datetime.now(UTC), 1)
    return render_edition(
        IssueContent(draft.subject, draft.theme, draft.question, draft.preheader, draft.body),
        rt.settings,
        seed=seed,
        send_at=next_time[0] if next_time else datetime.now(UTC),
        letter_url=links.letter_url(rt.settings.base_url, draft.slug)
        if rt.settings.archive
        else None,
    )


@issues.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@pass_runtime
def issues_check(rt: Runtime, paths: tuple[Path, ...]) -> None:
    """Check issue files (default: the whole issues folder); any error exits with status 1."""
    drafts = _checked(rt, paths)
    click.echo(f"{len(drafts)} issue file{'s' if len(drafts) != 1 else ''} OK.")


@issues.command("queue")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_runtime
def issues_queue(rt: Runtime, paths: tuple[Path, ...]) -> None:
    """Check the files and queue a snapshot of each; if any has an error, nothing is queued."""
    factory = rt.factory()
    try:
        drafts = _checked(rt, paths)
    except click.ClickException as exc:
        raise click.ClickException(f"{exc.message}; nothing was queued") from None
    with transaction(factory) as session:
        outcomes = issue_files.queue(session, drafts, datetime.now(UTC))
    labels = {
        issue_files.QueueAction.QUEUED: "queued",
        issue_files.QueueAction.UPDATED: "updated (not sent yet)",
        issue_files.QueueAction.UNCHANGED: "unchanged, already queued",
        issue_files.QueueAction.SENT: "already sent, unchanged",
        issue_files.QueueAction.SENT_CHANGED: "already sent: a sent issue never changes; "
        "save it under a new name to send it again",
    }
    for outcome in outcomes:
        click.echo(f"{outcome.draft.path}: {labels[outcome.action]}")


@issues.command("plan")
@click.option("--weeks", default=6, show_default=True, type=click.IntRange(1, 520))
@click.option("--now", "now_text", metavar="ISO-8601", help="Plan as of this moment.")
@pass_runtime
def issues_plan(rt: Runtime, weeks: int, now_text: str | None) -> None:
    """Show the coming send dates with their theme and subject, and where the queue runs dry."""
    settings = rt.settings
    now = parse_now(now_text, settings)
    with rt.factory()() as session:
        weeks_planned = planning.plan(session, settings, now, weeks)
    table = Table(title=f"The next {weeks} scheduled sends ({settings.timezone})")
    for column in ("send time", "theme", "subject", "file"):
        table.add_column(column)
    dry_from: datetime | None = None
    for week in weeks_planned:
        when = local(week.when, settings) + (" (due now)" if week.catching_up else "")
        if week.issue is None:
            dry_from = dry_from or week.when
            table.add_row(when, "—", "[bold]nothing queued: no email this week[/]", "")
        else:
            table.add_row(when, week.issue.theme, week.issue.subject, week.issue.slug)
        if week.skipped_themes and week.issue is not None:
            skipped = ", ".join(week.skipped_themes)
            table.add_row("", f"[dim]skipped: {skipped}[/]", "[dim]nothing queued for it[/]", "")
    console.print(table)
    if dry_from is None:
        console.print(f"The queue covers all {weeks} weeks.")
    else:
        console.print(f"The queue runs dry on {local(dry_from, settings)}: queue more issues.")


@issues.command("preview")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--text",
    "text_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the plain-text part here.",
)
@click.option("--name", default=None, help="Greet the reader by this name.")
@pass_runtime
def issues_preview(
    rt: Runtime, path: Path, out: Path, text_out: Path | None, name: str | None
) -> None:
    """Write the email as a subscriber will see it, as an HTML file to open in a browser."""
    (draft,) = _checked(rt, (path,))
    seed = "preview"
    rendered = _render(rt, draft, seed)
    markers = Markers.for_seed(seed)
    url = f"{rt.settings.base_url}/afmelden/voorbeeld"
    hello = greeting(name)
    out.write_text(
        personalise(rendered.html, markers, greeting_text=hello, url=url, html=True),
        encoding="utf-8",
    )
    click.echo(f"Wrote {out} ({out.stat().st_size:,} bytes). Open it in a browser.")
    if text_out is not None:
        text_out.write_text(
            personalise(rendered.text, markers, greeting_text=hello, url=url, html=False),
            encoding="utf-8",
        )
        click.echo(f"Wrote {text_out}.")
