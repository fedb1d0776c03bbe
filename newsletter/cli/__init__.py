"""The `newsletter` command: thin wrappers that parse input, call a service and report."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from newsletter.cli.bounces import bounces
from newsletter.cli.check import check
from newsletter.cli.database import db
from newsletter.cli.delivery import retry, send, status, worker
from newsletter.cli.dkim import dkim
from newsletter.cli.issues import issues
from newsletter.cli.processes import scheduler, serve
from newsletter.cli.subscribers import subscribers
from newsletter.storage.db import DatabaseUnavailable, describe_error, is_connection_fault


class Commands(click.Group):
    """The command group; a database that cannot be reached ends any command with one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatabaseUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            if not is_connection_fault(exc):
                raise
            raise click.ClickException(
                f"the database is unreachable: {describe_error(exc)}"
            ) from None


@click.group(cls=Commands)
@click.version_option(package_name="newsletter")
def main() -> None:
    """A calm weekly reflection newsletter: write, queue, send once, leave with one click."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


for command in (
    db,
    issues,
    subscribers,
    send,
    worker,
    status,
    retry,
    scheduler,
    serve,
    check,
    bounces,
    dkim,
):
    main.add_command(command)
