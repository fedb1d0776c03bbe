"""Done when: in Dutch, with nothing but Markdown, the author writes an issue, mails it to
herself, queues it, moves it to another Sunday or takes it back, hears in time that the queue
runs dry, and learns on Sunday what her letter reached (a real relay; the scheduler's jobs on a
fake clock that starts at the coming Sunday, whatever day the test runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.mail.rendering import dutch_date
from newsletter.publishing import planning
from newsletter.scheduler import Jobs
from tests.support.cli import Cli
from tests.support.databases import settings_from
from tests.support.issue_files import write_issue
from tests.support.relays import SmtpServer, body_of

AMS = ZoneInfo("Europe/Amsterdam")


def test_her_week_in_dutch(
    cli: Cli,
    env: dict[str, str],
    tmp_path: Path,
    engine: Engine,
    factory: sessionmaker[Session],
    smtp_server: SmtpServer,
) -> None:
    mine = {"NEWSLETTER_LANGUAGE": "nl", "NEWSLETTER_SMTP_URL": smtp_server.url,
            "NEWSLETTER_AUTHOR_EMAIL": "ik@example.org"}  # fmt: skip
    folder = tmp_path / "issues"
    anker = write_issue(folder, "anker", theme="Vasthouden", subject="Wat draagt je: een anker")
    hand = write_issue(folder, "hand", theme="loslaten", subject="Een open hand")
    told = cli("issues", "check", code=1, env=mine).stderr
    assert 'zet de waarde tussen aanhalingstekens, zo: subject: "Wat draagt je: een anker"' in told
    anker.write_text(
        anker.read_text("utf-8")
        .replace("subject: Wat", 'subject: "Wat')
        .replace("anker\n", 'anker"\n', 1),
        "utf-8",
    )
    assert "2 briefbestanden in orde." in cli("issues", "check", env=mine).stdout

    sent = cli("issues", "test", str(anker), env=mine).stdout
    assert "Proefmail van" in sent and "gestuurd naar ik@example.org" in sent
    (proef,) = smtp_server.received
    assert proef.message["Subject"] == "[Proef] Wat draagt je: een anker"

    settings = settings_from({**env, **mine})
    with factory() as session:
        first = planning.next_send_time(session, settings, datetime.now(UTC))
    assert first is not None
    sunday_1, sunday_2, sunday_3 = [first, *planning.next_times(settings, first, 2)]
    cli("issues", "queue", str(anker), str(hand), env=mine)
    on_2 = sunday_2.astimezone(AMS).date().isoformat()
    moved = cli("issues", "pin", "anker", "--date", on_2, env=mine).stdout
    assert f"anker vastgezet op zo {on_2}" in moved
    assert "hand uit de wachtrij genomen" in cli("issues", "withdraw", "hand", env=mine).stdout
    cli("issues", "queue", str(hand), env=mine)  # back again: she changed her mind
    plan = " ".join(cli("issues", "plan", "--weeks", "3", env=mine).stdout.split())
    on_3 = sunday_3.astimezone(AMS).date().isoformat()
    assert "vastgezet" in plan and f"De wachtrij raakt leeg op zo {on_3}" in plan
    for reader in ("anna@example.com", "bram@example.com"):
        cli("subscribers", "add", reader, env=mine)

    clock = [sunday_1.astimezone(AMS) - timedelta(hours=1)]
    jobs = Jobs(engine, factory, settings, now=lambda: clock[0])
    while clock[0] < sunday_3 + timedelta(days=1):
        if clock[0] == sunday_1 or clock[0] == sunday_2 or clock[0] == sunday_3:
            jobs.weekly()
        else:
            jobs.notices()
        clock[0] += timedelta(hours=1)
    notes = {
        m.message["Subject"]: body_of(m.message, "plain")
        for m in smtp_server.received[1:]  # the first is the test mail
        if m.rcpt_tos == ["ik@example.org"]
    }
    first_report = notes[f"Je brief van {dutch(sunday_1)}: 2 lezers bereikt"]
    assert "‘Een open hand’" in first_report and "nieuwe lezers: 2" in first_report
    assert f"Je brief van {dutch(sunday_2)}: 2 lezers bereikt" in notes
    dry = notes[f"Voor {dutch(sunday_3)} staat nog geen brief klaar"]
    assert "newsletter issues queue" in dry
    assert f"Op {dutch(sunday_3)} is er geen brief verstuurd" in notes
    assert len(notes) == 4, list(notes)
    listed = cli("notices", env=mine).stdout
    assert listed.count("ik@example.org") == 4 and "niet verstuurd" not in listed


def dutch(moment: datetime) -> str:
    return dutch_date(moment.astimezone(AMS))
