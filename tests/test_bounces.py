"""Bounces and complaints end to end: a send over a real relay that mails reports back to the
VERP envelope sender, read through `bounces ingest` (as a pipe would) and through
`bounces fetch` from a real IMAP server (pymap); who ends bounced, and who does not."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import (
    ConsentEvent,
    ConsentEventKind,
    Delivery,
    Subscriber,
    SubscriberStatus,
)
from tests.support.cli import NEWSLETTER, Cli
from tests.support.issue_files import write_issue
from tests.support.relays import Received, SmtpServer, start_smtp
from tests.support.reports import BouncingHandler, about, fill, imap_server

BOUNCES = "bounces@nieuws.example.nl"
VERP = re.compile(r"bounces\+[0-9a-f]{32}@nieuws\.example\.nl")
READERS = ["anna@example.com", "bram@example.com", "cor@example.org", "dirk@example.net"]
DOOMED = {"anna@example.com": "postfix_511.eml", "bram@example.com": "gmail_511.eml"}


@pytest.fixture
def relay() -> Iterator[SmtpServer]:
    """A relay that accepts everything and writes a DSN back for the doomed readers."""
    handler = BouncingHandler(doomed=dict(DOOMED))
    controller = start_smtp(handler)
    try:
        yield SmtpServer(handler, controller)
    finally:
        controller.stop()


@pytest.fixture
def cli_verp(cli: Cli, relay: SmtpServer) -> Cli:
    """The CLI with a bounce address and the bouncing relay."""
    return Cli({**cli.env, "NEWSLETTER_BOUNCE_ADDRESS": BOUNCES, "NEWSLETTER_SMTP_URL": relay.url})


def week(cli: Cli, folder: Path, n: int, date: str) -> None:
    cli("issues", "queue", str(write_issue(folder / "issues", f"week{n}", subject=f"Week {n}")))
    cli("send", "--now", date)


def first_send(cli: Cli, folder: Path, relay: SmtpServer) -> list[Received]:
    csv = folder / "lezers.csv"
    csv.write_text("email\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    cli("subscribers", "import", str(csv), "--consent", "test")
    week(cli, folder, 1, "2026-11-29T07:00")
    assert len(relay.received) == 4
    return relay.received


def statuses(factory: sessionmaker[Session]) -> dict[str, SubscriberStatus]:
    with factory() as session:
        return {s.email: s.status for s in session.scalars(select(Subscriber))}


def events(factory: sessionmaker[Session], kind: ConsentEventKind) -> dict[str, ConsentEvent]:
    with factory() as session:
        rows = session.execute(
            select(Subscriber.email, ConsentEvent)
            .join(ConsentEvent, ConsentEvent.subscriber_id == Subscriber.id)
            .where(ConsentEvent.event == kind)
        ).all()
        return {email: event for email, event in rows}


def pipe(env: dict[str, str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    """`newsletter bounces ingest` as Postfix's pipe(8) runs it: the message on stdin."""
    done = subprocess.run(
        [NEWSLETTER, "bounces", "ingest"],
        input=data,
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"Running detector" not in done.stderr, "flufl.bounce's INFO lines are not ours to show"
    return done


def test_the_return_path_is_a_verp_address_per_delivery_that_reveals_nothing(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer
) -> None:
    sent = first_send(cli_verp, tmp_path, relay)
    paths = [item.mail_from for item in sent]
    assert all(VERP.fullmatch(path) for path in paths)
    assert len(set(paths)) == len(paths)
    assert all(len(path.partition("@")[0]) <= 64 for path in paths)
    for item in sent:  # neither the delivery id nor a counter shows in the tag or Message-ID
        message_id = str(item.message["Message-ID"])
        assert re.fullmatch(r"<[0-9a-z]+\.[A-Za-z0-9_-]{22}@nieuws\.example\.nl>", message_id)


def test_dsns_through_a_pipe_bounce_those_readers_and_next_week_skips_them(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer, factory: sessionmaker[Session]
) -> None:
    first_send(cli_verp, tmp_path, relay)
    reports = list(relay.handler.reports)
    assert len(reports) == 2
    for report in reports:
        done = pipe(cli_verp.env, report)
        assert done.returncode == 0, done.stderr.decode()
        assert b"bounced" in done.stdout
    assert statuses(factory) == {
        "anna@example.com": SubscriberStatus.BOUNCED,
        "bram@example.com": SubscriberStatus.BOUNCED,
        "cor@example.org": SubscriberStatus.SUBSCRIBED,
        "dirk@example.net": SubscriberStatus.SUBSCRIBED,
    }
    bounced = events(factory, ConsentEventKind.BOUNCED)
    assert set(bounced) == {"anna@example.com", "bram@example.com"}
    assert {e.source for e in bounced.values()} == {"dsn"}
    assert "5.1.1" in (bounced["anna@example.com"].detail or "")
    with factory() as session:
        kinds = dict(
            session.execute(
                select(Subscriber.email, Delivery.report_status).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
    assert kinds["anna@example.com"] == "5.1.1" and kinds["cor@example.org"] is None
    # The same report read twice changes nothing more.
    assert pipe(cli_verp.env, reports[0]).returncode == 0
    assert len(events(factory, ConsentEventKind.BOUNCED)) == 2
    week(cli_verp, tmp_path, 2, "2026-12-06T07:00")
    second = [item.rcpt_tos[0] for item in relay.received[4:]]
    assert sorted(second) == ["cor@example.org", "dirk@example.net"]


def test_status_and_the_bounced_list_say_what_came_back(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer
) -> None:
    sent = first_send(cli_verp, tmp_path, relay)
    for report in relay.handler.reports:
        cli_verp("bounces", "ingest", str(write(tmp_path, report)))
    complaint = about(sent[2], "yahoo_arf_abuse.eml")
    cli_verp("bounces", "ingest", str(write(tmp_path, complaint)))
    status = cli_verp("status", "1").stdout
    assert "2 bounced (address gone)" in status and "1 complaints" in status
    listed = cli_verp("subscribers", "list", "--status", "bounced").stdout
    assert "anna@example.com" in listed and "dsn:" in listed and "5.1.1" in listed
    assert "cor@example.org" not in listed
    left = cli_verp("subscribers", "list", "--status", "unsubscribed").stdout
    assert "cor@example.org" in left and "complaint" in left


def write(folder: Path, data: bytes) -> Path:
    path = folder / f"report-{len(list(folder.glob('report-*')))}.eml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "fixture", ["yahoo_arf_abuse.eml", "microsoft_jmrp_abuse.eml", "ses_complaint.eml"]
)
def test_a_complaint_unsubscribes_at_once(
    cli_verp: Cli,
    tmp_path: Path,
    relay: SmtpServer,
    factory: sessionmaker[Session],
    fixture: str,
) -> None:
    sent = first_send(cli_verp, tmp_path, relay)
    cor = next(item for item in sent if item.rcpt_tos[0] == "cor@example.org")
    out = cli_verp("bounces", "ingest", str(write(tmp_path, about(cor, fixture)))).stdout
    assert "unsubscribed" in out
    assert statuses(factory)["cor@example.org"] is SubscriberStatus.UNSUBSCRIBED
    left = events(factory, ConsentEventKind.UNSUBSCRIBED)
    assert set(left) == {"cor@example.org"} and left["cor@example.org"].source == "complaint"


def test_forged_ambiguous_and_auto_replies_change_nothing(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer, factory: sessionmaker[Session]
) -> None:
    sent = first_send(cli_verp, tmp_path, relay)
    cor, dirk = (next(i for i in sent if i.rcpt_tos[0] == a) for a in READERS[2:])
    other_tag = dirk.mail_from
    wrong_tag = "bounces+" + "a" * 32 + "@nieuws.example.nl"
    made_up_id = "<abc.def@nieuws.example.nl>"
    cor_id = str(cor.message["Message-ID"])
    dirk_id = str(dirk.message["Message-ID"])
    forged = [
        # The right address, a wrong or missing tag, and a made-up Message-ID.
        about(cor, "postfix_511.eml", return_path=wrong_tag, message_id=made_up_id),
        about(cor, "postfix_511.eml", return_path=BOUNCES, message_id=made_up_id),
        about(cor, "exim_511.eml", return_path="nieuws@nieuws.example.nl", message_id="<x@y>"),
        # A tag that checks out with another delivery's Message-ID: ambiguous.
        about(cor, "postfix_511.eml", message_id=dirk_id),
        about(cor, "yahoo_arf_abuse.eml", return_path=other_tag, message_id=cor_id),
        # Auto-replies carry our tag (they answer the return path) and are never acted on.
        about(cor, "vacation.eml"),
        about(dirk, "outlook_auto_reply.eml"),
        # A success report is noted, not acted on.
        about(dirk, "postfix_delivered.eml"),
    ]
    for data in forged:
        out = cli_verp("bounces", "ingest", str(write(tmp_path, data))).stdout
        assert "bounced" not in out and "unsubscribed" not in out, out
    assert set(statuses(factory).values()) == {SubscriberStatus.SUBSCRIBED}


def test_soft_bounces_count_per_edition_in_a_row(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer, factory: sessionmaker[Session]
) -> None:
    cli = Cli({**cli_verp.env, "NEWSLETTER_SOFT_BOUNCE_LIMIT": "2"})
    relay.handler.doomed.clear()
    first_send(cli, tmp_path, relay)

    def bounce(n: int, reader: str, fixture: str) -> None:
        mail = next(
            i
            for i in relay.received
            if i.rcpt_tos[0] == reader and str(i.message["Subject"]) == f"Week {n}"
        )
        cli("bounces", "ingest", str(write(tmp_path, about(mail, fixture))))

    # Week 1: Dirk's mailbox is full, Cor's server is slow (reported twice: counted once).
    bounce(1, "dirk@example.net", "postfix_mailbox_full.eml")
    bounce(1, "cor@example.org", "postfix_delayed.eml")
    bounce(1, "cor@example.org", "postfix_delayed.eml")
    assert statuses(factory)["dirk@example.net"] is SubscriberStatus.SUBSCRIBED
    # Week 2: Dirk's is still full (two editions in a row: bounced); Cor's letter arrives.
    week(cli, tmp_path, 2, "2026-12-06T07:00")
    bounce(2, "dirk@example.net", "postfix_mailbox_full.eml")
    assert statuses(factory)["dirk@example.net"] is SubscriberStatus.BOUNCED
    # Week 3: Dirk gets nothing; Cor is slow again, but week 2 came through in between.
    week(cli, tmp_path, 3, "2026-12-13T07:00")
    week3 = [i.rcpt_tos[0] for i in relay.received if str(i.message["Subject"]) == "Week 3"]
    assert "dirk@example.net" not in week3 and "cor@example.org" in week3
    bounce(3, "cor@example.org", "postfix_delayed.eml")
    assert statuses(factory)["cor@example.org"] is SubscriberStatus.SUBSCRIBED
    bounced = events(factory, ConsentEventKind.BOUNCED)
    assert "2 soft bounces in a row" in (bounced["dirk@example.net"].detail or "")


def test_reports_fetched_over_imap_are_acted_on_and_moved_the_rest_left_untouched(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer, factory: sessionmaker[Session]
) -> None:
    sent = first_send(cli_verp, tmp_path, relay)
    with imap_server() as server:
        for report in relay.handler.reports:
            server.append(report)
        dirk = next(i for i in sent if i.rcpt_tos[0] == "dirk@example.net")
        server.append(about(dirk, "vacation.eml", subject="Vakantie"))
        server.append(b"From: iemand@example.com\r\nSubject: Een vraag\r\n\r\nHoi!\r\n")
        cli = Cli({**cli_verp.env, "NEWSLETTER_BOUNCE_IMAP_URL": server.url()})
        out = cli("bounces", "fetch").stdout
        assert "2 bounced" in out and "left untouched: 2" in out
        assert server.subjects("INBOX") == ["Afwezig: Vakantie", "Een vraag"]
        assert len(server.subjects("newsletter-handled")) == 2
        assert not any("\\Seen" in flags for flags in server.flags("INBOX"))
        # A second fetch finds nothing new to act on and still leaves the rest alone.
        assert "left untouched: 2" in cli("bounces", "fetch").stdout
    now = statuses(factory)
    assert now["anna@example.com"] is now["bram@example.com"] is SubscriberStatus.BOUNCED
    assert now["cor@example.org"] is now["dirk@example.net"] is SubscriberStatus.SUBSCRIBED


def test_with_the_database_down_a_report_is_left_for_later_but_an_auto_reply_is_not(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer
) -> None:
    sent = first_send(cli_verp, tmp_path, relay)
    down = {**cli_verp.env, "NEWSLETTER_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    done = pipe(down, relay.handler.reports[0])
    assert done.returncode == 75
    assert b"could not be handled now" in done.stderr and b"Traceback" not in done.stderr
    assert pipe(down, about(sent[3], "vacation.eml")).returncode == 0


def test_a_maildir_is_read_and_what_was_handled_moves_to_cur(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer, factory: sessionmaker[Session]
) -> None:
    sent = first_send(cli_verp, tmp_path, relay)
    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.report").write_bytes(relay.handler.reports[0])
    (maildir / "new" / "2.vacation").write_bytes(about(sent[3], "vacation.eml"))
    cli_verp("bounces", "ingest", "--maildir", str(maildir))
    assert list((maildir / "new").iterdir()) == []
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == ["1.report:2,S", "2.vacation:2,"]
    assert statuses(factory)["anna@example.com"] is SubscriberStatus.BOUNCED


def test_fixtures_name_our_addresses_only_through_their_placeholders() -> None:
    data = fill("postfix_511.eml", return_path="R@x", recipient="P@x", message_id="<M@x>")
    assert b"$" not in data


def test_a_configuration_error_leaves_the_report_for_later(
    cli_verp: Cli, tmp_path: Path, relay: SmtpServer
) -> None:
    first_send(cli_verp, tmp_path, relay)
    broken = {**cli_verp.env, "NEWSLETTER_SECRET_KEY": ""}
    done = pipe(broken, relay.handler.reports[0])
    assert done.returncode == 75 and b"NEWSLETTER_SECRET_KEY" in done.stderr
    bad = {**cli_verp.env, "NEWSLETTER_SOFT_BOUNCE_LIMIT": "many"}
    assert pipe(bad, relay.handler.reports[0]).returncode == 75


def test_an_unreachable_mailbox_is_said_plainly_and_tried_again_later(cli_verp: Cli) -> None:
    url = "imap://bounces:geheim@127.0.0.1:9/INBOX"
    result = cli_verp("bounces", "fetch", code=75, NEWSLETTER_BOUNCE_IMAP_URL=url)
    assert "cannot read the bounce mailbox at 127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.output


def test_a_mail_that_is_no_report_is_ignored_in_one_line(cli_verp: Cli) -> None:
    """What the bounce parsers try on the way (flufl.bounce's detectors) is not shown."""
    plain = b"From: MAILER-DAEMON@elders.example\nTo: bounces@example.com\nSubject: Hallo\n\nHoi\n"
    done = pipe(cli_verp.env, plain)
    assert done.returncode == 0
    assert b"ignored: not a report" in done.stdout
    assert done.stderr.count(b"\n") <= 1, done.stderr.decode()
