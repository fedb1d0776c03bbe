"""`newsletter dkim keygen`: a signing key and the DNS record to publish for it."""

from __future__ import annotations

import os
from pathlib import Path

import click

from newsletter.cli._i18n import group
from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.i18n import _
from newsletter.mail import dkim as signing


@group()
def dkim() -> None:
    """DKIM signing keys."""


@dkim.command("keygen")
@click.option("--selector", required=True, help="The DKIM selector, e.g. nl2026.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the private key (default: <selector>.pem here); never overwritten.",
)
@click.option(
    "--type",
    "kind",
    type=click.Choice(["rsa", "ed25519"]),
    default="rsa",
    show_default=True,
    help="RSA-2048 is verified everywhere; add an Ed25519 key for a second, faster signature.",
)
@pass_runtime
def keygen(rt: Runtime, selector: str, out: Path | None, kind: str) -> None:
    """Write a new private key and print the DNS TXT record to publish for it."""
    target = out or Path(f"{selector}.pem")
    pem, key = signing.generate_key(kind)
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(
            _("{path} exists; choose another --out").format(path=target)
        ) from None
    except OSError as exc:
        raise click.ClickException(
            _("cannot write {path}: {reason}").format(path=target, reason=exc.strerror)
        ) from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    domain = rt.settings.dkim_domain or rt.settings.sender_domain.lower()
    record = signing.public_record(key)
    click.echo(
        _("Wrote the {kind} private key to {path} (readable by you only).").format(
            kind=kind, path=target
        )
    )
    click.echo(
        _("Publish this TXT record at {name}:").format(name=f"{selector}._domainkey.{domain}")
        + "\n"
    )
    click.echo(signing.zone_line(selector, domain, record))
    then = _(
        "Then set NEWSLETTER_DKIM_SELECTOR={selector} and NEWSLETTER_DKIM_KEY_FILE={path}. "
        "For two signatures (RSA and Ed25519), make one key of each type, each with a selector "
        "of its own, and list both, in the same order, in each variable, separated by a comma."
    )
    click.echo("\n" + then.format(selector=selector, path=target.resolve()))
