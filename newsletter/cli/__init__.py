"""The `newsletter` command: thin wrappers that parse input, call a service and report."""

from __future__ import annotations

import logging
import sys

import click

from newsletter.cli.bounces import bounces
from newsletter.cli.check import check
from newsletter.cli.database import db
from newsletter.cli.delivery import retry, send, status, worker
from newsletter.cli.dkim import dkim
from newsletter.cli.issues import issues
from newsletter.cli.processes import scheduler, serve
from newsletter.cli.subscribers import subscribers


@click.group()
@click.version_option(package_name="newsletter")
def main() -> None:
    """A calm weekly reflection newsletter: write, queue, send once, leave with one click."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


for command in (db, issues, subscribers, send, worker, status, retry, scheduler, serve):
    main.add_command(command)
for command in (bounces, dkim, check):
    main.add_command(command)
