"""`newsletter check` and the refusal to send on a configuration that makes every message
wrong; the demo (no relay) is not affected."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.settings import DEMO_SECRET_KEY
from newsletter.storage.models import Edition
from tests.support.cli import Cli
from tests.support.issue_files import queue_and_import
from tests.support.relays import SmtpServer

SUNDAY = "2026-11-29T07:00"


def test_a_sound_production_configuration_passes(
    cli: Cli, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    key = tmp_path / "nl2026.pem"
    cli("dkim", "keygen", "--selector", "nl2026", "--out", str(key))
    result = cli(
        "check",
        NEWSLETTER_SMTP_URL=smtp_server.url,
        NEWSLETTER_POSTAL_ADDRESS="Dorpsstraat 1, 1234 AB Ergens",
        NEWSLETTER_DKIM_SELECTOR="nl2026",
        NEWSLETTER_DKIM_KEY_FILE=str(key),
        NEWSLETTER_BOUNCE_ADDRESS="bounces@nieuws.example.nl",
        NEWSLETTER_BOUNCE_IMAP_URL="imaps://bounces:geheim@imap.nieuws.example.nl/INBOX",
    )
    assert "0 errors, 0 warnings" in result.stdout, result.stdout


def test_check_lists_every_problem_and_names_the_variables(cli: Cli) -> None:
    result = cli(
        "check",
        code=1,
        NEWSLETTER_SMTP_URL="smtp+starttls://relay.example.nl:587",
        NEWSLETTER_BASE_URL="http://localhost:8000",
        NEWSLETTER_FROM="Wekelijks moment van rust <nieuwsbrief@example.org>",
        NEWSLETTER_SECRET_KEY=DEMO_SECRET_KEY,
    )
    out = result.stdout
    assert "error: NEWSLETTER_BASE_URL: must start with https://" in out
    assert "error: NEWSLETTER_BASE_URL: localhost is a local address" in out
    assert "error: NEWSLETTER_FROM: is the built-in default" in out
    assert "error: NEWSLETTER_SECRET_KEY: is the public demo key" in out
    assert "warning: NEWSLETTER_POSTAL_ADDRESS: is empty" in out
    assert "warning: NEWSLETTER_DKIM_KEY_FILE:" in out and "relay must sign" in out
    assert "4 errors, 3 warnings" in out


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("NEWSLETTER_FROM", "Nieuws <nieuws@example.com>", "reserved for examples (RFC 2606)"),
        ("NEWSLETTER_BASE_URL", "https://192.168.1.10", "192.168.1.10 is a local address"),
        ("NEWSLETTER_OLD_SECRET_KEYS", "kort", "key 1 is shorter than 16 characters"),
        ("NEWSLETTER_LIST_NAME", "Rust=?utf-8?q?=0D=0AReply-To:_x@y.nl?=", "holds '=?'"),
    ],
)
def test_each_error_is_named(cli: Cli, variable: str, value: str, expected: str) -> None:
    result = cli(
        "check", code=1, env={"NEWSLETTER_SMTP_URL": "smtp://relay.example.nl", variable: value}
    )
    line = next(line for line in result.stdout.splitlines() if expected in line)
    assert line.startswith(f"error: {variable}:")


def test_a_from_domain_other_than_the_sites_is_a_warning(cli: Cli) -> None:
    result = cli("check", NEWSLETTER_SMTP_URL="smtp://relay.example.nl",
                 NEWSLETTER_FROM="Nieuws <nieuws@elders.nl>")  # fmt: skip
    assert "warning: NEWSLETTER_FROM: its domain elders.nl differs" in result.stdout


def test_send_worker_and_scheduler_refuse_a_local_link_and_send_nothing(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    queue_and_import(cli, tmp_path, ["anna@example.com"])
    wrong = {"NEWSLETTER_SMTP_URL": smtp_server.url, "NEWSLETTER_BASE_URL": "http://localhost:8000"}
    for args in (("send", "--now", SUNDAY), ("worker",), ("scheduler",)):
        result = cli(*args, code=1, env=wrong)
        assert "refusing to send: every message would be wrong" in result.stderr
        assert "NEWSLETTER_BASE_URL: localhost is a local address" in result.stderr
    assert smtp_server.received == []
    with factory() as session:
        assert session.scalars(select(Edition)).all() == [], "nothing was settled either"


def test_the_demo_without_a_relay_is_not_affected(cli: Cli, tmp_path: Path) -> None:
    queue_and_import(cli, tmp_path, ["anna@example.com"])
    demo = {"NEWSLETTER_SECRET_KEY": "", "NEWSLETTER_DEMO": "on",
            "NEWSLETTER_BASE_URL": "http://localhost:8000",
            "NEWSLETTER_FROM": "Wekelijks moment van rust <nieuwsbrief@example.org>"}  # fmt: skip
    assert "0 errors" in cli("check", env=demo).stdout
    cli("send", "--now", SUNDAY, env=demo)
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
