"""Notes to the author over several weeks with a fake clock: each one exactly once, on time.

The scheduler's jobs run on a clock that starts on Monday 23 November 2026 and moves on two
hours a tick for four weeks; Sundays at 07:00 the weekly job sends. Three issues are queued,
so the queue runs dry on 20 December.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.notices import run
from newsletter.notices.due import remind_now
from newsletter.publishing import control, issue_files
from newsletter.readers import subscriptions
from newsletter.scheduler import Jobs
from newsletter.settings import Settings
from newsletter.storage.db import transaction
from newsletter.storage.models import Issue, Notice, Subscriber
from tests.support.cli import Cli
from tests.support.databases import settings_from
from tests.support.issue_files import write_issue
from tests.support.relays import ScriptedHandler, SmtpServer, body_of, start_smtp

AMS = ZoneInfo("Europe/Amsterdam")

START = datetime(2026, 11, 23, 1, 0, tzinfo=AMS)  # a Monday; ticks at odd hours
STEP = timedelta(hours=2)


def prepare(factory: sessionmaker[Session], settings: Settings, tmp_path: Path) -> None:
    """Three issues queued and three readers added on the Sunday afternoon before START."""
    folder = tmp_path / "issues"
    paths = [
        write_issue(folder, "los", theme="loslaten", subject="Open handen"),
        write_issue(folder, "vast", theme="vasthouden", subject="Een anker"),
        write_issue(folder, "zacht", theme="zachtheid", subject="Zacht beginnen"),
    ]
    before = START - timedelta(hours=12)
    with transaction(factory) as session:
        drafts = [issue_files.parse_issue(path, settings.themes) for path in paths]
        control.queue(session, drafts, before)
        for email in ("anna@example.com", "bram@example.com", "cor@example.com"):
            subscriptions.add(session, email, None, before)


def live_weeks(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    until: datetime,
    on_sunday: dict[str, str] | None = None,
) -> list[tuple[datetime, str]]:
    """The scheduler's jobs on a fake clock from START to `until`: the notes job every tick,
    the weekly job (which notes too) on Sundays at 07:00. What was noted, and when."""
    clock = [START]
    jobs = Jobs(engine, factory, settings, now=lambda: clock[0])
    while clock[0] < until:
        now = clock[0]
        if now.weekday() == 6 and now.hour == 7:
            jobs.weekly()
            if on_sunday and (left := on_sunday.get(now.date().isoformat())):
                with transaction(factory) as session:
                    reader = session.scalars(select(Subscriber).where(Subscriber.email == left))
                    subscriptions.unsubscribe(session, reader.one(), now + timedelta(minutes=30))
        else:
            jobs.notices()
        clock[0] = now + STEP
    with factory() as session:
        rows = session.execute(select(Notice.created_at, Notice.key).order_by(Notice.id)).all()
    return [(when.astimezone(AMS), key) for when, key in rows]


def test_four_weeks_of_notes_each_exactly_once(
    cli: Cli,
    tmp_path: Path,
    env: dict[str, str],
    engine: Engine,
    factory: sessionmaker[Session],
    smtp_server: SmtpServer,
    settings: Settings,
) -> None:
    prepare(factory, settings, tmp_path)
    settings = settings_from(
        {**env, "NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_AUTHOR_EMAIL": "ik@example.org"}
    )
    noted = live_weeks(engine, factory, settings, datetime(2026, 12, 22, 0, 0, tzinfo=AMS),
                       on_sunday={"2026-11-29": "bram@example.com"})  # fmt: skip
    keys = [key for _, key in noted]
    assert Counter(keys).most_common(1)[0][1] == 1, "every note exactly once"
    when = {key: moment for moment, key in noted}
    assert sorted(keys) == sorted([
        "report:1", "report:2", "report:3",
        "dry:2026-12-20T06:00Z", "skipped:2026-12-20T06:00Z", "dry:2026-12-27T06:00Z",
    ])  # fmt: skip
    # The report right after each Sunday's send; the dry reminder on a Monday morning, well
    # before the Sunday; the skipped Sunday once the grace (12 hours) is over.
    assert when["report:1"] == datetime(2026, 11, 29, 7, 0, tzinfo=AMS)
    assert when["dry:2026-12-20T06:00Z"] == datetime(2026, 12, 7, 9, 0, tzinfo=AMS)
    assert when["skipped:2026-12-20T06:00Z"] == datetime(2026, 12, 20, 21, 0, tzinfo=AMS)
    assert when["dry:2026-12-27T06:00Z"] == datetime(2026, 12, 21, 9, 0, tzinfo=AMS)

    notes = [m for m in smtp_server.received if m.rcpt_tos == ["ik@example.org"]]
    subjects = [m.message["Subject"] for m in notes]
    assert len(subjects) == 6 and len(set(subjects)) == 6
    report_1, report_2 = (
        body_of(m.message, "plain") for m in notes if "zondag 29 november" in m.message["Subject"]
        or "zondag 6 december" in m.message["Subject"]
    )  # fmt: skip
    assert "Aangekomen bij de mailserver van de lezer: 3" in report_1
    assert "nieuwe lezers: 3" in report_1 and "afgemeld: 0" in report_1
    assert "Aangekomen bij de mailserver van de lezer: 2" in report_2
    assert "afgemeld: 1" in report_2 and "nieuwe lezers: 0" in report_2
    dry = next(m.message for m in notes if m.message["Subject"].startswith("Voor zondag 20 dec"))
    text = body_of(dry, "plain")
    assert "zondag 13 december 2026" in text and "zondag 20 december 2026" in text
    assert "newsletter issues queue" in text and "newsletter issues plan" in text
    skipped = next(m.message for m in notes if "geen brief verstuurd" in m.message["Subject"])
    assert "geen brief klaar" in body_of(skipped, "plain")

    listed = cli("notices").stdout
    assert listed.count("ik@example.org") == 6 and "sent" in listed


def test_without_an_author_address_the_same_lines_go_to_the_log(
    cli: Cli,
    tmp_path: Path,
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prepare(factory, settings, tmp_path)
    with caplog.at_level(logging.WARNING, logger="newsletter.notices.run"):
        noted = live_weeks(engine, factory, settings, datetime(2026, 11, 30, 0, 0, tzinfo=AMS))
    assert [key for _, key in noted] == ["report:1"]
    (line,) = [r.getMessage() for r in caplog.records if "note for the author" in r.getMessage()]
    assert "Je brief van zondag 29 november 2026: 3 lezers bereikt" in line
    assert "Aangekomen bij de mailserver van de lezer: 3" in line
    with factory() as session:
        (notice,) = session.scalars(select(Notice))
        assert notice.recipient is None and notice.sent_at is not None
    assert "the log only" in cli("notices").stdout
    assert not (tmp_path / "outbox").exists() or all(
        "ik@" not in p.name for p in (tmp_path / "outbox").iterdir()
    )


def test_a_missed_sunday_says_the_letter_waits_and_how_to_send_it_anyway(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session], settings: Settings
) -> None:
    prepare(factory, settings, tmp_path)
    # The scheduler was away all Sunday: nothing sent, the issues still queued.
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=AMS)
    (noted,) = run.tick(factory, settings, monday)
    assert noted.key == "skipped:2026-11-29T06:00Z"
    with factory() as session:
        (notice,) = session.scalars(select(Notice))
    assert "niet op tijd verstuurd" in notice.body
    assert "newsletter send --now 2026-11-29T07:00+01:00" in notice.body
    assert run.tick(factory, settings, monday + timedelta(hours=1)) == []


def test_a_note_the_relay_does_not_take_is_tried_again_and_sent_once(
    cli: Cli, tmp_path: Path, env: dict[str, str], factory: sessionmaker[Session],
    smtp_server: SmtpServer,
    settings: Settings,
) -> None:  # fmt: skip
    prepare(factory, settings, tmp_path)
    away = settings_from({**env, "NEWSLETTER_SMTP_URL": "smtp://127.0.0.1:9",
                          "NEWSLETTER_AUTHOR_EMAIL": "ik@example.org"})  # fmt: skip
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=AMS)
    (first,) = run.tick(factory, away, monday)
    assert not first.delivered
    assert "not sent:" in cli("notices").stdout
    back = settings_from({**env, "NEWSLETTER_SMTP_URL": smtp_server.url,
                          "NEWSLETTER_AUTHOR_EMAIL": "ik@example.org"})  # fmt: skip
    (again,) = run.tick(factory, back, monday + timedelta(hours=1))
    assert again.delivered and again.key == first.key
    assert run.tick(factory, back, monday + timedelta(hours=2)) == []
    assert len(smtp_server.received) == 1


def test_the_reminder_waits_for_a_weekday_unless_the_sunday_is_close() -> None:
    settings = settings_from({"NEWSLETTER_REMIND_WEEKS": "2"})
    dry = datetime(2026, 12, 20, 7, 0, tzinfo=AMS)
    saturday = datetime(2026, 12, 5, 10, 0, tzinfo=AMS)
    assert not remind_now(saturday, dry, settings)  # a weekend
    assert not remind_now(datetime(2026, 12, 7, 8, 0, tzinfo=AMS), dry, settings)  # too early
    assert remind_now(datetime(2026, 12, 7, 9, 0, tzinfo=AMS), dry, settings)
    assert not remind_now(datetime(2026, 12, 4, 10, 0, tzinfo=AMS), dry, settings)  # 16 days
    assert remind_now(datetime(2026, 12, 19, 23, 0, tzinfo=AMS), dry, settings)  # late, at once
    never = settings_from({"NEWSLETTER_REMIND_WEEKS": "0"})
    assert not remind_now(datetime(2026, 12, 17, 10, 0, tzinfo=AMS), dry, never)


def test_a_send_the_relay_stops_is_told_once_with_the_relays_words(
    cli: Cli, tmp_path: Path, env: dict[str, str], engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
) -> None:  # fmt: skip
    prepare(factory, settings, tmp_path)
    # MAIL FROM: refused for the letter, taken for the note to the author, refused again.
    refusal = "550 5.7.1 Sender address not verified"
    handler = ScriptedHandler(mail=[refusal, None, refusal, None])
    controller = start_smtp(handler)
    try:
        settings = settings_from({**env, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
                                  "NEWSLETTER_AUTHOR_EMAIL": "ik@example.org"})  # fmt: skip
        sunday = datetime(2026, 11, 29, 7, 0, tzinfo=AMS)
        jobs = Jobs(engine, factory, settings, now=lambda: sunday)
        jobs.weekly()
        jobs.relay_not_before = 0.0  # the back-off is over
        jobs.deliver_due()  # refused again: noted before, so not again
    finally:
        controller.stop()
    assert len(handler.accepted["ik@example.org"]) == 1, "one note, though refused twice"
    with factory() as session:
        (notice,) = session.scalars(select(Notice))
    assert notice.key == "stopped:1" and notice.sent_at is not None
    assert notice.subject == "Het versturen van je brief is gestopt"
    assert "zondag 29 november 2026" in notice.body and "Sender address not verified" in notice.body
    assert "3 lezers wachten nog" in notice.body


def test_an_issue_that_cannot_become_a_letter_is_told_with_what_to_do(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session], engine: Engine,
    settings: Settings,
) -> None:  # fmt: skip
    prepare(factory, settings, tmp_path)
    with transaction(factory) as session:
        # A subject pasted from a word processor, queued by an older version.
        session.execute(update(Issue).where(Issue.slug == "los").values(subject="Een\u2028hand"))
    sunday = datetime(2026, 11, 29, 7, 0, tzinfo=AMS)
    jobs = Jobs(engine, factory, settings, now=lambda: sunday)
    jobs.weekly()
    jobs.weekly()
    with factory() as session:
        (notice,) = session.scalars(select(Notice))
    assert notice.key == "unbuildable:2026-11-29T06:00Z"
    assert "kon niet worden gemaakt" in notice.subject and "'los'" in notice.body
    assert "newsletter issues check" in notice.body
