"""addresses in their ASCII form: internationalised domains stored as IDNA (xn--)

Rows written before this revision may hold a Unicode domain (`anna@bücher.de`), which no relay
accepts in an envelope and which made a second spelling of the same reader possible. Each such
address and its key get the IDNA form; where that key is taken already (the same reader under
both spellings), the row is left as it is and the lookup still finds both.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 09:00:00
"""

from __future__ import annotations

import idna
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

subscribers = sa.table(
    "subscribers",
    sa.column("id", sa.Integer()),
    sa.column("email", sa.String()),
    sa.column("email_key", sa.String()),
)


def _ascii(address: str) -> str | None:
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii() or not local.isascii():
        return None
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except (idna.IDNAError, UnicodeError):
        return None


def _unicode_rows(connection: sa.Connection) -> list[tuple[int, str, str]]:
    """(id, email, its ASCII form) of every row with a Unicode domain, read in batches."""
    found: list[tuple[int, str, str]] = []
    last = 0
    while True:
        batch = connection.execute(
            sa.select(subscribers.c.id, subscribers.c.email)
            .where(subscribers.c.id > last)
            .order_by(subscribers.c.id)
            .limit(5000)
        ).all()
        if not batch:
            return found
        last = batch[-1][0]
        for row_id, email in batch:
            converted = _ascii(email)
            if converted is not None:
                found.append((row_id, email, converted))


def upgrade() -> None:
    connection = op.get_bind()
    for row_id, _email, converted in _unicode_rows(connection):
        taken = connection.execute(
            sa.select(subscribers.c.id).where(subscribers.c.email_key == converted.lower())
        ).first()
        if taken is not None:
            continue
        connection.execute(
            sa.update(subscribers)
            .where(subscribers.c.id == row_id)
            .values(email=converted, email_key=converted.lower())
        )


def downgrade() -> None:
    # ASCII addresses are valid under every revision: nothing to undo.
    pass
