"""`newsletter status` in an 80-column terminal: subjects shown, state names whole, and a reason
for every delivery that waits or failed, a relay that refuses the connection included."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.cli._runtime import console
from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.relays import ScriptedHandler, free_port, start_smtp

SUNDAY = "2026-11-29T07:00"
LONG_SUBJECT = (
    "Over de kunst van het loslaten van wat je nooit echt in handen had, en wat dan blijft"
)


@pytest.fixture
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 80)


def queue_and_add(cli: Cli, tmp_path: Path, readers: list[str]) -> None:
    issue = write_issue(tmp_path / "issues", "lang", subject=LONG_SUBJECT)
    cli("issues", "queue", str(issue))
    for reader in readers:
        cli("subscribers", "add", reader)


def test_a_refused_connection_is_the_recorded_reason_and_status_fits_80_columns(
    cli: Cli, tmp_path: Path, eighty_columns: None
) -> None:
    queue_and_add(cli, tmp_path, [f"lezer{i}@example.com" for i in range(3)])
    closed = f"smtp://127.0.0.1:{free_port()}"  # nobody listens: the connection is refused
    cli("send", "--now", SUNDAY, code=1, NEWSLETTER_SMTP_URL=closed)
    out = cli("status").stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, out
    assert "sending" in out.split() and "retry 3" in out
    flat = " ".join(out.split())
    assert "Over de kunst van het loslaten" in flat and "(loslaten)" in flat
    assert "connection: cannot reach the SMTP relay at" in flat and "Connection refused" in flat
    reason = next(line for line in lines if "connection:" in line)
    assert reason.rstrip().endswith("3"), "all three wait for that reason"


def test_failures_of_every_kind_keep_their_reason_and_whole_state_names(
    cli: Cli, tmp_path: Path, eighty_columns: None
) -> None:
    handler = ScriptedHandler(
        rcpt={"weg@example.com": ["550 5.1.1 User unknown"],
              "vol@example.com": ["452 4.2.2 Mailbox full"]},
    )  # fmt: skip
    controller = start_smtp(handler)
    try:
        queue_and_add(cli, tmp_path, ["weg@example.com", "vol@example.com", "ok@example.com"])
        cli("send", "--now", SUNDAY, NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}")
    finally:
        controller.stop()
    out = cli("status").stdout
    assert max(len(line) for line in out.splitlines()) <= 80, out
    words = out.split()
    for state in ("sending", "sent", "retry", "failed"):
        assert state in words, state
    flat = " ".join(words)
    assert "RCPT: 5.1.1 User unknown" in flat and "RCPT: 4.2.2 Mailbox full" in flat
    assert "no reply recorded" not in flat
