"""`newsletter check`: the production preflight, and the refusal to send on a broken config."""

from __future__ import annotations

import sys

import click

from newsletter.cli._i18n import command
from newsletter.delivery import preflight
from newsletter.i18n import _, ngettext
from newsletter.settings import Settings, SettingsError, load_settings


@command()
def check() -> None:
    """Print every problem with the configuration; exit 1 when there is an error."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in str(exc).splitlines():
            click.echo(_("error: {problem}").format(problem=line))
        sys.exit(1)
    problems = preflight.check(settings)
    for problem in problems:
        click.echo(str(problem))
    errors = sum(1 for p in problems if p.level is preflight.Level.ERROR)
    warnings = sum(1 for p in problems if p.level is preflight.Level.WARNING)
    relay = (
        _("the relay {host}").format(host=settings.smtp.host)
        if settings.smtp
        else _("the outbox folder (no relay)")
    )
    counted = ", ".join(
        (
            ngettext("{count} error", "{count} errors", errors).format(count=errors),
            ngettext("{count} warning", "{count} warnings", warnings).format(count=warnings),
        )
    )
    click.echo(
        _("Checked the configuration for sending through {relay}: {counted}.").format(
            relay=relay, counted=counted
        )
    )
    if errors:
        sys.exit(1)


def refuse_to_send_wrong(settings: Settings) -> None:
    """Stop `send`, `worker` or `scheduler` before anything goes out when every message would be
    wrong (a local link, the demo key, an example sender); the message names the variable."""
    errors = preflight.errors(settings)
    if errors:
        lines = "\n".join(f"  {p.variable}: {p.message}" for p in errors)
        raise click.ClickException(
            _(
                "refusing to send: every message would be wrong.\n{problems}\n"
                "Run `newsletter check` for the whole list."
            ).format(problems=lines)
        )
