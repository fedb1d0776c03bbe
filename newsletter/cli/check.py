"""`newsletter check`: is the sending set-up sound? (DKIM and the bounce address, so far.)

The delivery-hardening work brings a fuller `newsletter check`; these checks are plain functions
in `newsletter.mail.checks`, so that command can run them too.
"""

from __future__ import annotations

import sys

import click

from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.mail.checks import bounce_checks, dkim_checks


@click.command()
@pass_runtime
def check(rt: Runtime) -> None:
    """Check the sending set-up: sign a test message (DKIM) and look at the bounce address."""
    findings = [*dkim_checks(rt.settings), *bounce_checks(rt.settings)]
    for finding in findings:
        click.echo(f"{finding.level}: {finding.text}", err=finding.level != "note")
    problems = sum(1 for f in findings if f.level == "problem")
    warnings = sum(1 for f in findings if f.level == "warning")
    click.echo(f"{problems} problem(s), {warnings} warning(s).")
    if problems:
        sys.exit(1)
