"""`newsletter db`: the database schema."""

from __future__ import annotations

import click

from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.storage.db import current_revisions, upgrade


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_runtime
def db_upgrade(rt: Runtime) -> None:
    """Create the database or bring its schema up to date."""
    upgrade(rt.engine)
    heads, _ = current_revisions(rt.engine)
    click.echo(f"Database is up to date (revision {', '.join(sorted(heads))}).")


@db.command("current")
@pass_runtime
def db_current(rt: Runtime) -> None:
    """Show the schema revision of the database and the one this code expects."""
    heads, current = current_revisions(rt.engine)
    click.echo(f"database: {', '.join(sorted(current)) or 'empty'}")
    click.echo(f"code:     {', '.join(sorted(heads))}")
    if heads != current:
        click.echo("Run: newsletter db upgrade")
