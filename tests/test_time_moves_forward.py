"""Time only moves forward: a `send --now` before the newest edition settles nothing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Edition, Issue, IssueStatus
from tests.support.cli import Cli
from tests.support.issue_files import queue_and_import, write_issue


def test_an_earlier_now_settles_nothing_and_names_the_newest_edition(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    queue_and_import(cli, tmp_path, ["anna@example.com"])
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "twee", theme="vasthouden")))
    cli("send", "--now", "2026-12-06T07:00")
    result = cli("send", "--now", "2026-11-29T07:00")
    assert "Nothing settled" in result.stderr
    assert "newest edition, 1 of" in result.stderr
    assert "2026-12-06" in result.stderr
    with factory() as session:
        assert len(session.scalars(select(Edition)).all()) == 1
        queued = session.scalars(select(Issue).where(Issue.status == IssueStatus.QUEUED)).all()
    assert len(queued) == 1, "the other issue waits for a later week, not an earlier one"
