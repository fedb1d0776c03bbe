"""The consent record: proof on every subscribed row, an append-only log, its sources and IPs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import addresses, consent
from newsletter.settings import Settings
from newsletter.storage.db import downgrade, make_engine, upgrade
from newsletter.storage.models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentText,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import new_token_id
from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.readers import form_token, link_in
from tests.support.relays import SmtpServer, start_smtp
from tests.support.servers import start_site


def log_of(factory: sessionmaker[Session], email: str) -> list[ConsentEvent]:
    with factory() as session:
        return list(
            session.scalars(
                select(ConsentEvent)
                .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
                .where(Subscriber.email_key == email)
                .order_by(ConsentEvent.id)
            )
        )


def bare_subscriber(**values: Any) -> Subscriber:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "email": "x@example.com",
        "email_key": "x@example.com",
        "status": SubscriberStatus.SUBSCRIBED,
        "token_id": new_token_id(),
        "created_at": now,
        "requested_at": now,
        "confirmed_at": now,
        "source": "form",
        "consent_version": "abc",
    }
    fields.update(values)
    return Subscriber(**fields)


# --- proof of consent, enforced by the database ----------------------------------------------


@pytest.mark.parametrize(
    "missing",
    [
        {"confirmed_at": None},
        {"requested_at": None},
        {"source": None},
        {"consent_version": None, "consent_basis": None},
    ],
    ids=["confirmed_at", "requested_at", "source", "version-and-basis"],
)
def test_a_subscribed_row_without_proof_of_consent_is_refused(
    factory: sessionmaker[Session], missing: dict[str, Any]
) -> None:
    with pytest.raises(IntegrityError), factory() as session, session.begin():
        session.add(bare_subscriber(**missing))
    # Pending rows need no proof yet, and a basis is proof enough for an import.
    with factory() as session, session.begin():
        session.add(bare_subscriber(status=SubscriberStatus.PENDING, **missing))
        session.add(
            bare_subscriber(
                email="y@example.com", email_key="y@example.com", consent_version=None,
                consent_basis="paper form",
            )
        )  # fmt: skip


def test_the_consent_log_cannot_be_changed_only_added_to(
    factory: sessionmaker[Session], cli: Cli
) -> None:
    cli("subscribers", "add", "anna@example.com", "--consent", "asked in person")
    with pytest.raises(IntegrityError), factory() as session, session.begin():
        session.execute(update(ConsentEvent).values(detail="something else"))
    [event] = log_of(factory, "anna@example.com")
    assert event.detail == "asked in person"
    with factory() as session, session.begin():  # erasure may delete
        session.execute(delete(ConsentEvent))


# --- every way in and out is logged ---------------------------------------------------------


def test_add_and_import_record_the_operators_basis(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    cli("subscribers", "add", "anna@example.com", "--consent", "asked at the retreat")
    result = cli("subscribers", "add", "bram@example.com")
    assert "no --consent given" in result.stderr
    csv_file = tmp_path / "lijst.csv"
    csv_file.write_text("email,name\ncor@example.org,Cor\ndaan@example.org,\n", encoding="utf-8")
    cli("subscribers", "import", str(csv_file), "--consent", "paper list, Oct 2026")
    expected = {
        "anna@example.com": ("cli", "asked at the retreat"),
        "bram@example.com": ("cli", addresses.NO_BASIS),
        "cor@example.org": ("import", "paper list, Oct 2026"),
        "daan@example.org": ("import", "paper list, Oct 2026"),
    }
    for email, (source, basis) in expected.items():
        with factory() as session:
            row = session.scalars(select(Subscriber).where(Subscriber.email_key == email)).one()
        assert (row.source, row.consent_basis) == (source, basis)
        assert row.confirmed_at is not None and row.requested_at is not None
        [event] = log_of(factory, email)
        assert (event.event, event.source, event.detail) == (
            ConsentEventKind.IMPORTED,
            source,
            basis,
        )


def test_unsubscribing_from_the_cli_is_logged(cli: Cli, factory: sessionmaker[Session]) -> None:
    cli("subscribers", "add", "anna@example.com", "--consent", "test")
    assert (
        "Unsubscribed anna@example.com."
        in cli("subscribers", "unsubscribe", "Anna@Example.com").stdout
    )
    assert "nothing changed" in cli("subscribers", "unsubscribe", "anna@example.com").stdout
    assert "not on the list" in cli("subscribers", "unsubscribe", "x@example.com", code=1).stderr
    events = log_of(factory, "anna@example.com")
    assert [(e.event, e.source) for e in events] == [
        (ConsentEventKind.IMPORTED, "cli"),
        (ConsentEventKind.UNSUBSCRIBED, "cli"),
    ]


@dataclass
class Refusing:
    """A relay that refuses one address for good (550 5.1.1) and takes the rest."""

    refuse: str
    received: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.extend(envelope.rcpt_tos)
        return "250 OK"


def test_a_hard_bounce_is_logged_once(
    cli: Cli, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    handler = Refusing("weg@example.com")
    controller = start_smtp(handler)
    try:
        folder = tmp_path / "issues"
        paths = [write_issue(folder, "een", theme="loslaten"),
                 write_issue(folder, "twee", theme="vasthouden")]  # fmt: skip
        cli("issues", "queue", *map(str, paths))
        cli("subscribers", "add", "anna@example.com", "--consent", "test")
        cli("subscribers", "add", "weg@example.com", "--consent", "test")
        relay = f"smtp://127.0.0.1:{controller.port}"
        cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SMTP_URL=relay)
        cli("send", "--now", "2026-12-06T07:00", NEWSLETTER_SMTP_URL=relay)
    finally:
        controller.stop()
    assert handler.received == ["anna@example.com", "anna@example.com"]
    events = log_of(factory, "weg@example.com")
    assert [(e.event, e.source) for e in events] == [
        (ConsentEventKind.IMPORTED, "cli"),
        (ConsentEventKind.BOUNCED, "relay"),
    ]
    assert [e.event for e in log_of(factory, "anna@example.com")] == [ConsentEventKind.IMPORTED]


# --- client addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "shortened"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12:34::1", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("testclient", None),
        ("", None),
        (None, None),
    ],
)
def test_client_addresses_are_shortened(host: str | None, shortened: str | None) -> None:
    assert consent.shorten_ip(host) == shortened


def test_the_ip_is_logged_only_when_the_operator_turns_it_on(
    env: dict[str, str], engine: Engine, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    site = start_site(env, engine, smtp_server, NEWSLETTER_CONSENT_LOG_IP="true")
    try:
        with httpx.Client() as browser:
            page = browser.get(f"{site.url}/aanmelden")
            assert "ingekort internetadres" in page.text  # the consent text says so
            browser.post(
                f"{site.url}/aanmelden",
                data={"email": "anna@example.com", "csrf_token": form_token(page.text)},
            )
        [mail] = site.wait_for_mail(1)
        httpx.post(link_in(mail, f"{site.url}/bevestig/"))
    finally:
        site.live.stop()
    events = log_of(factory, "anna@example.com")
    assert [(e.event, e.client_ip) for e in events] == [
        (ConsentEventKind.REQUESTED, "127.0.0.0/24"),
        (ConsentEventKind.CONFIRMED, "127.0.0.0/24"),
    ]


def test_each_consent_text_version_is_kept(
    settings: Settings, factory: sessionmaker[Session]
) -> None:
    plain = consent.current(settings)
    with_ip = consent.current(settings.model_copy(update={"consent_log_ip": True}))
    assert plain.version != with_ip.version and len(plain.version) == 12
    now = datetime.now(UTC)
    with factory() as session, session.begin():
        for text_ in (plain, with_ip, plain):
            consent.remember(session, text_, now)
    with factory() as session:
        stored = {t.version: t.text for t in session.scalars(select(ConsentText))}
    assert stored == {plain.version: plain.text, with_ip.version: with_ip.text}
    assert "Afmelden kan altijd" in plain.text


# --- the migration ---------------------------------------------------------------------------


def test_readers_from_before_the_consent_record_are_marked_as_such(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO subscribers (email, email_key, status, token_id, created_at,"
                    " subscribed_at) VALUES ('a@example.com', 'a@example.com', 'subscribed',"
                    " :token, :now, :now)"
                ),
                {"token": new_token_id(), "now": datetime(2026, 1, 1)},
            )
        upgrade(engine)
        with sessionmaker(engine)() as session:
            row = session.scalars(select(Subscriber)).one()
            assert row.source == "migration" and row.consent_basis
            assert row.confirmed_at == datetime(2026, 1, 1, tzinfo=UTC)
            [event] = session.scalars(select(ConsentEvent)).all()
            assert (event.event, event.source) == (ConsentEventKind.IMPORTED, "migration")
        downgrade(engine, "0001")
        upgrade(engine)
    finally:
        engine.dispose()
