"""`newsletter subscribers`: add, import and list."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table
from sqlalchemy import select

from newsletter import subscriptions
from newsletter.cli._runtime import Runtime, console, pass_runtime
from newsletter.db import transaction
from newsletter.models import Subscriber, SubscriberStatus


@click.group()
def subscribers() -> None:
    """Add, import and list subscribers."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default=None, help="The reader's first name, used in the greeting.")
@pass_runtime
def subscribers_add(rt: Runtime, email: str, name: str | None) -> None:
    """Add one subscriber (you vouch for their consent)."""
    factory = rt.factory()
    try:
        with transaction(factory) as session:
            subscriber = subscriptions.add(session, email, name, datetime.now(UTC))
    except (subscriptions.AddressError, subscriptions.AlreadySubscribed) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Added {subscriber.email}.")


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_runtime
def subscribers_import(rt: Runtime, csv_file: Path) -> None:
    """Import a CSV with an 'email' column and an optional 'name' column; bad rows are skipped."""
    factory = rt.factory()
    try:
        with transaction(factory) as session:
            report = subscriptions.import_csv(session, csv_file, datetime.now(UTC))
    except subscriptions.AddressError as exc:
        raise click.ClickException(str(exc)) from None
    for line, problem in report.problems:
        click.echo(f"{csv_file}:{line}: skipped: {problem}", err=True)
    for already in report.already:
        click.echo(f"already on the list, left as it is: {already}")
    click.echo(
        f"Imported {len(report.added)}, already there {len(report.already)}, "
        f"skipped {len(report.problems)} bad row{'s' if len(report.problems) != 1 else ''}."
    )
    if report.problems:
        sys.exit(1)


@subscribers.command("list")
@click.option("--status", type=click.Choice([s.value for s in SubscriberStatus]), default=None)
@pass_runtime
def subscribers_list(rt: Runtime, status: str | None) -> None:
    """List subscribers with their status."""
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == SubscriberStatus(status))
    table = Table()
    for column in ("email", "name", "status", "since"):
        table.add_column(column)
    count = 0
    with rt.factory()() as session:
        for subscriber in session.scalars(query.execution_options(yield_per=1000)):
            since = subscriber.subscribed_at or subscriber.created_at
            table.add_row(
                subscriber.email,
                subscriber.name or "",
                subscriber.status.value,
                since.astimezone(rt.settings.zone).strftime("%Y-%m-%d"),
            )
            count += 1
    console.print(table)
    console.print(f"{count} subscriber{'s' if count != 1 else ''}.")
