"""`newsletter db`: the database schema, and moving an installation to another database."""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.storage import copying
from newsletter.storage.db import current_revisions, make_engine, upgrade


@click.group()
def db() -> None:
    """The database schema, and moving to another database."""


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


def _target_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise click.BadParameter(
            "not a database URL, e.g. postgresql://newsletter@db.example.nl/newsletter",
            param_hint="--to",
        ) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise click.BadParameter("only sqlite:/// and postgresql:// URLs", param_hint="--to")
    return value


@db.command("copy")
@click.option(
    "--to",
    "to_url",
    required=True,
    metavar="URL",
    help="The database to copy into: empty (or without any table), e.g. "
    "postgresql://newsletter@db.example.nl/newsletter or sqlite:///nieuw.db.",
)
@pass_runtime
def db_copy(rt: Runtime, to_url: str) -> None:
    """Copy the whole installation (every reader, the consent log, issues, the ledger) to URL.

    The way to move from SQLite to PostgreSQL, or back: ids and states stay as they are. Stop
    `serve`, `scheduler` and the workers first; then point NEWSLETTER_DATABASE_URL at URL.
    """
    url = _target_url(to_url)
    rt.factory()  # the source must be at this code's schema
    shown = make_url(url).render_as_string(hide_password=True)
    target = make_engine(url)
    try:
        if copying.prepare_target(rt.engine, target):
            click.echo(f"Created the schema in {shown}.")
        copied = copying.copy(
            rt.engine,
            target,
            on_table=lambda done: click.echo(
                f"  {done.table}: {done.rows:,} row{'s' if done.rows != 1 else ''}"
            ),
        )
    except copying.CopyError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        raise click.ClickException(f"cannot use {shown}: {reason}") from None
    finally:
        target.dispose()
    total = sum(done.rows for done in copied)
    click.echo(
        f"Copied {total:,} rows in {len(copied)} tables to {shown}; the row counts match.\n"
        f"Now set NEWSLETTER_DATABASE_URL={shown} for every process, and start them again."
    )
