"""The `newsletter` command: thin wrappers that parse input, call a service and report."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from newsletter import i18n
from newsletter.cli._i18n import Group, group, speak_click
from newsletter.cli.bounces import bounces
from newsletter.cli.check import check
from newsletter.cli.database import db
from newsletter.cli.delivery import retry, send, worker
from newsletter.cli.dkim import dkim
from newsletter.cli.issue_queue import QUEUE_COMMANDS
from newsletter.cli.issues import issues
from newsletter.cli.notices import notices
from newsletter.cli.processes import scheduler, serve
from newsletter.cli.status import status
from newsletter.cli.subscriber_data import DATA_COMMANDS
from newsletter.cli.subscribers import subscribers
from newsletter.cli.test_mail import issues_test
from newsletter.i18n import _
from newsletter.settings import messages_language
from newsletter.storage.db import DatabaseUnavailable, describe_error, is_connection_fault

speak_click()


class Commands(Group):
    """The command group; a database that cannot be reached ends any command with one line.

    The language is chosen before the command line is read, so help is in it too.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        i18n.use(messages_language())
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DatabaseUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            if not is_connection_fault(exc):
                raise
            raise click.ClickException(
                _("the database is unreachable: {reason}").format(reason=describe_error(exc))
            ) from None


@group(cls=Commands)
@click.version_option(package_name="newsletter")
def main() -> None:
    """A calm weekly reflection newsletter: write, queue, send once, leave with one click."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    for chatty in ("alembic", "flufl.bounce"):  # their INFO lines say nothing to the operator
        logging.getLogger(chatty).setLevel(logging.WARNING)


for queue_command in (issues_test, *QUEUE_COMMANDS):
    issues.add_command(queue_command)
for data_command in DATA_COMMANDS:
    subscribers.add_command(data_command)
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
    notices,
    bounces,
    dkim,
):
    main.add_command(command)
