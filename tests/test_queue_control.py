"""The queue the author controls, on a real database: list, withdraw, pin, doubles, and the
files she renames, edits without queueing again, or deletes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Edition, Issue, IssueStatus
from tests.support.cli import Cli
from tests.support.issue_files import write_issue

TUESDAY = "2026-11-24T10:00"  # the Sundays ahead: 29 Nov, 6, 13, 20, 27 Dec


def queue_three(cli: Cli, folder: Path) -> list[Path]:
    paths = [
        write_issue(folder, "los", theme="loslaten", subject="Open handen"),
        write_issue(folder, "vast", theme="vasthouden", subject="Een anker"),
        write_issue(folder, "zacht", theme="zachtheid", subject="Zacht beginnen"),
    ]
    cli("issues", "queue", *map(str, paths))
    return paths


def plan_rows(cli: Cli, weeks: int = 5) -> list[str]:
    out = cli("issues", "plan", "--weeks", str(weeks), "--now", TUESDAY).stdout
    return [line for line in out.splitlines() if "2026-" in line or "2027-" in line]


def edition_subjects(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(Edition.subject).order_by(Edition.scheduled_at)))


def test_list_shows_each_issue_with_its_date_and_file_and_what_needs_a_look(
    cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "issues"
    _, vast, zacht = queue_three(cli, folder)
    cli("send", "--now", "2026-11-29T07:00")  # los goes out
    text = vast.read_text(encoding="utf-8")
    vast.write_text(text.replace("Adem uit", "Adem rustig uit"), encoding="utf-8")  # not requeued
    zacht.rename(folder / "zacht-nieuw.md")  # renamed: the queued file is gone

    out = cli("issues", "list").stdout
    assert "sent Sun 2026-11-29" in out and "Open handen" in out
    vast_at = out.index("Een anker")
    assert "file changed since queued: queue it again" in out[vast_at:]
    zacht_at = out.index("Zacht beginnen")
    assert "file gone" in out[zacht_at:] and "newsletter issues withdraw zacht" in out[zacht_at:]
    assert "same text in issues/zacht-nieuw.md" in out[zacht_at:]
    assert "3 issues, 2 of them queued." in out
    sent_only = cli("issues", "list", "--status", "sent").stdout
    assert "Open handen" in sent_only and "Een anker" not in sent_only

    rows = plan_rows(cli, 3)
    plan = " ".join(
        cli("issues", "plan", "--weeks", "3", "--now", "2026-11-30T10:00").stdout.split()
    )
    assert "file changed since queued" in plan and "file gone" in plan
    assert "still goes out as it was queued" in plan
    assert len(rows) >= 3


def test_a_renamed_file_is_refused_as_a_double_until_the_old_name_is_withdrawn(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    los, *_ = queue_three(cli, folder)
    renamed = los.rename(folder / "los-anders.md")
    result = cli("issues", "queue", str(renamed), code=1)
    assert f"{renamed}: the same text as los (" in result.stderr
    assert "nothing was queued" in result.stderr and "--as-new" in result.stderr
    with factory() as session:
        assert session.scalar(select(Issue).where(Issue.slug == "los-anders")) is None

    out = cli("issues", "withdraw", "los").stdout
    assert "Took los out of the queue" in out
    assert renamed.exists()  # withdrawing never touches a file
    cli("issues", "queue", str(renamed))
    rows = plan_rows(cli, 3)
    assert "los-anders" in "".join(cli("issues", "plan", "--now", TUESDAY).stdout)
    assert len(rows) == 3


def test_as_new_queues_the_same_text_again_and_copies_in_one_batch_are_doubles_too(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    (los, *_) = queue_three(cli, folder)
    cli("send", "--now", "2026-11-29T07:00")  # los is sent
    again = folder / "los-nog-eens.md"
    again.write_bytes(los.read_bytes())
    result = cli("issues", "queue", str(again), code=1)
    assert "the same text as los (" in result.stderr and "sent)" in result.stderr
    cli("issues", "queue", "--as-new", str(again))

    one, two = (folder / "x1.md", folder / "x2.md")
    body = "Een tekst die er twee keer staat.\n"
    for path in (one, two):
        path.write_text(
            "---\ntheme: zachtheid\nsubject: Twee\nquestion: Waarom twee?\n---\n"
            + body.replace("  ", " "),
            encoding="utf-8",
        )
    # Only the spacing differs: still the same text.
    two.write_text(two.read_text(encoding="utf-8").replace("twee keer", "twee\nkeer"), "utf-8")
    result = cli("issues", "queue", str(one), str(two), code=1)
    assert f"{two}: the same text as x1 ({one}, given too)" in result.stderr
    with factory() as session:
        slugs = set(session.scalars(select(Issue.slug)))
    assert "x1" not in slugs and "x2" not in slugs, "all or nothing"


def test_withdraw_takes_a_queued_issue_back_but_never_a_sent_one(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    los, vast, _ = queue_three(cli, folder)
    cli("send", "--now", "2026-11-29T07:00")
    refused = cli("issues", "withdraw", str(los), code=1)
    assert "los was already sent (edition of 2026-11-29)" in refused.stderr
    assert "cannot be taken back" in refused.stderr
    cli("issues", "withdraw", str(vast))  # by its file
    missing = cli("issues", "withdraw", "bestaat-niet", code=1)
    assert "no queued or sent issue is called 'bestaat-niet'" in missing.stderr
    assert "newsletter issues list" in missing.stderr
    cli("send", "--now", "2026-12-06T07:00")
    assert edition_subjects(factory) == ["Open handen", "Zacht beginnen"]
    assert vast.exists()


def test_a_pinned_issue_goes_out_on_its_date_and_the_rotation_goes_on_around_it(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    queue_three(cli, folder)
    extra = write_issue(folder, "los-2", theme="loslaten", subject="Nog eens loslaten")
    cli("issues", "queue", str(extra))
    out = cli("issues", "pin", "los-2", "--date", "2026-12-06", "--now", TUESDAY).stdout
    assert "Pinned los-2 to Sun 2026-12-06 07:00 CET" in out

    rows = plan_rows(cli, 5)
    assert "Open handen" in rows[0]
    assert "Nog eens loslaten" in rows[1]
    plan = cli("issues", "plan", "--weeks", "5", "--now", TUESDAY).stdout
    assert "pinned" in plan
    # Around the pin: vasthouden and zachtheid, which waited longest, come next.
    assert "Een anker" in rows[2] and "Zacht beginnen" in rows[3]
    assert "nothing queued" in rows[4]

    for sunday in ("2026-11-29T07:00", "2026-12-06T07:00", "2026-12-13T07:00"):
        cli("send", "--now", sunday)
    assert edition_subjects(factory) == ["Open handen", "Nog eens loslaten", "Een anker"]
    refused = cli("issues", "pin", "los-2", "--unpin", code=1)
    assert "los-2 was already sent" in refused.stderr


def test_pin_refuses_a_day_that_is_no_send_date_naming_the_nearest(
    cli: Cli, tmp_path: Path
) -> None:
    queue_three(cli, tmp_path / "issues")
    monday = cli("issues", "pin", "vast", "--date", "2027-01-04", "--now", TUESDAY, code=1)
    assert "2027-01-04 is not a coming send date" in monday.stderr
    assert "the nearest are: 2027-01-03 or 2027-01-10" in monday.stderr
    passed = cli("issues", "pin", "vast", "--date", "2020-01-05", "--now", TUESDAY, code=1)
    assert "2020-01-05 is not a coming send date (or it has passed)" in passed.stderr
    cli("issues", "pin", "vast", "--date", "2027-01-03", "--now", TUESDAY)
    taken = cli("issues", "pin", "zacht", "--date", "2027-01-03", "--now", TUESDAY, code=1)
    assert "vast is already pinned to 2027-01-03" in taken.stderr
    assert "newsletter issues pin vast --unpin" in taken.stderr
    both = cli(
        "issues", "pin", "zacht", "--date", "2027-01-03", "--now", TUESDAY, "--unpin", code=2
    )
    assert "either --date" in both.stderr
    assert "no longer pinned" in cli("issues", "pin", "vast", "--unpin").stdout
    assert "pinned" not in cli("issues", "plan", "--now", TUESDAY).stdout


def test_a_pin_whose_sunday_passed_unsent_puts_the_issue_back_in_the_rotation(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    los = write_issue(folder, "los", theme="loslaten", subject="Open handen")
    cli("issues", "queue", str(los))
    cli("issues", "pin", "los", "--date", "2026-12-13", "--now", TUESDAY)
    # 29 Nov and 6 Dec: nothing for the rotation (los waits for its pin).
    rows = plan_rows(cli, 3)
    assert "nothing queued" in rows[0] and "nothing queued" in rows[1]
    assert "Open handen" in rows[2]
    # The 13th is missed (the machine was off past the grace); on the 20th it goes out.
    cli("send", "--now", "2026-12-14T12:00")
    assert edition_subjects(factory) == []
    cli("send", "--now", "2026-12-20T07:00")
    assert edition_subjects(factory) == ["Open handen"]
    with factory() as session:
        (issue,) = session.scalars(select(Issue))
        assert issue.status is IssueStatus.SENT
