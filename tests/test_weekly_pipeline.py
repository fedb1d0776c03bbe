"""The whole week, as a user runs it: queue → send on Sundays → one-click leave → nothing more."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Edition, Issue, IssueStatus
from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.relays import SmtpServer, body_of
from tests.support.servers import LiveServer

SUNDAYS = ["2026-11-29T07:00", "2026-12-06T07:05", "2026-12-13T09:30", "2026-12-20T07:00"]


def unsubscribe_url(message_header: str) -> str:
    match = re.fullmatch(r"<(https://[^>\s]+)>", message_header)
    assert match, message_header
    return match.group(1)


def test_four_sundays_rotate_themes_and_honour_one_click(
    cli: Cli,
    tmp_path: Path,
    smtp_server: SmtpServer,
    live_app: LiveServer,
    factory: sessionmaker[Session],
) -> None:
    folder = tmp_path / "issues"
    # Queued out of rotation order, two for loslaten.
    paths = [
        write_issue(folder, "a-zacht", theme="zachtheid", subject="Zacht voor jezelf",
                    question="Waar mag het vandaag zachter?"),
        write_issue(folder, "b-los-1", theme="loslaten", subject="Open handen",
                    question="Wat mag je uit handen geven?"),
        write_issue(folder, "c-vast", theme="vasthouden", subject="Wat draagt je",
                    question="Waaraan houd je je vast als het waait?"),
        write_issue(folder, "d-los-2", theme="loslaten", subject="Oude verhalen",
                    question="Welk verhaal over jezelf mag weg?"),
    ]  # fmt: skip
    cli("issues", "queue", *map(str, paths))
    for email, name in [("anna@example.com", "Anna"), ("Bram@Example.com", "Bram"),
                        ("cor@example.org", "")]:  # fmt: skip
        cli("subscribers", "add", email, *(["--name", name] if name else []))
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url}

    expected = [
        (3, "loslaten", "Open handen", "Wat mag je uit handen geven?"),
        (2, "vasthouden", "Wat draagt je", "Waaraan houd je je vast als het waait?"),
        (2, "zachtheid", "Zacht voor jezelf", "Waar mag het vandaag zachter?"),
        (2, "loslaten", "Oude verhalen", "Welk verhaal over jezelf mag weg?"),
    ]
    seen = 0
    for week, (now, (count, theme, subject, question)) in enumerate(
        zip(SUNDAYS, expected, strict=True)
    ):
        cli("send", "--now", now, env=env)
        batch = smtp_server.received[seen:]
        seen += len(batch)
        assert len(batch) == count, f"week {week + 1}"
        for item in batch:
            message = item.message
            assert message["Subject"] == subject
            text = body_of(message, "plain")
            html = body_of(message, "html")
            assert text.count(question) == 1 and html.count(question) == 1
            assert text.count("?") == 1, "exactly one question in the text part"
            assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
            url = unsubscribe_url(message["List-Unsubscribe"])
            assert url in text and url in html
        with factory() as session:
            edition = session.scalars(select(Edition).order_by(Edition.id.desc())).first()
            assert edition is not None and edition.theme == theme
        if week == 0:
            leaving = next(r for r in batch if r.rcpt_tos == ["Bram@example.com"])
            url = unsubscribe_url(leaving.message["List-Unsubscribe"])
            path = url.removeprefix("https://nieuws.example.nl")
            response = httpx.post(
                live_app.url + path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code == 200
        # Running again the same day, or on a Wednesday, sends nothing more.
        cli("send", "--now", now, env=env)
        assert len(smtp_server.received) == seen

    result = cli("send", "--now", "2026-12-27T07:00", env=env)
    assert len(smtp_server.received) == seen
    assert "nothing is queued" in result.stderr
    with factory() as session:
        statuses = session.scalars(select(Issue.status)).all()
        assert statuses == [IssueStatus.SENT] * 4


def test_a_wednesday_run_never_sends_next_sundays_issue_early(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "anna@example.com")
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url}
    result = cli("send", "--now", "2026-12-02T10:00", env=env)
    assert smtp_server.received == []
    assert "Missed" in result.stderr  # last Sunday is past the 12-hour grace
    cli("send", "--now", "2026-12-06T07:01", env=env)
    assert len(smtp_server.received) == 1


def test_past_the_grace_the_week_is_skipped_and_the_issue_stays_queued(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "anna@example.com")
    result = cli("send", "--now", "2026-11-29T19:01")
    assert "more than 12 hours ago" in result.stderr
    assert "newsletter send --now 2026-11-29T07:00:00+01:00" in result.stderr
    with factory() as session:
        assert session.scalars(select(Issue.status)).one() is IssueStatus.QUEUED
        assert session.scalars(select(Edition)).all() == []
    cli("send", "--now", "2026-11-29T18:59")
    with factory() as session:
        assert session.scalars(select(Issue.status)).one() is IssueStatus.SENT


def test_outbox_receives_eml_files_without_smtp(cli: Cli, tmp_path: Path) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "anna@example.com")
    cli("subscribers", "add", "bram@example.com")
    result = cli("send", "--now", "2026-11-29T07:00")
    files = sorted((tmp_path / "outbox").rglob("*.eml"))
    assert len(files) == 2
    assert "outbox" in result.stdout


@pytest.mark.parametrize("missing", ["NEWSLETTER_SECRET_KEY"])
def test_send_refuses_without_a_secret_key(cli: Cli, missing: str) -> None:
    result = cli("send", code=1, env={missing: ""})
    assert "NEWSLETTER_SECRET_KEY is not set" in result.stderr


def test_demo_mode_runs_without_a_secret_key(cli: Cli, tmp_path: Path) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "anna@example.com")
    cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SECRET_KEY="", NEWSLETTER_DEMO="1")
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 1
