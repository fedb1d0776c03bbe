"""`newsletter db`: the database schema, and moving an installation to another database."""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from newsletter.cli._i18n import group
from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.i18n import _, ngettext
from newsletter.storage import copying
from newsletter.storage.db import current_revisions, make_engine, upgrade


@group()
def db() -> None:
    """The database schema, and moving to another database."""


@db.command("upgrade")
@pass_runtime
def db_upgrade(rt: Runtime) -> None:
    """Create the database or bring its schema up to date."""
    upgrade(rt.engine)
    heads, _current = current_revisions(rt.engine)
    click.echo(
        _("Database is up to date (revision {revision}).").format(revision=", ".join(sorted(heads)))
    )


@db.command("current")
@pass_runtime
def db_current(rt: Runtime) -> None:
    """Show the schema revision of the database and the one this code expects."""
    heads, current = current_revisions(rt.engine)
    click.echo(_("database: {revision}").format(revision=", ".join(sorted(current)) or _("empty")))
    click.echo(_("code:     {revision}").format(revision=", ".join(sorted(heads))))
    if heads != current:
        click.echo(_("Run: newsletter db upgrade"))


def _target_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise click.BadParameter(
            _("not a database URL, e.g. postgresql://newsletter@db.example.nl/newsletter"),
            param_hint="--to",
        ) from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise click.BadParameter(_("only sqlite:/// and postgresql:// URLs"), param_hint="--to")
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
            click.echo(_("Created the schema in {database}.").format(database=shown))
        copied = copying.copy(
            rt.engine,
            target,
            on_table=lambda done: click.echo(
                "  "
                + ngettext("{table}: {count:,} row", "{table}: {count:,} rows", done.rows).format(
                    table=done.table, count=done.rows
                )
            ),
        )
    except copying.CopyError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        raise click.ClickException(
            _("cannot use {database}: {reason}").format(database=shown, reason=reason)
        ) from None
    finally:
        target.dispose()
    total = sum(done.rows for done in copied)
    click.echo(
        _(
            "Copied {rows:,} rows in {tables} tables to {database}; the row counts match.\n"
            "Now set NEWSLETTER_DATABASE_URL={database} for every process, and start them again."
        ).format(rows=total, tables=len(copied), database=shown)
    )
