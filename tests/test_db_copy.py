"""`newsletter db copy --to URL`: a lived-in SQLite installation moves and loses nothing.

The source is a SQLite file with a reader in every state, a consent log, an erasure, sign-up
attempts, two sent editions and their ledger. It is copied to the target (a SQLite file, or
PostgreSQL when configured) and from there back into a fresh SQLite file: every table compares
equal row by row, ids included; the target keeps its append-only consent log and hands out new
ids after the copied ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import IntegrityError

from newsletter.notices import record
from newsletter.readers import subscriptions
from newsletter.storage.copying import table_groups
from newsletter.storage.db import downgrade, make_engine, session_factory, upgrade
from newsletter.storage.models import ConsentEvent, Subscriber
from tests.support.cli import Cli
from tests.support.databases import installation_env, sqlite_url
from tests.support.issue_files import write_issue
from tests.support.readers import link_in, path_for, sign_up
from tests.support.relays import SmtpServer
from tests.support.servers import start_site


def rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the schema, in primary-key order, as Python values."""
    found = {}
    with engine.connect() as connection:
        for _, tables in table_groups():
            for table in tables:
                query = select(table).order_by(*table.primary_key.columns)
                found[table.name] = [dict(row._mapping) for row in connection.execute(query)]
    return found


def installation(folder: Path) -> tuple[dict[str, str], Engine]:
    folder.mkdir()
    env = installation_env(sqlite_url(folder), folder)
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    upgrade(engine)
    return env, engine


@pytest.fixture
def source(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[dict[str, str], Engine]]:
    """A SQLite installation that has lived a little."""
    env, engine = installation(tmp_path / "bron")
    cli = Cli(env)
    folder = tmp_path / "bron" / "issues"
    cli("issues", "queue", str(write_issue(folder, "een")),
        str(write_issue(folder, "twee", theme="vasthouden")))  # fmt: skip
    for email in ("anna", "bram", "cor", "daan"):
        cli("subscribers", "add", f"{email}@example.com", "--name", email.title(), "--consent", "x")
    cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    cli("subscribers", "unsubscribe", "bram@example.com")
    site = start_site(env, engine, smtp_server)
    try:
        sign_up(site, "eva@example.com", "Eva")
        httpx.post(link_in(site.wait_for_mail(5)[-1], f"{site.url}/bevestig/"))
        sign_up(site, "fleur@example.com")  # never confirmed
        site.wait_for_mail(6)
        factory = session_factory(engine)
        with factory() as session:
            cor = session.scalars(select(Subscriber).where(Subscriber.email == "cor@example.com"))
            pause = path_for(site.settings, cor.one()).replace("/afmelden/", "/pauzeren/")
        httpx.post(site.url + pause, data={"weken": "8"})
    finally:
        site.live.server.should_exit = True
        site.live.thread.join(timeout=10)
    with factory() as session, session.begin():
        daan = session.scalars(select(Subscriber.id).where(Subscriber.email == "daan@example.com"))
        subscriptions.mark_bounced(session, [daan.one()], datetime.now(UTC), source="relay",
                                   detail="550 5.1.1")  # fmt: skip
    cli("subscribers", "forget", "anna@example.com", "--yes")
    cli("send", "--now", "2026-12-06T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    with factory() as session, session.begin():
        draft = record.Draft("report:1", "report", "Je brief van zondag", "Bereikt: 3.")
        notice = record.claim(session, draft, "auteur@example.org", datetime.now(UTC))
        assert notice is not None
        session.flush()
        record.mark_sent(session, notice.id, datetime.now(UTC))
    try:
        yield env, engine
    finally:
        engine.dispose()


def test_a_copy_there_and_back_compares_equal_row_by_row(
    source: tuple[dict[str, str], Engine], database_url: str, tmp_path: Path
) -> None:
    env, engine = source
    before = rows(engine)
    assert all(before[name] for name in before), {k: len(v) for k, v in before.items()}
    result = Cli(env)("db", "copy", "--to", database_url)
    assert "Created the schema" in result.stdout and "the row counts match" in result.stdout
    target = make_engine(database_url)
    try:
        assert rows(target) == before
        back = tmp_path / "terug"
        back.mkdir()
        there = installation_env(database_url, back)
        Cli(there)("db", "copy", "--to", sqlite_url(back))
        returned = make_engine(sqlite_url(back))
        try:
            assert rows(returned) == before
        finally:
            returned.dispose()
        # The target goes on as a working installation: new ids after the copied ones, and
        # a consent log that is still only ever added to.
        Cli(there)("subscribers", "add", "nieuw@example.com", "--consent", "after the move")
        with target.begin() as connection:
            newest = connection.scalar(select(Subscriber.id).order_by(Subscriber.id.desc()))
            assert newest == max(r["id"] for r in before["subscribers"]) + 1
        with pytest.raises(IntegrityError), target.begin() as connection:
            connection.execute(update(ConsentEvent).values(detail="changed"))
    finally:
        target.dispose()


def test_a_target_that_is_not_empty_or_not_current_is_refused(
    source: tuple[dict[str, str], Engine], database_url: str
) -> None:
    env, _ = source
    cli = Cli(env)
    target = make_engine(database_url)
    try:
        upgrade(target, "0003")
        assert "db upgrade" in cli("db", "copy", "--to", database_url, code=1).stderr
        upgrade(target)
        Cli({**env, "NEWSLETTER_DATABASE_URL": database_url})(
            "subscribers", "add", "al@example.com", "--consent", "x"
        )
        refused = cli("db", "copy", "--to", database_url, code=1).stderr
        assert "not empty" in refused and "subscribers (1)" in refused
        downgrade(target, "base")
        with target.begin() as connection:
            connection.execute(text("CREATE TABLE iets (id INTEGER)"))
        assert "no schema revision" in cli("db", "copy", "--to", database_url, code=1).stderr
    finally:
        target.dispose()
    assert "the configured database itself" in (
        cli("db", "copy", "--to", env["NEWSLETTER_DATABASE_URL"], code=1).stderr
    )


def test_a_copy_that_fails_halfway_leaves_the_target_empty(
    source: tuple[dict[str, str], Engine], tmp_path: Path
) -> None:
    env, _ = source
    url = sqlite_url(tmp_path / "half")
    (tmp_path / "half").mkdir()
    target = make_engine(url)
    try:
        upgrade(target)
        with target.begin() as connection:  # the ledger cannot be written in this target
            connection.execute(
                text(
                    "CREATE TRIGGER no_ledger BEFORE INSERT ON deliveries"
                    " BEGIN SELECT RAISE(ABORT, 'no room for the ledger'); END"
                )
            )
        failed = Cli(env)("db", "copy", "--to", url, code=1).stderr
        assert "copying the issues and deliveries failed" in failed
        assert "emptied again" in failed
        assert all(not table_rows for table_rows in rows(target).values())
    finally:
        target.dispose()
