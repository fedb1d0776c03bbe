"""The delivery engine against a relay that misbehaves: scripted replies from a real SMTP server."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from tests.support.cli import Cli
from tests.support.databases import on_two_processes
from tests.support.issue_files import queue_and_import, write_issue
from tests.support.relays import ScriptedHandler, free_port, start_smtp

SUNDAY = datetime.fromisoformat("2026-11-29T07:00:00+01:00")


@pytest.fixture(autouse=True)
def _two_sending_processes(env: dict[str, str]) -> None:
    on_two_processes(env)


def run_until_done(cli: Cli, env: dict[str, str], start: datetime, runs: int = 12) -> list[int]:
    """Run `send` as the clock moves on, like the scheduler would; returns the exit codes."""
    codes = []
    for step in range(runs):
        now = start + timedelta(minutes=30 * step)
        result = cli("send", "--now", now.isoformat(), code=None, env=env)
        codes.append(result.exit_code)
        if "deliveries are not finished" not in result.stdout and result.exit_code == 0:
            break
    return codes


def states(factory: sessionmaker[Session]) -> dict[str, DeliveryStatus]:
    with factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    return dict(rows)


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_temporary_failures_end_delivered_exactly_once_and_permanent_ones_suppressed(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session], pipelining: bool
) -> None:
    ok = [f"lezer{i}@example.com" for i in range(6)]
    grey = ["grijs@example.com", "druk@example.com"]
    gone = ["weg@example.com"]
    dropped = ["valt@example.com"]
    handler = ScriptedHandler(
        rcpt={
            "grijs@example.com": ["451 4.7.1 Greylisted, try again later"] * 2,
            "druk@example.com": ["421 4.7.0 Too many connections, slow down"],
            "weg@example.com": ["550 5.1.1 <weg@example.com>: Recipient address rejected"],
        },
        data={"valt@example.com": ["drop"]},
        pipelining=pipelining,
    )
    controller = start_smtp(handler)
    try:
        queue_and_import(cli, tmp_path, ok + grey + gone + dropped)
        env = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        codes = run_until_done(cli, env, SUNDAY)
    finally:
        controller.stop()
    assert set(codes) == {0}, "the process never crashes"
    for address in ok + grey + dropped:
        assert len(handler.accepted[address]) == 1, address
    # A retry carries the same Message-ID as the try that was cut off.
    offered = handler.offered_ids["valt@example.com"]
    assert len(offered) == 2
    assert offered[0] == offered[1]
    assert handler.accepted["weg@example.com"] == []
    final = states(factory)
    assert all(final[a] is DeliveryStatus.SENT for a in ok + grey + dropped)
    assert final["weg@example.com"] is DeliveryStatus.FAILED
    with factory() as session:
        bounced = session.scalars(
            select(Subscriber).where(Subscriber.email == "weg@example.com")
        ).one()
        assert bounced.status is SubscriberStatus.BOUNCED
        reply = session.scalars(
            select(Delivery.last_reply).where(Delivery.subscriber_id == bounced.id)
        ).one()
        assert reply is not None
        assert "550" in reply or "5.1.1" in reply
    # A bounced address is kept out of later editions.
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "twee", theme="vasthouden")))
    handler2 = ScriptedHandler()
    controller = start_smtp(handler2)
    try:
        cli("send", "--now", (SUNDAY + timedelta(days=7)).isoformat(),
            NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}")  # fmt: skip
    finally:
        controller.stop()
    assert "weg@example.com" not in handler2.accepted
    assert len(handler2.accepted) == len(ok + grey + dropped)


def test_a_relay_that_is_down_at_the_start_loses_nobody(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = [f"lezer{i}@example.com" for i in range(5)]
    queue_and_import(cli, tmp_path, addresses)
    port = free_port()
    env = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    result = cli("send", "--now", SUNDAY.isoformat(), code=1, env=env)
    assert f"cannot reach the SMTP relay at 127.0.0.1:{port}" in result.stderr
    assert "5 deliveries wait" in result.stderr
    handler = ScriptedHandler()
    controller = start_smtp(handler, port=port)
    try:
        later = (SUNDAY + timedelta(minutes=20)).isoformat()
        cli("send", "--now", later, env=env)
    finally:
        controller.stop()
    assert sorted(handler.accepted) == addresses
    assert all(len(ids) == 1 for ids in handler.accepted.values())
    assert set(states(factory).values()) == {DeliveryStatus.SENT}


def test_throttling_at_mail_from_is_retried_and_delivered_once(cli: Cli, tmp_path: Path) -> None:
    addresses = [f"lezer{i}@example.com" for i in range(8)]
    handler = ScriptedHandler(mail=["421 4.7.0 Throttled", None, "454 4.7.0 Throttling failure"])
    controller = start_smtp(handler)
    try:
        queue_and_import(cli, tmp_path, addresses)
        env = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        codes = run_until_done(cli, env, SUNDAY)
    finally:
        controller.stop()
    assert set(codes) == {0}
    assert sorted(handler.accepted) == addresses
    assert all(len(ids) == 1 for ids in handler.accepted.values())


def test_a_temporary_failure_gives_up_after_the_maximum_age(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    handler = ScriptedHandler(rcpt={"traag@example.com": ["451 4.3.0 Try later"] * 1000})
    controller = start_smtp(handler)
    try:
        queue_and_import(cli, tmp_path, ["traag@example.com", "vlot@example.com"])
        env = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
               "NEWSLETTER_RETRY_MAX_AGE_HOURS": "1"}  # fmt: skip
        run_until_done(cli, env, SUNDAY, runs=6)
        result = cli("send", "--now", (SUNDAY + timedelta(hours=6)).isoformat(), env=env)
    finally:
        controller.stop()
    final = states(factory)
    assert final["vlot@example.com"] is DeliveryStatus.SENT
    assert final["traag@example.com"] is DeliveryStatus.FAILED
    with factory() as session:
        reply = session.scalars(
            select(Delivery.last_reply).where(Delivery.status == DeliveryStatus.FAILED)
        ).one()
    assert reply is not None
    assert re.match(r"gave up after \d+ attempts: RCPT: 4\.3\.0 Try later", reply)
    assert "Nothing to deliver right now." in result.stdout
    # The operator fixes things and puts the failure back in the queue.
    handler.rcpt.clear()
    controller = start_smtp(handler)
    try:
        out = cli("retry", "1").stdout
        assert "Put 1 failed deliveries of edition 1 back in the queue" in out
        cli("send", "--now", (SUNDAY + timedelta(hours=7)).isoformat(),
            NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}")  # fmt: skip
    finally:
        controller.stop()
    assert len(handler.accepted["traag@example.com"]) == 1
    status = cli("status", "1").stdout
    assert "done" in status


def test_status_groups_failures_by_reply(cli: Cli, tmp_path: Path) -> None:
    handler = ScriptedHandler(
        rcpt={f"weg{i}@example.com": ["550 5.1.1 User unknown"] for i in range(3)}
    )
    controller = start_smtp(handler)
    try:
        queue_and_import(
            cli, tmp_path, [f"weg{i}@example.com" for i in range(3)] + ["ok@example.com"]
        )
        cli(
            "send",
            "--now",
            SUNDAY.isoformat(),
            NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}",
        )
    finally:
        controller.stop()
    out = cli("status").stdout
    assert "RCPT: 5.1.1 User unknown" in out
    line = next(line for line in out.splitlines() if "5.1.1 User unknown" in line)
    assert "550" in line
    assert line.rstrip(" │|").endswith("3")


@pytest.mark.parametrize("reply", ["552 5.2.2 Mailbox full"])
def test_552_to_rcpt_counts_as_temporary(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session], reply: str
) -> None:
    handler = ScriptedHandler(rcpt={"vol@example.com": [reply]})
    controller = start_smtp(handler)
    try:
        queue_and_import(cli, tmp_path, ["vol@example.com"])
        env = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        run_until_done(cli, env, SUNDAY)
    finally:
        controller.stop()
    assert len(handler.accepted["vol@example.com"]) == 1
    assert states(factory)["vol@example.com"] is DeliveryStatus.SENT
