"""One bad reader, one bad issue or one refusing relay fails only what it is about: poisoned
readers from an older version, an issue that cannot become a message, a relay that throttles
everyone or refuses the sender (aiosmtpd relays with scripted replies)."""

from __future__ import annotations

import socketserver
import threading
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
)
from tests.support.cli import Cli
from tests.support.issue_files import queue_and_import
from tests.support.relays import ScriptedHandler, start_smtp

SUNDAY = datetime.fromisoformat("2026-11-29T07:00:00+01:00")


def readers(count: int) -> list[str]:
    return [f"lezer{i:02d}@example.com" for i in range(count)]


def deliveries(factory: sessionmaker[Session]) -> dict[str, Delivery]:
    with factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    return {email: delivery for email, delivery in rows}


def corrupt(factory: sessionmaker[Session], who: str, **values: str) -> None:
    """What an older version let in, written straight into the table."""
    with factory() as session, session.begin():
        session.execute(update(Subscriber).where(Subscriber.email == who).values(**values))


def test_poisoned_readers_in_the_middle_fail_alone_and_the_rest_get_it_once(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = readers(9)
    queue_and_import(cli, tmp_path, addresses)
    corrupt(factory, addresses[3], name="Eva\r\nBcc: dief@example.com")
    corrupt(factory, addresses[4], email="jösé@example.com", email_key="jösé@example.com")
    corrupt(factory, addresses[5], email="anna@bücher.de", email_key="anna@bücher.de")
    handler = ScriptedHandler()
    controller = start_smtp(handler)
    try:
        relay = f"smtp://127.0.0.1:{controller.port}"
        result = cli("send", "--now", SUNDAY.isoformat(), NEWSLETTER_SMTP_URL=relay)
        again = cli("send", "--now", (SUNDAY + timedelta(hours=1)).isoformat(),
                    NEWSLETTER_SMTP_URL=relay)  # fmt: skip
    finally:
        controller.stop()
    assert "Sent 7, failed 2" in result.stdout
    assert "Nothing to deliver right now." in again.stdout
    good = [a for a in addresses if a not in addresses[3:6]]
    # The Unicode domain of an older row goes out in its ASCII form.
    assert sorted(handler.accepted) == sorted([*good, "anna@xn--bcher-kva.de"])
    assert all(len(ids) == 1 for ids in handler.accepted.values())
    assert "dief@example.com" not in str(handler.accepted)
    final = deliveries(factory)
    for email in (addresses[3], "jösé@example.com"):
        assert final[email].status is DeliveryStatus.FAILED
        assert (final[email].last_reply or "").startswith("the message could not be built")


def test_an_issue_that_cannot_become_a_message_stops_at_settle_time_and_stays_queued(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    queue_and_import(cli, tmp_path, readers(3))
    with factory() as session, session.begin():
        # A subject pasted from a word processor, queued by an older version.
        session.execute(update(Issue).values(subject="Een\u2028open hand"))
    result = cli("send", "--now", SUNDAY.isoformat(), code=1)
    assert "the issue 'een'" in result.stderr
    assert "stays queued" in result.stderr
    assert "Traceback" not in result.stderr
    with factory() as session:
        assert session.scalars(select(Issue.status)).one() is IssueStatus.QUEUED
        assert session.scalars(select(Edition)).all() == []


def test_a_relay_that_throttles_everyone_stops_the_run_without_counting_against_readers(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = readers(40)
    queue_and_import(cli, tmp_path, addresses)
    handler = ScriptedHandler(rcpt={a: ["421 4.7.0 Too busy, try later"] * 50 for a in addresses})
    controller = start_smtp(handler)
    try:
        relay = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        result = cli("send", "--now", SUNDAY.isoformat(), code=1, env=relay)
        tried = sum(handler.tries.values())
        # The relay recovers; the next run sends everyone once.
        handler.rcpt.clear()
        cli("send", "--now", (SUNDAY + timedelta(minutes=10)).isoformat(), env=relay)
    finally:
        controller.stop()
    line = next(ln for ln in result.stderr.splitlines() if ln.strip())
    assert line.startswith("Error: the relay refuses to send: 10 readers in a row")
    assert "Traceback" not in result.stderr
    assert tried <= 10 + 2, "it stops instead of hammering the relay"
    assert sorted(handler.accepted) == addresses
    assert all(len(ids) == 1 for ids in handler.accepted.values())


def test_a_refusal_at_mail_from_fails_nobody(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = readers(12)
    queue_and_import(cli, tmp_path, addresses)
    handler = ScriptedHandler(mail=["530 5.7.0 Authentication required"] * 100)
    controller = start_smtp(handler)
    try:
        relay = f"smtp://127.0.0.1:{controller.port}"
        result = cli("send", "--now", SUNDAY.isoformat(), code=1, NEWSLETTER_SMTP_URL=relay)
    finally:
        controller.stop()
    assert "the relay refuses to send: 530 at MAIL FROM" in result.stderr
    assert handler.mail_tries <= 2
    final = deliveries(factory)
    assert {d.status for d in final.values()} <= {DeliveryStatus.PENDING, DeliveryStatus.RETRY}
    # Nobody is blamed: no attempt counted, no age started, nobody bounced.
    assert all(d.attempts == 0 and d.first_attempt_at is None for d in final.values())
    with factory() as session:
        statuses = set(session.scalars(select(Subscriber.status)))
    assert statuses == {SubscriberStatus.SUBSCRIBED}


def test_tried_deliveries_of_a_refused_run_keep_no_attempt_and_no_age(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = readers(15)
    queue_and_import(cli, tmp_path, addresses)
    handler = ScriptedHandler(rcpt={a: ["451 4.3.0 Try again later"] * 50 for a in addresses})
    controller = start_smtp(handler)
    try:
        relay = f"smtp://127.0.0.1:{controller.port}"
        cli("send", "--now", SUNDAY.isoformat(), code=1, NEWSLETTER_SMTP_URL=relay)
    finally:
        controller.stop()
    final = deliveries(factory)
    assert sum(handler.tries.values()) >= 10
    assert {d.status for d in final.values()} <= {DeliveryStatus.PENDING, DeliveryStatus.RETRY}
    assert all(d.attempts == 0 and d.first_attempt_at is None for d in final.values())
    assert all(d.next_attempt_at is None for d in final.values())


class RefusingGreeter(socketserver.BaseRequestHandler):
    """A relay that answers every connection with 554 and hangs up (no SMTP service for us)."""

    def handle(self) -> None:
        self.request.sendall(b"554 5.7.1 No SMTP service for you\r\n")


def test_a_relay_that_refuses_at_the_greeting_stops_the_run_in_one_line(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    queue_and_import(cli, tmp_path, readers(3))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), RefusingGreeter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        relay = f"smtp://127.0.0.1:{server.server_address[1]}"
        result = cli("send", "--now", SUNDAY.isoformat(), code=1, NEWSLETTER_SMTP_URL=relay)
    finally:
        server.shutdown()
        server.server_close()
    assert "Error: the relay refuses to send:" in result.stderr
    assert "554" in result.stderr
    assert "Traceback" not in result.stderr
    final = deliveries(factory)
    assert all(d.attempts == 0 and d.first_attempt_at is None for d in final.values())
