"""`newsletter issues`: check, queue and preview issue files (the queue's commands are in
issue_queue, the test mail in test_mail)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from newsletter import links
from newsletter.cli._i18n import group
from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.i18n import N_, _, ngettext
from newsletter.mail.images import FOLDER
from newsletter.mail.rendering import IssueContent, RenderedEdition, render_edition
from newsletter.mail.slots import Markers, greeting, personalise
from newsletter.publishing import control, issue_files, planning
from newsletter.storage.db import transaction

HEAVY_HTML = 80 * 1024  # bytes of compiled HTML above which `issues check` warns


@group()
def issues() -> None:
    """Write, check, test, queue, plan and steer issues (Markdown files in the issues folder)."""


def checked_files(rt: Runtime, paths: tuple[Path, ...]) -> list[issue_files.IssueDraft]:
    if not paths and not rt.settings.issues_dir.is_dir():
        raise click.ClickException(
            _(
                "the issues folder {folder}/ does not exist "
                "(set NEWSLETTER_ISSUES_DIR, or name the files)"
            ).format(folder=rt.settings.issues_dir)
        )
    files = issue_files.collect_paths(paths, rt.settings.issues_dir)
    if not files:
        raise click.ClickException(
            _("no issue files found in {folder}").format(folder=rt.settings.issues_dir)
        )
    images = rt.settings.issues_dir / FOLDER
    drafts, problems = issue_files.check_files(files, rt.settings.themes, images)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        bad = len({p.path for p in problems})
        raise click.ClickException(
            ngettext(
                "{bad} of {count} issue file has errors",
                "{bad} of {count} issue files have errors",
                len(files),
            ).format(bad=bad, count=len(files))
        )
    for draft in drafts:
        _warn_if_heavy(rt, draft)
    return drafts


def _warn_if_heavy(rt: Runtime, draft: issue_files.IssueDraft) -> None:
    """Gmail clips a letter's HTML at about 102 KB, and the footer (the unsubscribe) goes first."""
    size = len(_render(rt, draft, "check").html.encode("utf-8"))
    if size > HEAVY_HTML:
        click.echo(
            _(
                "{file}: warning: the letter's HTML is {size:.0f} KB; above {limit} KB Gmail "
                "may cut it off (at about 102 KB), footer and unsubscribe link first: shorten "
                "the text or use fewer images"
            ).format(file=draft.path, size=size / 1024, limit=HEAVY_HTML // 1024),
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
    drafts = checked_files(rt, paths)
    click.echo(
        ngettext("{count} issue file OK.", "{count} issue files OK.", len(drafts)).format(
            count=len(drafts)
        )
    )


@issues.command("queue")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--as-new",
    is_flag=True,
    help="Queue a text that is already queued or sent under another name all the same.",
)
@pass_runtime
def issues_queue(rt: Runtime, paths: tuple[Path, ...], as_new: bool) -> None:
    """Check the files and queue a snapshot of each; if any has an error, nothing is queued.

    A file whose text is already queued or sent under another name (a renamed or copied file)
    is refused, naming both; --as-new queues it anyway.
    """
    factory = rt.factory()
    try:
        drafts = checked_files(rt, paths)
    except click.ClickException as exc:
        raise click.ClickException(
            _("{problem}; nothing was queued").format(problem=exc.message)
        ) from None
    try:
        with transaction(factory) as session:
            outcomes = control.queue(session, drafts, datetime.now(UTC), as_new=as_new)
    except control.DoubleText as exc:
        for draft, other in exc.doubles:
            click.echo(
                _("{file}: the same text as {other}").format(file=draft.path, other=other),
                err=True,
            )
        raise click.ClickException(
            _(
                "nothing was queued. To move an issue to a new file name, withdraw the old one "
                "first (newsletter issues withdraw NAME); to send the text again, add --as-new"
            )
        ) from None
    for outcome in outcomes:
        click.echo(f"{outcome.draft.path}: {_(QUEUE_WORDS[outcome.action])}")


QUEUE_WORDS = {
    issue_files.QueueAction.QUEUED: N_("queued"),
    issue_files.QueueAction.UPDATED: N_("updated (not sent yet)"),
    issue_files.QueueAction.UNCHANGED: N_("unchanged, already queued"),
    issue_files.QueueAction.SENT: N_("already sent, unchanged"),
    issue_files.QueueAction.SENT_CHANGED: N_(
        "already sent: a sent issue never changes; save it under a new name to send it again"
    ),
}


@issues.command("preview")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write.",
)
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
    (draft,) = checked_files(rt, (path,))
    seed = "preview"
    rendered = _render(rt, draft, seed)
    markers = Markers.for_seed(seed)
    url = f"{rt.settings.base_url}/afmelden/voorbeeld"
    hello = greeting(name)
    out.write_text(
        personalise(rendered.html, markers, greeting_text=hello, url=url, html=True),
        encoding="utf-8",
    )
    click.echo(
        _("Wrote {file} ({size:,} bytes). Open it in a browser.").format(
            file=out, size=out.stat().st_size
        )
    )
    if text_out is not None:
        text_out.write_text(
            personalise(rendered.text, markers, greeting_text=hello, url=url, html=False),
            encoding="utf-8",
        )
        click.echo(_("Wrote {file}.").format(file=text_out))
