"""Addresses and names at the door: an internationalised domain is one reader in either
spelling, stored and sent in ASCII and shown in Unicode; a bad name is named as the name; the
Message-ID says nothing about the list or the reader."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.settings import Settings
from newsletter.storage.db import downgrade, make_engine, upgrade
from newsletter.storage.models import Subscriber, SubscriberStatus
from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.readers import sign_up
from tests.support.relays import SmtpServer
from tests.support.servers import Site


def test_both_spellings_of_an_internationalised_domain_are_one_reader(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    assert "Added anna@bücher.de." in cli("subscribers", "add", "anna@bücher.de").stdout
    again = cli("subscribers", "add", "Anna@XN--BCHER-KVA.DE", code=1)
    assert "Anna@bücher.de is already on the list (subscribed)" in again.stderr
    assert "anna@bücher.de" in cli("subscribers", "list").stdout
    with factory() as session:
        assert session.scalars(select(Subscriber.email)).all() == ["anna@xn--bcher-kva.de"]
    # Every answer shows the domain as people write it, never its ASCII form.
    assert (
        "Unsubscribed anna@bücher.de." in cli("subscribers", "unsubscribe", "ANNA@bücher.de").stdout
    )
    changed = cli(
        "subscribers", "change", "anna@xn--bcher-kva.de", "--email", "anna@例え.jp"
    ).stdout
    assert "address anna@bücher.de → anna@例え.jp" in changed
    missing = cli("subscribers", "unsubscribe", "niemand@例え.jp", code=1).stderr
    assert "niemand@例え.jp is not on the list" in missing
    forgotten = cli("subscribers", "forget", "anna@例え.jp", "--yes").stdout
    assert "Erased anna@例え.jp" in forgotten and "xn--" not in forgotten
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "bram@bücher.de")
    cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    assert [r.rcpt_tos for r in smtp_server.received] == [["bram@xn--bcher-kva.de"]]
    assert smtp_server.received[0].message["To"].addresses[0].domain == "xn--bcher-kva.de"


def test_a_local_part_that_needs_smtputf8_is_refused_with_the_reason(cli: Cli) -> None:
    result = cli("subscribers", "add", "jösé@example.com", code=1)
    assert "would need SMTPUTF8" in result.stderr


def test_a_bad_name_is_named_as_the_name_on_add_and_import(cli: Cli, tmp_path: Path) -> None:
    added = cli("subscribers", "add", "eva@example.com", "--name", "Eva\tde Vries", code=1)
    assert "the name holds a tab" in added.stderr
    assert "eva@example.com:" not in added.stderr, "not reported as a bad address"
    csv = tmp_path / "lezers.csv"
    csv.write_text(
        "email,name\nanna@example.com,Anna\nbram@example.com,=?utf-8?q?Bram?=\n"
        "cor@example.com,Cor\u2028Jansen\n",
        encoding="utf-8",
    )
    out = cli("subscribers", "import", str(csv), code=1).stderr
    assert "lezers.csv:3: skipped: the name holds '=?'" in out
    assert "lezers.csv:4: skipped: the name holds a line separator (U+2028)" in out


def test_the_sign_up_form_says_the_name_is_the_problem(site: Site) -> None:
    response = sign_up(site, "eva@example.com", "Eva\u202ede Vries")
    assert response.status_code == 400
    assert "zoals een tab of een onzichtbaar teken" in response.text
    assert "Dit e-mailadres lijkt niet helemaal te kloppen" not in response.text


def test_message_ids_reveal_neither_list_size_nor_reader(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    for i in range(3):
        cli("subscribers", "add", f"lezer{i}@example.com")
    cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    ids = [r.message["Message-ID"] for r in smtp_server.received]
    assert len(set(ids)) == 3
    seeds = set()
    for message_id in ids:
        # The edition's random seed, then one encrypted block naming the delivery (mail/verp.py):
        # no delivery id, no address.
        match = re.fullmatch(
            r"<([0-9a-f]{16})\.([A-Za-z0-9_-]{22})@nieuws\.example\.nl>", message_id
        )
        assert match, message_id
        assert "lezer" not in message_id
        seeds.add(match.group(1))
    assert len(seeds) == 1


def test_the_migration_stores_an_older_unicode_domain_in_ascii(
    settings: Settings, engine: Engine
) -> None:
    fresh = make_engine(settings.database_url)
    try:
        # Back to the revision before, with a row as an older version stored it.
        downgrade(fresh, "0003")
        now = datetime(2026, 11, 1, tzinfo=UTC)
        with fresh.begin() as connection:
            connection.execute(
                insert(Subscriber.__table__).values(  # type: ignore[arg-type]
                    email="cor@bücher.de",
                    email_key="cor@bücher.de",
                    name="Cor",
                    status=SubscriberStatus.SUBSCRIBED.value,
                    token_id="0" * 32,
                    created_at=now,
                    requested_at=now,
                    confirmed_at=now,
                    source="cli",
                    consent_basis="test",
                    confirm_sends=0,
                )
            )
        upgrade(fresh)
        with fresh.connect() as connection:
            row = connection.execute(select(Subscriber.email, Subscriber.email_key)).one()
    finally:
        fresh.dispose()
    assert tuple(row) == ("cor@xn--bcher-kva.de", "cor@xn--bcher-kva.de")
