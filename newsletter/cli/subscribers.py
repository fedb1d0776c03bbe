"""`newsletter subscribers`: add, import, list, unsubscribe, export and forget."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import click
from rich.table import Table
from sqlalchemy import select

from newsletter.cli._runtime import Runtime, console, pass_runtime
from newsletter.cli._terminal import TerminalWriter, cell, json_text, printable
from newsletter.readers import addresses, consent, csv_format, importing, privacy, subscriptions
from newsletter.storage.db import transaction
from newsletter.storage.models import Subscriber, SubscriberStatus

CONSENT_HELP = (
    "Why you may mail them: the basis recorded in the consent log, e.g. 'signed up on paper at "
    "the retreat of 12 October'. Without it the log says that no basis was given."
)


@click.group()
def subscribers() -> None:
    """Add, import, list, unsubscribe, export and forget subscribers."""


def _keys(rt: Runtime) -> list[bytes]:
    rt.require_secret_key()
    return rt.settings.secret_keys()


def _no_basis_note(basis: str | None) -> None:
    if not (basis or "").strip():
        click.echo(
            f"note: no --consent given; the consent log records: {addresses.NO_BASIS}",
            err=True,
        )


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default=None, help="The reader's first name, used in the greeting.")
@click.option("--consent", "basis", default=None, help=CONSENT_HELP)
@pass_runtime
def subscribers_add(rt: Runtime, email: str, name: str | None, basis: str | None) -> None:
    """Add one subscriber (you vouch for their consent); erased addresses are refused."""
    keys = _keys(rt)
    factory = rt.factory()
    try:
        with transaction(factory) as session:
            subscriber = subscriptions.add(
                session, email, name, datetime.now(UTC), basis=basis, keys=keys
            )
    except (
        addresses.AddressError,
        subscriptions.AlreadySubscribed,
        subscriptions.Suppressed,
    ) as exc:
        raise click.ClickException(printable(str(exc))) from None
    _no_basis_note(basis)
    click.echo(f"Added {printable(addresses.for_people(subscriber.email))}.")


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--consent", "basis", default=None, help=CONSENT_HELP)
@click.option(
    "--keep-status",
    is_flag=True,
    help="Import rows that are not 'subscribed' (left, bounced, unconfirmed) as they are; "
    "without it they are refused. Nobody the file says left is put on the list.",
)
@pass_runtime
def subscribers_import(rt: Runtime, csv_file: Path, basis: str | None, keep_status: bool) -> None:
    """Import a CSV: an 'email' column, optional 'name'; or a file from `subscribers export`.

    Every row keeps the status the file gives it; bad rows are reported by line and skipped.
    Every imported reader gets the --consent basis in the consent log. Addresses erased on
    request (`subscribers forget`) are skipped: only their owner can sign up again.
    """
    keys = _keys(rt)
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
            )
    except (addresses.AddressError, csv_format.CsvFileError) as exc:
        raise click.ClickException(printable(str(exc))) from None
    _import_summary(csv_file, report, basis)
    if report.problems:
        sys.exit(1)


def _import_summary(csv_file: Path, report: importing.ImportReport, basis: str | None) -> None:
    for line, problem in sorted(report.problems):
        click.echo(f"{csv_file}:{line}: skipped: {printable(problem)}", err=True)
    for line in report.suppressed:
        click.echo(f"{csv_file}:{line}: skipped: erased on request (suppression list)")
    for already in report.already:
        click.echo(f"already on the list, left as it is: {printable(already)}")
    if report.added:
        _no_basis_note(basis)
    erased = f", {len(report.suppressed)} erased on request" if report.suppressed else ""
    kept = "".join(f", {n} of them {status}" for status, n in sorted(report.kept.items()))
    click.echo(
        f"Imported {len(report.added)}{kept}, already there {len(report.already)}, "
        f"skipped {len(report.problems)} bad row{'s' if len(report.problems) != 1 else ''}"
        f"{erased}."
    )


@subscribers.command("list")
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]), default=None)
@pass_runtime
def subscribers_list(rt: Runtime, status: str | None) -> None:
    """List subscribers with their status; for those who left or bounced, why."""
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == SubscriberStatus(status))
    rows: list[tuple[str, str, str, str, int | None]] = []
    gone = (SubscriberStatus.BOUNCED, SubscriberStatus.UNSUBSCRIBED)
    with rt.factory()() as session:
        for subscriber in session.scalars(query.execution_options(yield_per=1000)):
            since = subscriber.subscribed_at or subscriber.created_at
            rows.append(
                (
                    addresses.for_people(subscriber.email),
                    subscriber.name or "",
                    subscriber.status.value,
                    since.astimezone(rt.settings.zone).strftime("%Y-%m-%d"),
                    subscriber.id if subscriber.status in gone else None,
                )
            )
        # Why those who left or bounced did: their latest such entry in the consent log.
        reasons = consent.latest_reasons(session, [row[4] for row in rows if row[4] is not None])
    table = Table()
    # The "why" column only when someone left or bounced: the table stays narrow otherwise.
    columns = (
        ("email", "name", "status", "since", "why")
        if reasons
        else ("email", "name", "status", "since")
    )
    for column in columns:
        table.add_column(column)
    for *cells, subscriber_id in rows:
        why = [reasons.get(subscriber_id, "") if subscriber_id else ""] if reasons else []
        table.add_row(*(cell(text) for text in (*cells, *why)))
    console.print(table)
    console.print(f"{len(rows)} subscriber{'s' if len(rows) != 1 else ''}.")


def _address(email: str) -> str:
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
    address = _address(email)
    with transaction(rt.factory()) as session:
        subscriber = addresses.find_by_address(session, address)
        if subscriber is None:
            raise click.ClickException(f"{printable(address)} is not on the list")
        changed = subscriptions.unsubscribe(session, subscriber, datetime.now(UTC))
        stored, status = printable(subscriber.email), subscriber.status.value
    if changed:
        click.echo(f"Unsubscribed {stored}.")
    else:
        click.echo(f"{stored} was not subscribed ({status}); nothing changed.")


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """The file, or standard output (escaping control characters when it is a terminal)."""
    if path is None:
        yield cast(IO[str], TerminalWriter(sys.stdout)) if sys.stdout.isatty() else sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as handle:
        yield handle


def _write_json(
    out: IO[str], records: Iterator[dict[str, Any]], header: dict[str, Any]
) -> set[str]:
    """Streams the records; returns the consent text versions they mention."""
    versions: set[str] = set()
    out.write("{\n")
    for key, value in header.items():
        out.write(f"  {json.dumps(key)}: {json_text(json.dumps(value, ensure_ascii=False))},\n")
    out.write('  "subscribers": [')
    for index, record in enumerate(records):
        versions.update(e["consent_version"] for e in record["consent_log"] if e["consent_version"])
        if record["consent_version"]:
            versions.add(record["consent_version"])
        text = json_text(json.dumps(record, ensure_ascii=False, indent=2)).replace("\n", "\n    ")
        out.write(("," if index else "") + "\n    " + text)
    out.write("\n  ],\n")
    return versions


@subscribers.command("export")
@click.argument("email", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="JSON holds everything, the consent texts too; CSV has one row per subscriber.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.option(
    "--include-pending",
    is_flag=True,
    help="Also export sign-ups that were never confirmed (left out by default).",
)
@pass_runtime
def subscribers_export(
    rt: Runtime, email: str | None, fmt: str, output: Path | None, include_pending: bool
) -> None:
    """Export subscribers with their consent log; with EMAIL, one reader's data (GDPR art. 15).

    One reader's export also lists the letters sent to them. CSV cells that a spreadsheet could
    run as a formula are written as text (a ' in front); `subscribers import` reads them back.
    """
    address = _address(email) if email is not None else None
    factory = rt.factory()
    with factory() as session:
        if address is not None and addresses.find_by_address(session, address) is None:
            keys = _keys(rt)
            erased = privacy.suppressed_since(session, keys, address)
            if erased is not None:
                raise click.ClickException(
                    f"{printable(address)} was erased on {erased:%Y-%m-%d}; only a keyed hash of "
                    "it is kept, on the suppression list. There is nothing else to export."
                )
            raise click.ClickException(f"{printable(address)} is not on the list")
        records = privacy.export_records(session, address, include_pending=include_pending)
        with _output(output) as out:
            if fmt == "csv":
                count = csv_format.write(out, records)
            else:
                header = {
                    "list": rt.settings.list_name,
                    "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                }
                versions = _write_json(out, records, header)
                texts = privacy.consent_texts(session, versions)
                texts_json = json_text(json.dumps(texts, ensure_ascii=False))
                out.write(f'  "consent_texts": {texts_json}\n}}\n')
                count = -1
    if output is not None:
        what = f"{count} subscriber{'s' if count != 1 else ''}" if count >= 0 else "the export"
        click.echo(f"Wrote {what} to {output}.", err=True)


@subscribers.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Erase without asking first.")
@pass_runtime
def subscribers_forget(rt: Runtime, email: str, yes: bool) -> None:
    """Erase everything kept about an address (GDPR art. 17), keeping only a keyed hash.

    The hash sits on a suppression list: imports and `subscribers add` skip the address from
    then on. Its owner can still sign up again through the form, which lifts the suppression.
    """
    keys = _keys(rt)
    address = _address(email)
    factory = rt.factory()
    if not yes:
        click.confirm(
            f"Erase everything kept about {printable(address)}? This cannot be undone.",
            abort=True,
        )
    with transaction(factory) as session:
        result = privacy.forget(session, keys, address, datetime.now(UTC))
    address = printable(address)
    if result.on_list:
        click.echo(
            f"Erased {address}: the subscriber, their consent log and delivery records are gone. "
            "A keyed hash stays on the suppression list, so imports skip the address."
        )
    else:
        click.echo(
            f"{address} was not on the list; "
            + (
                "it was already on the suppression list."
                if result.already_suppressed
                else "added it to the suppression list, so imports skip it."
            )
        )
