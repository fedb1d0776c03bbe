"""`subscribers list` shows who pauses until when and who gets the next letter; `subscribers
change` corrects an address or a name, logged as the operator's change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import subscriptions
from newsletter.storage.db import transaction
from newsletter.storage.models import ConsentEvent, ConsentEventKind, Subscriber
from tests.support.cli import Cli


def reader(session: Session, email: str) -> Subscriber:
    found = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
    return found


def test_paused_readers_show_when_they_come_back_and_the_count_of_the_next_letter(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    for email in ("anna@example.com", "bram@example.com", "cor@example.com", "daan@example.com"):
        cli("subscribers", "add", email)
    cli("subscribers", "unsubscribe", "daan@example.com")
    now = datetime.now(UTC)
    with transaction(factory) as session:
        until = subscriptions.pause(session, reader(session, "bram@example.com"), 4, now)
    assert until is not None
    back = until.astimezone(UTC).astimezone().strftime("%Y-%m-%d")

    everyone = cli("subscribers", "list").stdout
    assert "paused until" in everyone
    assert "4 subscribers listed." in everyone
    assert "goes to 2 of them." in everyone  # anna and cor: not bram (paused), not daan (left)
    paused = cli("subscribers", "list", "--status", "paused").stdout
    assert "bram@example.com" in paused and "anna@example.com" not in paused
    assert "1 subscriber listed." in paused
    assert back[:7] in paused  # the month they come back in (the zone may shift the day)


def test_change_corrects_address_and_name_and_logs_it_as_the_operators(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    cli("subscribers", "add", "anna@exmaple.com", "--name", "Ana")
    out = cli("subscribers", "change", "anna@exmaple.com", "--email", "anna@example.com",
              "--name", "Anna").stdout  # fmt: skip
    assert "address anna@exmaple.com → anna@example.com; name changed" in out
    with factory() as session:
        anna = reader(session, "anna@example.com")
        assert anna.name == "Anna" and anna.email_key == "anna@example.com"
        (event,) = session.scalars(
            select(ConsentEvent).where(ConsentEvent.event == ConsentEventKind.CHANGED)
        )
        assert event.subscriber_id == anna.id and event.source == "cli"
        assert event.detail == "address anna@exmaple.com → anna@example.com; name changed"
    assert "nothing to change" in cli("subscribers", "change", "ANNA@example.com",
                                      "--name", "Anna").stdout  # fmt: skip
    cleared = cli("subscribers", "change", "anna@example.com", "--name", "").stdout
    assert "name cleared" in cleared


def test_change_refuses_an_address_in_use_or_erased_and_asks_what_to_change(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    cli("subscribers", "add", "anna@example.com")
    cli("subscribers", "add", "bram@example.com")
    cli("subscribers", "forget", "weg@example.com", "--yes")
    taken = cli("subscribers", "change", "anna@example.com", "--email", "Bram@example.com", code=1)
    assert "bram@example.com is already on the list (subscribed)" in taken.stderr.lower()
    erased = cli("subscribers", "change", "anna@example.com", "--email", "weg@example.com", code=1)
    assert "erased on request" in erased.stderr
    bad = cli("subscribers", "change", "anna@example.com", "--email", "geen-adres", code=1)
    assert "geen-adres" in bad.stderr
    assert "--email NEW" in cli("subscribers", "change", "anna@example.com", code=2).stderr
    missing = cli("subscribers", "change", "niemand@example.com", "--name", "X", code=1)
    assert "is not on the list" in missing.stderr
    with factory() as session:
        assert reader(session, "anna@example.com").email == "anna@example.com"
        changed = session.scalars(
            select(ConsentEvent).where(ConsentEvent.event == ConsentEventKind.CHANGED)
        ).all()
        assert changed == []


def test_a_pause_that_ends_before_the_next_letter_counts_that_reader_in(
    cli: Cli, factory: sessionmaker[Session]
) -> None:
    cli("subscribers", "add", "anna@example.com")
    a_week_ago = datetime.now(UTC) - timedelta(weeks=1) + timedelta(minutes=1)
    with transaction(factory) as session:
        subscriptions.pause(session, reader(session, "anna@example.com"), 1, a_week_ago)
    assert "paused until" in cli("subscribers", "list").stdout
    assert "goes to 1 of them." in cli("subscribers", "list").stdout
