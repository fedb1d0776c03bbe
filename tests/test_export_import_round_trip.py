"""Export, then import into a fresh database: every reader is in the state they were in.

A list that has lived a little (sign-ups confirmed and not, readers who left, paused, bounced,
names a spreadsheet would misread) goes out as CSV and comes back: with --keep-status everyone
is as they were; without it only subscribers come in, and nobody who left is put on the list.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import subscriptions
from newsletter.storage.db import make_engine, session_factory, upgrade
from newsletter.storage.models import Subscriber, SubscriberStatus
from tests.support.cli import Cli
from tests.support.databases import installation_env, sqlite_url
from tests.support.readers import link_in, path_for, sign_up
from tests.support.servers import Site

STATE = (
    "name",
    "status",
    "source",
    "requested_at",
    "confirmed_at",
    "consent_version",
    "consent_basis",
    "created_at",
    "subscribed_at",
    "unsubscribed_at",
    "bounced_at",
    "paused_until",
)  # fmt: skip - the columns of a reader's state, read as one list


def states(factory: sessionmaker[Session]) -> dict[str, tuple[Any, ...]]:
    with factory() as session:
        return {
            s.email: tuple(getattr(s, column) for column in STATE)
            for s in session.scalars(select(Subscriber))
        }


@pytest.fixture
def lived_in(site: Site, factory: sessionmaker[Session]) -> Site:
    """A list with a reader in every state, some with names a spreadsheet would run."""
    cli = site.cli
    cli("subscribers", "add", "anna@example.com", "--name", "=HYPERLINK(\"http://x\",\"klik\")",
        "--consent", "asked at the retreat")  # fmt: skip
    cli("subscribers", "add", "--name", "'t Hart", "--consent", "paper", "--", "-bram@example.com")
    cli("subscribers", "add", "cor@example.com", "--name", "@Cor", "--consent", "+31 form")
    cli("subscribers", "unsubscribe", "cor@example.com")
    sign_up(site, "dirk@example.com", "-Dirk")
    httpx.post(link_in(site.wait_for_mail(1)[0], f"{site.url}/bevestig/"))
    sign_up(site, "eva@example.com", "Eva")  # never confirmed
    site.wait_for_mail(2)
    cli("subscribers", "add", "fleur@example.com", "--consent", "test")
    with factory() as session, session.begin():
        fleur = session.scalars(select(Subscriber).where(Subscriber.email == "fleur@example.com"))
        pause_path = path_for(site.settings, fleur.one()).replace("/afmelden/", "/pauzeren/")
    assert httpx.post(site.url + pause_path, data={"weken": "4"}).status_code == 200
    cli("subscribers", "add", "gijs@example.com", "--consent", "test")
    with factory() as session, session.begin():
        gijs = session.scalars(select(Subscriber).where(Subscriber.email == "gijs@example.com"))
        subscriptions.mark_bounced(
            session, [gijs.one().id], datetime.now(UTC) - timedelta(days=1),
            source="relay", detail="550 5.1.1",
        )  # fmt: skip
    return site


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Cli, sessionmaker[Session]]]:
    """A second installation, empty, on a SQLite file of its own."""
    folder = tmp_path / "nieuw"
    folder.mkdir()
    env = installation_env(sqlite_url(folder), folder)
    engine: Engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    upgrade(engine)
    try:
        yield Cli(env), session_factory(engine)
    finally:
        engine.dispose()


def test_with_keep_status_everyone_comes_back_as_they_were(
    lived_in: Site,
    factory: sessionmaker[Session],
    fresh: tuple[Cli, sessionmaker[Session]],
    tmp_path: Path,
) -> None:
    export = tmp_path / "lijst.csv"
    lived_in.cli("subscribers", "export", "--format", "csv", "--include-pending", "-o", str(export))
    before = states(factory)
    assert {s[1] for s in before.values()} == set(SubscriberStatus)
    cli, new = fresh
    result = cli("subscribers", "import", str(export), "--keep-status", "--consent", "moved")
    assert "Imported 7, 1 of them bounced, 1 of them pending, 1 of them unsubscribed" in (
        result.stdout
    )
    assert states(new) == before


def test_without_keep_status_only_subscribers_come_in_and_nobody_who_left(
    lived_in: Site,
    factory: sessionmaker[Session],
    fresh: tuple[Cli, sessionmaker[Session]],
    tmp_path: Path,
) -> None:
    export = tmp_path / "lijst.csv"
    lived_in.cli("subscribers", "export", "--format", "csv", "--include-pending", "-o", str(export))
    before = states(factory)
    cli, new = fresh
    result = cli("subscribers", "import", str(export), code=1)
    for line in (4, 6, 8):  # cor (left), eva (never confirmed), gijs (bounced)
        assert f"{export}:{line}: skipped: status " in result.stderr
    after = states(new)
    assert set(after) == {e for e, s in before.items() if s[1] is SubscriberStatus.SUBSCRIBED}
    assert all(after[email] == before[email] for email in after)
    # And importing the same file again changes nobody.
    again = cli("subscribers", "import", str(export), "--keep-status")
    assert "Imported 3," in again.stdout and "already there 4" in again.stdout
    assert states(new)["anna@example.com"] == before["anna@example.com"]
    assert states(new)["cor@example.com"][1] is SubscriberStatus.UNSUBSCRIBED


def test_a_row_that_says_it_left_is_never_imported_as_subscribed(
    fresh: tuple[Cli, sessionmaker[Session]], tmp_path: Path
) -> None:
    cli, new = fresh
    hand_made = tmp_path / "lijst.csv"
    hand_made.write_text(
        "email,status,unsubscribed_at\n"
        "a@example.com,subscribed,2026-10-01T10:00:00Z\n"
        "b@example.com,subscribed,\n"
        "c@example.com,weg,\n"
        "d@example.com,,\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "import", str(hand_made), "--keep-status", code=1)
    assert f"{hand_made}:2: skipped: the file says this reader left" in result.stderr
    assert f"{hand_made}:4: skipped: status: 'weg' is not one of" in result.stderr
    assert f"{hand_made}:5: skipped: status: '' is not one of" in result.stderr
    assert set(states(new)) == {"b@example.com"}


def test_pending_sign_ups_are_exported_only_when_asked(lived_in: Site) -> None:
    plain = lived_in.cli("subscribers", "export", "--format", "csv").stdout
    emails = [row["email"] for row in csv.DictReader(io.StringIO(plain))]
    assert "eva@example.com" not in emails and len(emails) == 6
    data = json.loads(lived_in.cli("subscribers", "export").stdout)
    assert "eva@example.com" not in [s["email"] for s in data["subscribers"]]
    data = json.loads(lived_in.cli("subscribers", "export", "--include-pending").stdout)
    assert "eva@example.com" in [s["email"] for s in data["subscribers"]]
    # Her own data is hers to ask for, confirmed or not.
    [eva] = json.loads(lived_in.cli("subscribers", "export", "eva@example.com").stdout)[
        "subscribers"
    ]
    assert eva["status"] == "pending"


def test_a_dash_for_output_is_standard_output(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("subscribers", "add", "anna@example.nl", "--consent", "op papier")
    monkeypatch.chdir(tmp_path)
    written = cli("subscribers", "export", "--output", "-").stdout
    assert json.loads(written)["subscribers"][0]["email"] == "anna@example.nl"
    assert not (tmp_path / "-").exists()
