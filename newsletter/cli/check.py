"""`newsletter check`: the production preflight, and the refusal to send on a broken config."""

from __future__ import annotations

import sys

import click

from newsletter.delivery import preflight
from newsletter.settings import Settings, SettingsError, load_settings


@click.command()
def check() -> None:
    """Print every problem with the configuration; exit 1 when there is an error."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}")
        sys.exit(1)
    problems = preflight.check(settings)
    for problem in problems:
        click.echo(str(problem))
    errors = sum(1 for p in problems if p.level is preflight.Level.ERROR)
    warnings = sum(1 for p in problems if p.level is preflight.Level.WARNING)
    relay = f"the relay {settings.smtp.host}" if settings.smtp else "the outbox folder (no relay)"
    counted = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    click.echo(f"Checked the configuration for sending through {relay}: {counted}.")
    if errors:
        sys.exit(1)


def refuse_to_send_wrong(settings: Settings) -> None:
    """Stop `send`, `worker` or `scheduler` before anything goes out when every message would be
    wrong (a local link, the demo key, an example sender); the message names the variable."""
    errors = preflight.errors(settings)
    if errors:
        lines = "\n".join(f"  {p.variable}: {p.message}" for p in errors)
        raise click.ClickException(
            f"refusing to send: every message would be wrong.\n{lines}\n"
            "Run `newsletter check` for the whole list."
        )
