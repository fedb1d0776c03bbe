"""What came back for an edition, for `newsletter status EDITION`: bounces and complaints."""

from __future__ import annotations

from rich.table import Table

from newsletter.cli._runtime import Runtime, console
from newsletter.storage import ledger_reports


def show_reports(rt: Runtime, edition_id: int) -> None:
    """The edition's reports per kind, and the reasons they gave."""
    with rt.factory()() as session:
        per_kind = ledger_reports.counts(session, edition_id)
        reasons = ledger_reports.reasons(session, edition_id)
    console.print(
        f"Came back for edition {edition_id}: "
        f"{per_kind[ledger_reports.ReportKind.HARD]} bounced (address gone), "
        f"{per_kind[ledger_reports.ReportKind.SOFT]} soft bounces (counted), "
        f"{per_kind[ledger_reports.ReportKind.COMPLAINT]} complaints."
    )
    if reasons:
        table = Table(title="Bounces and complaints by reason")
        for column in ("kind", "status", "report", "deliveries"):
            table.add_column(column)
        for kind, status, text, count in reasons:
            table.add_row(kind, status, text, str(count))
        console.print(table)
