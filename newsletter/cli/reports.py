"""What came back for an edition, for `newsletter status EDITION`: bounces and complaints."""

from __future__ import annotations

from rich.table import Table

from newsletter.cli._runtime import Runtime, console
from newsletter.i18n import N_, _
from newsletter.storage import ledger_reports

COLUMNS = (N_("kind"), N_("status"), N_("report"), N_("deliveries"))


def show_reports(rt: Runtime, edition_id: int) -> None:
    """The edition's reports per kind, and the reasons they gave."""
    with rt.factory()() as session:
        per_kind = ledger_reports.counts(session, edition_id)
        reasons = ledger_reports.reasons(session, edition_id)
    said = _(
        "Came back for edition {edition}: {hard} bounced (address gone), {soft} soft bounces "
        "(counted), {complaints} complaints."
    )
    console.print(
        said.format(
            edition=edition_id,
            hard=per_kind[ledger_reports.ReportKind.HARD],
            soft=per_kind[ledger_reports.ReportKind.SOFT],
            complaints=per_kind[ledger_reports.ReportKind.COMPLAINT],
        )
    )
    if reasons:
        table = Table(title=_("Bounces and complaints by reason"))
        for column in COLUMNS:
            table.add_column(_(column))
        for kind, status, text, count in reasons:
            table.add_row(kind, status, text, str(count))
        console.print(table)
