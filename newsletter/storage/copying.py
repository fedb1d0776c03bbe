"""`db copy`: a whole installation from one database into an empty one, every row and id.

The way to move from SQLite to PostgreSQL (and back): subscribers with their status and pauses,
the consent log and texts, the suppression list, sign-up attempts, issues, editions, the
delivery ledger and the notices to the author, with the same ids (PostgreSQL's sequences are
moved past them). The source is read in one transaction (one snapshot); the target is written
in one transaction per group of tables, in batches so memory stays flat, and the row counts are
compared afterwards. A target that is not empty is refused; if a group fails, what was copied
before it is removed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from newsletter.i18n import _
from newsletter.storage.db import current_revisions, upgrade
from newsletter.storage.models import Base

BATCH = 1000
# Tables copied together, in one transaction each; any table not named here goes last.
GROUPS = (
    (
        "readers",
        ("subscribers", "consent_texts", "consent_events", "suppressions", "signup_attempts"),
    ),
    ("issues and deliveries", ("issues", "editions", "deliveries")),
    ("notices to the author", ("notices",)),
)  # fmt: skip - one group per line reads as the list it is


class CopyError(RuntimeError):
    """The copy cannot start, or did not finish; the message says why and what was left."""


@dataclass(frozen=True)
class Copied:
    """One table as copied: its name and how many rows went over."""

    table: str
    rows: int


def table_groups() -> list[tuple[str, list[Table]]]:
    """Every table of the schema, grouped, parents before the tables that point at them."""
    ordered = Base.metadata.sorted_tables
    groups = [(label, [t for t in ordered if t.name in names]) for label, names in GROUPS]
    named = {name for _, names in GROUPS for name in names}
    rest = [table for table in ordered if table.name not in named]
    return groups + ([("other", rest)] if rest else [])


def _where(engine: Engine) -> str:
    url = make_url(engine.url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:{Path(url.database or '').resolve()}"
    return url.render_as_string(hide_password=True)


def _count(connection: Connection, table: Table) -> int:
    return int(connection.scalar(select(func.count()).select_from(table)) or 0)


def prepare_target(source: Engine, target: Engine) -> bool:
    """Make sure the target is another database, empty and at this code's schema; True if it
    was migrated here.

    A database without any table is migrated; one at another revision, or holding any row, is
    refused.
    """
    if _where(source) == _where(target):
        raise CopyError(_("the target is the configured database itself"))
    heads, current = current_revisions(target)
    migrated = False
    if not current:
        if inspect(target).get_table_names():
            raise CopyError(
                _("the target has tables but no schema revision: use an empty database")
            )
        upgrade(target)
        migrated = True
    elif current != heads:
        raise CopyError(
            _(
                "the target's schema is at {theirs}, this code's at {ours}: run "
                "`newsletter db upgrade` on it, or use an empty one"
            ).format(theirs=", ".join(sorted(current)), ours=", ".join(sorted(heads)))
        )
    with target.connect() as connection:
        filled = [
            f"{table.name} ({count})"
            for _, tables in table_groups()
            for table in tables
            if (count := _count(connection, table))
        ]
    if filled:
        raise CopyError(
            _("the target is not empty ({tables} rows): copy only into an empty database").format(
                tables=", ".join(filled)
            )
        )
    return migrated


def _copy_table(source: Connection, target: Connection, table: Table, batch: int) -> int:
    """Every row of the table, in primary-key order, `batch` rows at a time."""
    [key] = table.primary_key.columns
    copied = 0
    last = None
    while True:
        query = select(table).order_by(key).limit(batch)
        if last is not None:
            query = query.where(key > last)
        rows = [dict(row._mapping) for row in source.execute(query)]
        if not rows:
            return copied
        target.execute(insert(table), rows)
        copied += len(rows)
        last = rows[-1][key.name]


def _move_sequences(target: Connection, tables: list[Table]) -> None:
    """PostgreSQL: each id sequence continues after the highest id copied."""
    if target.dialect.name != "postgresql":
        return  # SQLite takes the next id from the table itself
    for table in tables:
        [key] = table.primary_key.columns
        if not isinstance(key.type, Integer):
            continue
        target.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column),"  # noqa: S608 - names from the schema
                f' COALESCE((SELECT MAX("{key.name}") FROM "{table.name}"), 0) + 1, false)'
            ),
            {"table": table.name, "column": key.name},
        )


def _remove(target: Engine, tables: list[Table]) -> None:
    """Take out again what an unfinished copy put in, children first."""
    with target.begin() as connection:
        for table in reversed(tables):
            connection.execute(delete(table))


@contextmanager
def _snapshot(source: Engine) -> Iterator[Connection]:
    """One read transaction over the whole copy (PostgreSQL: repeatable read, one snapshot;
    SQLite: the write lock, so nothing changes meanwhile)."""
    with source.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def copy(
    source: Engine,
    target: Engine,
    *,
    batch: int = BATCH,
    on_table: Callable[[Copied], None] | None = None,
) -> list[Copied]:
    """Copy every row of `source` into the empty, migrated `target`; CopyError if not done.

    The caller has checked that `source` is at this code's schema; `prepare_target` the target.
    """
    copied: list[Copied] = []
    written: list[Table] = []
    with _snapshot(source) as reading:
        for label, tables in table_groups():
            try:
                with target.begin() as writing:
                    for table in tables:
                        done = Copied(table.name, _copy_table(reading, writing, table, batch))
                        copied.append(done)
                        if on_table is not None:
                            on_table(done)
                    _move_sequences(writing, tables)
            except SQLAlchemyError as exc:
                _remove(target, written)
                reason = str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0]
                raise CopyError(
                    _(
                        "copying the {group} failed ({kind}: {reason}); the target was "
                        "emptied again"
                    ).format(group=label, kind=type(exc).__name__, reason=reason)
                ) from None
            written.extend(tables)
        _verify(reading, target, written)
    return copied


def _verify(source: Connection, target: Engine, tables: list[Table]) -> None:
    """The same number of rows on both sides, table by table."""
    with target.connect() as connection:
        differ = [
            _("{table} ({ours} here, {theirs} there)").format(
                table=table.name, ours=ours, theirs=theirs
            )
            for table in tables
            if (ours := _count(source, table)) != (theirs := _count(connection, table))
        ]
    if differ:
        raise CopyError(
            _("row counts differ after the copy: {tables}").format(tables=", ".join(differ))
        )
