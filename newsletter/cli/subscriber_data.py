"""`newsletter subscribers export|forget`: a reader's data out (GDPR art. 15, 20), or erased
(art. 17)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import click

from newsletter.cli._i18n import command
from newsletter.cli._runtime import Runtime, pass_runtime
from newsletter.cli._terminal import TerminalWriter, json_text
from newsletter.cli.subscribers import address_as_stored, keys_of, not_on_list, shown
from newsletter.i18n import _, ngettext
from newsletter.readers import addresses, csv_format, privacy
from newsletter.storage.db import transaction


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """The file, or standard output (escaping control characters when it is a terminal)."""
    if path is None:
        yield cast(IO[str], TerminalWriter(sys.stdout)) if sys.stdout.isatty() else sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as handle:
        yield handle


def _write_json(
    out: IO[str], records: Iterator[dict[str, Any]], header: dict[str, Any]
) -> set[str]:
    """Streams the records; returns the consent text versions they mention."""
    versions: set[str] = set()
    out.write("{\n")
    for key, value in header.items():
        out.write(f"  {json.dumps(key)}: {json_text(json.dumps(value, ensure_ascii=False))},\n")
    out.write('  "subscribers": [')
    for index, record in enumerate(records):
        versions.update(e["consent_version"] for e in record["consent_log"] if e["consent_version"])
        if record["consent_version"]:
            versions.add(record["consent_version"])
        text = json_text(json.dumps(record, ensure_ascii=False, indent=2)).replace("\n", "\n    ")
        out.write(("," if index else "") + "\n    " + text)
    out.write("\n  ],\n")
    return versions


@command("export")
@click.argument("email", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="JSON holds everything, the consent texts too; CSV has one row per subscriber.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.option(
    "--include-pending",
    is_flag=True,
    help="Also export sign-ups that were never confirmed (left out by default).",
)
@pass_runtime
def subscribers_export(
    rt: Runtime, email: str | None, fmt: str, output: Path | None, include_pending: bool
) -> None:
    """Export subscribers with their consent log; with EMAIL, one reader's data (GDPR art. 15).

    One reader's export also lists the letters sent to them. CSV cells that a spreadsheet could
    run as a formula are written as text (a ' in front); `subscribers import` reads them back.
    """
    if output is not None and str(output) == "-":  # the usual word for standard output
        output = None
    address = address_as_stored(email) if email is not None else None
    factory = rt.factory()
    with factory() as session:
        if address is not None and addresses.find_by_address(session, address) is None:
            keys = keys_of(rt)
            erased = privacy.suppressed_since(session, keys, address)
            if erased is not None:
                raise click.ClickException(
                    _(
                        "{address} was erased on {date}; only a keyed hash of it is kept, on the "
                        "suppression list. There is nothing else to export."
                    ).format(address=shown(address), date=f"{erased:%Y-%m-%d}")
                )
            raise not_on_list(address)
        records = privacy.export_records(session, address, include_pending=include_pending)
        with _output(output) as out:
            if fmt == "csv":
                count = csv_format.write(out, records)
            else:
                header = {
                    "list": rt.settings.list_name,
                    "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                }
                versions = _write_json(out, records, header)
                texts = privacy.consent_texts(session, versions)
                texts_json = json_text(json.dumps(texts, ensure_ascii=False))
                out.write(f'  "consent_texts": {texts_json}\n}}\n')
                count = -1
    if output is not None:
        what = (
            ngettext("{count} subscriber", "{count} subscribers", count).format(count=count)
            if count >= 0
            else _("the export")
        )
        click.echo(_("Wrote {what} to {file}.").format(what=what, file=output), err=True)


@command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Erase without asking first.")
@pass_runtime
def subscribers_forget(rt: Runtime, email: str, yes: bool) -> None:
    """Erase everything kept about an address (GDPR art. 17), keeping only a keyed hash.

    The hash sits on a suppression list: imports and `subscribers add` skip the address from
    then on. Its owner can still sign up again through the form, which lifts the suppression.
    """
    keys = keys_of(rt)
    address = address_as_stored(email)
    factory = rt.factory()
    if not yes:
        click.confirm(
            _("Erase everything kept about {address}? This cannot be undone.").format(
                address=shown(address)
            ),
            abort=True,
        )
    with transaction(factory) as session:
        result = privacy.forget(session, keys, address, datetime.now(UTC))
    address = shown(address)
    if result.on_list:
        click.echo(
            _(
                "Erased {address}: the subscriber, their consent log and delivery records are "
                "gone. A keyed hash stays on the suppression list, so imports skip the address."
            ).format(address=address)
        )
    elif result.already_suppressed:
        click.echo(
            _("{address} was not on the list; it was already on the suppression list.").format(
                address=address
            )
        )
    else:
        click.echo(
            _(
                "{address} was not on the list; added it to the suppression list, so imports "
                "skip it."
            ).format(address=address)
        )


# Added to `newsletter subscribers` by newsletter/cli/__init__.py.
DATA_COMMANDS = (subscribers_export, subscribers_forget)
