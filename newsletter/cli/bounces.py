"""`newsletter bounces ingest` and `newsletter bounces fetch`: what comes back, acted on.

Exit status of `ingest`: 0 when every message was handled or deliberately ignored, 75
(EX_TEMPFAIL) when one could not be handled now (the database is down): an MTA that piped it in
keeps it and tries again later.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy.exc import DBAPIError

from newsletter.cli._i18n import group
from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.delivery import bounces as service
from newsletter.i18n import N_, _
from newsletter.mail.imap import MailboxUnavailable

EX_TEMPFAIL = 75

# What was done with a message, as the command prints it.
ACTION_WORDS = {
    service.Action.BOUNCED: N_("bounced"),
    service.Action.COUNTED: N_("counted"),
    service.Action.UNSUBSCRIBED: N_("unsubscribed"),
    service.Action.NOTED: N_("noted"),
    service.Action.IGNORED: N_("ignored"),
}


@group()
def bounces() -> None:
    """Read bounces and complaints, and act on them."""


@dataclass
class _Source:
    name: str
    path: Path | None  # None: standard input
    in_maildir: bool = False  # moved to cur/ once handled

    def read(self) -> bytes:
        return sys.stdin.buffer.read() if self.path is None else self.path.read_bytes()


def _sources(files: tuple[Path, ...], maildir: Path | None) -> Iterator[_Source]:
    for file in files:
        yield _Source(str(file), file)
    if maildir is not None:
        for path in sorted((maildir / "new").iterdir()):
            if path.is_file() and not path.name.startswith("."):
                yield _Source(str(path), path, in_maildir=True)
    if not files and maildir is None:
        yield _Source(_("standard input"), None)


def _to_cur(path: Path, seen: bool) -> None:
    """Maildir: new/<name> → cur/<name>:2,S (seen: acted on) or :2, (left unread: ignored)."""
    target = path.parent.parent / "cur" / f"{path.name.split(':')[0]}:2,{'S' if seen else ''}"
    path.rename(target)


def _temporary_failure(source: str, exc: Exception) -> None:
    reason = getattr(exc, "orig", None) or exc
    click.echo(
        _("{source}: could not be handled now ({reason}); try again later").format(
            source=source, reason=reason
        ),
        err=True,
    )
    sys.exit(EX_TEMPFAIL)


@bounces.command("ingest")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--maildir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Read every message in this Maildir's new/ and move what was handled to cur/.",
)
def ingest(files: tuple[Path, ...], maildir: Path | None) -> None:
    """Read bounces, complaints and replies from FILEs, a Maildir, or standard input (one
    message, for a Postfix pipe or a .forward), and act on each."""
    try:  # a configuration error must not lose the message either: the MTA keeps it
        rt = Runtime()
        rt.require_secret_key()
    except click.ClickException as exc:
        said = _("The message was not read; try again later.")
        click.echo(f"{exc.format_message()}\n{said}", err=True)
        sys.exit(EX_TEMPFAIL)
    factory = rt.factory(check=False)
    for source in _sources(files, maildir):
        try:
            handled = service.ingest(factory, rt.settings, source.read(), datetime.now(UTC))
        except DBAPIError as exc:
            _temporary_failure(source.name, exc)
            return
        click.echo(f"{source.name}: {_(ACTION_WORDS[handled.action])}: {handled.why}")
        if source.in_maildir and source.path is not None:
            _to_cur(source.path, handled.action is not service.Action.IGNORED)


@bounces.command("fetch")
@pass_runtime
def fetch(rt: Runtime) -> None:
    """Read the IMAP folder of NEWSLETTER_BOUNCE_IMAP_URL; move what concerns our letters to
    the folder 'newsletter-handled' and leave every other message untouched."""
    rt.require_secret_key()
    if rt.settings.bounce_imap_url is None:
        raise click.ClickException(_("NEWSLETTER_BOUNCE_IMAP_URL is not set"))
    factory = rt.factory(check=False)
    try:
        fetched = service.fetch(factory, rt.settings, datetime.now(UTC))
    except MailboxUnavailable as exc:
        click.echo(str(exc), err=True)
        sys.exit(EX_TEMPFAIL)
    except DBAPIError as exc:
        _temporary_failure(_("the bounce mailbox"), exc)
        return
    moved = ", ".join(f"{n} {_(ACTION_WORDS[a])}" for a, n in fetched.moved.items() if n)
    click.echo(
        _("Moved to {folder}: {moved}; left untouched: {left}.").format(
            folder=service.HANDLED_FOLDER, moved=moved or _("nothing"), left=fetched.left
        )
    )
