"""The pace and the caps: a token bucket on a fake clock, throttling, connection reuse, caps."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from newsletter.delivery.pacing import MIN_RATE, Pacer
from tests.support.cli import Cli
from tests.support.issue_files import queue_and_import
from tests.support.relays import RecordingHandler, start_smtp


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_hundred_sends_at_ten_per_second_take_ten_seconds() -> None:
    fake = FakeTime()
    pacer = Pacer(10.0, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    for _ in range(100):
        pacer.wait()
    assert fake.now - start >= 100 / 10 - 0.1 - 1e-9


def test_no_limit_means_no_waiting() -> None:
    fake = FakeTime()
    pacer = Pacer(None, clock=fake.clock, sleep=fake.sleep)
    for _ in range(1000):
        pacer.wait()
    assert fake.now == 1000.0


def test_a_throttling_reply_halves_the_pace_and_it_recovers_gradually() -> None:
    fake = FakeTime()
    pacer = Pacer(20.0, clock=fake.clock, sleep=fake.sleep)
    pacer.wait()
    pacer.throttled()
    assert pacer.current == 10.0
    pacer.throttled()
    assert pacer.current == 5.0
    rates = []
    for _ in range(60):
        fake.sleep(1.0)
        pacer.wait()
        rates.append(pacer.current)
    assert rates[0] is not None and rates[0] < 6  # not straight back
    assert rates == sorted(rates)  # only up, step by step
    assert rates[-1] == 20.0  # back at the configured rate, never above


def test_throttling_without_a_configured_rate_slows_to_half_the_observed_rate() -> None:
    fake = FakeTime()
    pacer = Pacer(None, clock=fake.clock, sleep=fake.sleep)
    for _ in range(100):  # 100 messages in one second
        pacer.wait()
        fake.now += 0.01
    pacer.throttled()
    assert pacer.current is not None
    assert 40 <= pacer.current <= 60
    for _ in range(120):
        fake.sleep(1.0)
        pacer.wait()
    assert pacer.current is None  # recovered to no limit at all


def test_the_pace_never_drops_to_zero() -> None:
    fake = FakeTime()
    pacer = Pacer(1.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(50):
        pacer.throttled()
    assert pacer.current == MIN_RATE


class CountingHandler(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.ehlos = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        self.ehlos += 1
        return responses


def prepare(cli: Cli, tmp_path: Path, count: int) -> None:
    queue_and_import(cli, tmp_path, [f"l{i}@example.com" for i in range(count)])


def test_connections_are_reused_and_reopened_after_the_limit(cli: Cli, tmp_path: Path) -> None:
    prepare(cli, tmp_path, 7)
    handler = CountingHandler()
    controller = start_smtp(handler)
    try:
        cli("send", "--now", "2026-11-29T07:00",
            NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}",
            NEWSLETTER_SMTP_CONNECTIONS="1", NEWSLETTER_SMTP_MESSAGES_PER_CONNECTION="3")  # fmt: skip
    finally:
        controller.stop()
    assert len(handler.received) == 7
    assert handler.ehlos == math.ceil(7 / 3)


def test_the_hourly_cap_holds_and_sending_resumes_when_the_hour_has_passed(
    cli: Cli, tmp_path: Path
) -> None:
    prepare(cli, tmp_path, 5)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    sunday = datetime.fromisoformat("2026-11-29T07:00:00+01:00")
    env = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
           "NEWSLETTER_SMTP_HOURLY_LIMIT": "3"}  # fmt: skip
    try:
        result = cli("send", "--now", sunday.isoformat(), env=env)
        assert len(handler.received) == 3
        assert "cap is reached" in result.stdout
        cli("send", "--now", (sunday + timedelta(minutes=30)).isoformat(), env=env)
        assert len(handler.received) == 3
        cli("send", "--now", (sunday + timedelta(minutes=61)).isoformat(), env=env)
        assert len(handler.received) == 5
    finally:
        controller.stop()
