"""`newsletter issues test`: the letter in the author's own mailbox, as a reader gets it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from newsletter.cli._i18n import command
from newsletter.cli._runtime import Runtime, parse_now, pass_runtime
from newsletter.cli._terminal import printable
from newsletter.cli.issues import checked_files
from newsletter.i18n import N_, _
from newsletter.mail.composing import MessageError
from newsletter.mail.rendering import RenderError, dutch_date
from newsletter.mail.transport import RelayUnavailable
from newsletter.publishing import issue_files, proof
from newsletter.readers import addresses


def _test_recipient(rt: Runtime, to: str | None) -> str:
    address = to or rt.settings.author_email
    if not address:
        raise click.ClickException(
            _(
                "where should the test mail go? Set NEWSLETTER_AUTHOR_EMAIL to your own address, "
                "or give one: --to you@example.org"
            )
        )
    try:
        return addresses.normalise_address(address)
    except addresses.AddressError as exc:
        raise click.BadParameter(printable(str(exc)), param_hint="--to") from None


WHEN_SAID = {
    proof.When.PINNED: N_("the date it is pinned to"),
    proof.When.PLANNED: N_("the date the queue plans it for"),
    proof.When.SENT: N_("the date it was sent"),
    proof.When.NEXT: N_("the next send date"),
}


def _mail(
    rt: Runtime,
    path: Path,
    draft: issue_files.IssueDraft,
    to: str,
    name: str | None,
    planned: proof.Planned,
) -> None:  # fmt: skip - six arguments read best on two lines
    """Build the test mail and hand it over; ClickException when either fails."""
    try:
        data = proof.build(
            rt.settings,
            draft,
            to=to,
            name=name,
            send_at=planned.send_at,
            keys=rt.settings.secret_keys(),
            now=datetime.now(UTC),
        )
    except (MessageError, RenderError) as exc:
        raise click.ClickException(
            _("{file}: the test mail cannot be made: {reason}").format(file=path, reason=exc)
        ) from None
    try:
        verdict = proof.send(rt.settings, to, data)
    except RelayUnavailable as exc:
        raise click.ClickException(
            _("{reason}; the test mail was not sent").format(reason=exc)
        ) from None
    if not verdict.accepted:
        raise click.ClickException(
            _("the relay refused the test mail: {reply}").format(reply=verdict.describe())
        )


@command("test")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", default=None, help="Send it here instead of NEWSLETTER_AUTHOR_EMAIL.")
@click.option("--name", default=None, help="Greet the reader by this name.")
@click.option("--now", "now_text", metavar="ISO-8601", help="Plan its date as of this moment.")
@pass_runtime
def issues_test(
    rt: Runtime, path: Path, to: str | None, name: str | None, now_text: str | None
) -> None:
    """Mail yourself the issue exactly as a reader gets it on its planned Sunday.

    The subject starts with [Proef]; it goes through the relay (or into the outbox). Nothing is
    stored and the queue is left as it is; its unsubscribe and pause links change nothing.
    """
    rt.require_secret_key()
    recipient = _test_recipient(rt, to)
    try:
        cleaned = addresses.clean_name(name)
    except addresses.AddressError as exc:
        raise click.BadParameter(printable(str(exc)), param_hint="--name") from None
    (draft,) = checked_files(rt, (path,))
    with rt.factory()() as session:
        planned = proof.planned_time(session, rt.settings, draft, parse_now(now_text, rt.settings))
        queued_hash = planned.queued.content_hash if planned.queued is not None else None
    _mail(rt, path, draft, recipient, cleaned, planned)
    when = dutch_date(planned.send_at.astimezone(rt.settings.zone))
    click.echo(
        _("Sent a test mail of {file} to {address}, dated {date} ({how}).").format(
            file=path,
            address=printable(addresses.for_people(recipient)),
            date=when,
            how=_(WHEN_SAID[planned.how]),
        )
    )
    if rt.settings.smtp is None:
        click.echo(
            _("No relay is set: it is an .eml file in {folder}/.").format(
                folder=rt.settings.outbox_dir
            )
        )
    if queued_hash is not None and queued_hash != draft.content_hash and planned.how != "sent":
        click.echo(
            _(
                "Note: the queue holds an older text of this file; queue it again to send "
                "this one: newsletter issues queue {file}"
            ).format(file=path)
        )
