"""`newsletter subscribers`: add, import, list, unsubscribe, export and forget."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table
from sqlalchemy import select

from newsletter.cli._i18n import group
from newsletter.cli._runtime import Runtime, console, local, pass_runtime
from newsletter.cli._terminal import cell, printable
from newsletter.i18n import _, ngettext
from newsletter.publishing import planning
from newsletter.readers import addresses, consent, csv_format, importing, subscriptions
from newsletter.storage.db import transaction
from newsletter.storage.models import Subscriber, SubscriberStatus

CONSENT_HELP = (
    "Why you may mail them: the basis recorded in the consent log, e.g. 'signed up on paper at "
    "the retreat of 12 October'. Without it the log says that no basis was given."
)
STATUS_WORDS = subscriptions.STATUS_WORDS
# What adding or changing a reader may be refused for; the message says why.
REFUSED = (addresses.AddressError, subscriptions.AlreadySubscribed, subscriptions.Suppressed)


@group()
def subscribers() -> None:
    """Add, import, list, change, unsubscribe, export and forget subscribers."""


def keys_of(rt: Runtime) -> list[bytes]:
    rt.require_secret_key()
    return rt.settings.secret_keys()


def _no_basis_note(basis: str | None) -> None:
    if not (basis or "").strip():
        click.echo(
            _("note: no --consent given; the consent log records: {basis}").format(
                basis=addresses.NO_BASIS
            ),
            err=True,
        )


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default=None, help="The reader's first name, used in the greeting.")
@click.option("--consent", "basis", default=None, help=CONSENT_HELP)
@pass_runtime
def subscribers_add(rt: Runtime, email: str, name: str | None, basis: str | None) -> None:
    """Add one subscriber (you vouch for their consent); erased addresses are refused."""
    keys = keys_of(rt)
    factory = rt.factory()
    try:
        with transaction(factory) as session:
            subscriber = subscriptions.add(
                session, email, name, datetime.now(UTC), basis=basis, keys=keys
            )
    except REFUSED as exc:
        raise click.ClickException(printable(str(exc))) from None
    _no_basis_note(basis)
    click.echo(
        _("Added {address}.").format(address=printable(addresses.for_people(subscriber.email)))
    )


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--consent", "basis", default=None, help=CONSENT_HELP)
@click.option(
    "--keep-status",
    is_flag=True,
    help="Import rows that are not 'subscribed' (left, bounced, unconfirmed) as they are; "
    "without it they are refused. Nobody the file says left is put on the list.",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="The file's encoding: cp1252 for a CSV that Excel saved as Windows-1252.",
)
@pass_runtime
def subscribers_import(
    rt: Runtime, csv_file: Path, basis: str | None, keep_status: bool, encoding: str
) -> None:
    """Import a CSV: an address column, optional name; or a file from `subscribers export`.

    Columns may be named in Dutch or English (email, e-mail, e-mailadres; name, naam,
    voornaam), separated by commas, semicolons or tabs; UTF-8 with or without BOM, or the
    --encoding given. Every row keeps the status the file gives it; bad rows are reported by
    line and skipped. Every imported reader gets the --consent basis in the consent log.
    Addresses erased on request (`subscribers forget`) are skipped: only their owner can sign
    up again.
    """
    keys = keys_of(rt)
    factory = rt.factory()
    try:
        with transaction(factory) as session:
            report = importing.import_csv(
                session,
                csv_file,
                datetime.now(UTC),
                basis=basis,
                keys=keys,
                keep_status=keep_status,
                encoding=encoding,
            )
    except csv_format.NotInEncoding as exc:
        again = f"newsletter subscribers import {csv_file} --encoding cp1252"
        raise click.ClickException(
            _("{problem}\nNothing was imported. To read it as Windows-1252:\n  {command}").format(
                problem=printable(str(exc)), command=again
            )
        ) from None
    except (addresses.AddressError, csv_format.CsvFileError) as exc:
        raise click.ClickException(printable(str(exc))) from None
    _import_summary(csv_file, report, basis)
    if report.problems:
        sys.exit(1)


def _import_summary(csv_file: Path, report: importing.ImportReport, basis: str | None) -> None:
    for line, problem in sorted(report.problems):
        click.echo(
            _("{file}:{line}: skipped: {problem}").format(
                file=csv_file, line=line, problem=printable(problem)
            ),
            err=True,
        )
    for line in report.suppressed:
        click.echo(
            _("{file}:{line}: skipped: erased on request (suppression list)").format(
                file=csv_file, line=line
            )
        )
    for already in report.already:
        click.echo(_("already on the list, left as it is: {who}").format(who=printable(already)))
    if report.added:
        _no_basis_note(basis)
    erased = (
        _(", {count} erased on request").format(count=len(report.suppressed))
        if report.suppressed
        else ""
    )
    kept = "".join(
        _(", {count} of them {status}").format(
            count=n, status=_(STATUS_WORDS[SubscriberStatus(status)])
        )
        for status, n in sorted(report.kept.items())
    )
    bad = len(report.problems)
    click.echo(
        ngettext(
            "Imported {added}{kept}, already there {already}, skipped {bad} bad row{erased}.",
            "Imported {added}{kept}, already there {already}, skipped {bad} bad rows{erased}.",
            bad,
        ).format(
            added=len(report.added), kept=kept, already=len(report.already), bad=bad, erased=erased
        )
    )


PAUSED = "paused"


@subscribers.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in SubscriberStatus] + [PAUSED]),
    default=None,
    help="Only readers in this state; paused: subscribed, but pausing now.",
)
@pass_runtime
def subscribers_list(rt: Runtime, status: str | None) -> None:
    """List subscribers with their status: a pause with the date they come back, and for those
    who left or bounced, why. The last line says how many readers the next letter goes to."""
    now = datetime.now(UTC)
    zone = rt.settings.zone
    query = select(Subscriber).order_by(Subscriber.id)
    if status == PAUSED:
        query = query.where(
            Subscriber.status == SubscriberStatus.SUBSCRIBED, Subscriber.paused_until > now
        )
    elif status:
        query = query.where(Subscriber.status == SubscriberStatus(status))
    rows: list[tuple[str, str | None, str, str, int | None]] = []
    gone = (SubscriberStatus.BOUNCED, SubscriberStatus.UNSUBSCRIBED)
    with rt.factory()() as session:
        for subscriber in session.scalars(query.execution_options(yield_per=1000)):
            since = subscriber.subscribed_at or subscriber.created_at
            state = _(STATUS_WORDS[subscriber.status])
            until = subscriber.paused_until
            if subscriber.status is SubscriberStatus.SUBSCRIBED and until and until > now:
                state = _("paused until {date}").format(date=f"{until.astimezone(zone):%Y-%m-%d}")
            left = subscriber.id if subscriber.status in gone else None
            email = addresses.for_people(subscriber.email)
            rows.append((email, subscriber.name, state, f"{since.astimezone(zone):%Y-%m-%d}", left))
        # Why those who left or bounced did: their latest such entry in the consent log.
        reasons = consent.latest_reasons(session, [row[4] for row in rows if row[4] is not None])
        when = planning.next_send_time(session, rt.settings, now)
        due = subscriptions.due_at(session, when) if when is not None else 0
    _print_list(rows, reasons)
    console.print(
        ngettext("{count} subscriber listed.", "{count} subscribers listed.", len(rows)).format(
            count=len(rows)
        )
    )
    if when is not None:
        console.print(
            _("The next letter ({when}) goes to {count} of them.").format(
                when=local(when, rt.settings), count=due
            )
        )


def _print_list(
    rows: list[tuple[str, str | None, str, str, int | None]], reasons: dict[int, str]
) -> None:
    """The table; the "why" column only when someone left or bounced (it stays narrow else)."""
    table = Table()
    for column in (_("email"), _("name"), _("status"), _("since")):
        table.add_column(column)
    if reasons:
        table.add_column(_("why"))
    for email, name, state, since, left in rows:
        why = [cell(reasons.get(left, "") if left else "")] if reasons else []
        table.add_row(cell(email), cell(name), state, since, *why)
    console.print(table)


def shown(address: str) -> str:
    """A stored address as people read it: the domain in Unicode, control characters escaped."""
    return printable(addresses.for_people(address))


def not_on_list(address: str) -> click.ClickException:
    return click.ClickException(_("{address} is not on the list").format(address=shown(address)))


def address_as_stored(email: str) -> str:
    """The address as stored, or as typed when it no longer passes the checks."""
    try:
        return addresses.normalise_address(email)
    except addresses.AddressError:
        return email.strip()


@subscribers.command("unsubscribe")
@click.argument("email")
@pass_runtime
def subscribers_unsubscribe(rt: Runtime, email: str) -> None:
    """Take a reader off the list now (logged as unsubscribed by the operator)."""
    address = address_as_stored(email)
    with transaction(rt.factory()) as session:
        subscriber = addresses.find_by_address(session, address)
        if subscriber is None:
            raise not_on_list(address)
        changed = subscriptions.unsubscribe(session, subscriber, datetime.now(UTC))
        stored, status = shown(subscriber.email), _(STATUS_WORDS[subscriber.status])
    if changed:
        click.echo(_("Unsubscribed {address}.").format(address=stored))
    else:
        click.echo(
            _("{address} was not subscribed ({status}); nothing changed.").format(
                address=stored, status=status
            )
        )


@subscribers.command("change")
@click.argument("email")
@click.option("--email", "new_email", default=None, help="The reader's correct address.")
@click.option("--name", default=None, help="The reader's correct name ('' leaves none).")
@pass_runtime
def subscribers_change(rt: Runtime, email: str, new_email: str | None, name: str | None) -> None:
    """Correct a reader's address or name (logged in the consent log as your change)."""
    if new_email is None and name is None:
        raise click.UsageError(_("say what to change: --email NEW and/or --name NAME"))
    keys = keys_of(rt)
    address = address_as_stored(email)
    try:
        with transaction(rt.factory()) as session:
            subscriber = addresses.find_by_address(session, address)
            if subscriber is None:
                raise not_on_list(address)
            changes = subscriptions.change(
                session, subscriber, datetime.now(UTC), email=new_email, name=name, keys=keys
            )
    except REFUSED as exc:
        raise click.ClickException(printable(str(exc))) from None
    if changes:
        said = (
            [
                _("address {old} → {new}").format(
                    old=shown(changes.old_address or ""), new=shown(changes.new_address)
                )
            ]
            if changes.new_address
            else []
        )
        if changes.name is not None:
            said.append(_("name changed") if changes.name == "changed" else _("name cleared"))
        click.echo(
            _("Changed {address}: {changes}.").format(
                address=shown(address),
                changes=printable("; ".join(said)),
            )
        )
    else:
        click.echo(_("{address}: nothing to change.").format(address=shown(address)))
