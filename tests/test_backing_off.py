"""A relay that refuses: the scheduler and the workers wait longer each time, never spin."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.delivery.worker import Backoff, work
from newsletter.scheduler import Jobs
from tests.support.cli import Cli
from tests.support.databases import settings_from
from tests.support.issue_files import queue_and_import
from tests.support.relays import ScriptedHandler, start_smtp


def test_backoff_doubles_up_to_its_ceiling_and_starts_over_after_success() -> None:
    backoff = Backoff(30, ceiling=200)
    assert [backoff.next_wait() for _ in range(5)] == [30, 60, 120, 200, 200]
    backoff.reset()
    assert backoff.next_wait() == 30


def test_the_scheduler_waits_longer_each_time_the_relay_refuses(
    cli: Cli, env: dict[str, str], tmp_path: Path, engine: Engine,
    factory: sessionmaker[Session],
) -> None:  # fmt: skip
    queue_and_import(cli, tmp_path, [f"lezer{i}@example.com" for i in range(3)])
    handler = ScriptedHandler(mail=["530 5.7.0 Authentication required"] * 100)
    controller = start_smtp(handler)
    try:
        settings = settings_from(
            {**env, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        )
        jobs = Jobs(engine, factory, settings)
        cli(
            "send",
            "--now",
            "2026-11-29T07:00",
            code=1,
            env={"NEWSLETTER_SMTP_URL": settings.smtp_url or ""},
        )
        tries = handler.mail_tries
        jobs.deliver_due()
        after_first = handler.mail_tries
        for _ in range(5):  # the minute's job fires again and again: it waits instead
            jobs.deliver_due()
        waited = handler.mail_tries
        first_wait = jobs.relay_not_before - time.monotonic()
        jobs.relay_not_before = 0.0  # the wait is over (no need to sit through it)
        jobs.deliver_due()
        second_wait = jobs.relay_not_before - time.monotonic()
    finally:
        controller.stop()
    assert after_first > tries, "the first minute's run tries the relay"
    assert waited == after_first, "the next ones wait"
    assert handler.mail_tries > waited, "after the wait it tries again"
    assert 50 < first_wait <= 60
    assert 110 < second_wait <= 120, "and then waits twice as long"


def test_a_worker_backs_off_from_a_refusing_relay(
    cli: Cli, env: dict[str, str], tmp_path: Path, engine: Engine,
    factory: sessionmaker[Session],
) -> None:  # fmt: skip
    queue_and_import(cli, tmp_path, [f"lezer{i}@example.com" for i in range(3)])
    handler = ScriptedHandler(mail=["530 5.7.0 Authentication required"] * 1000)
    controller = start_smtp(handler)
    stop = threading.Event()
    try:
        relay = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        cli("send", "--now", "2026-11-29T07:00", code=1, env=relay)
        settings = settings_from({**env, **relay})
        timer = threading.Timer(2.0, stop.set)
        timer.start()
        started = handler.mail_tries
        work(engine, factory, settings, stop, idle_seconds=0.05, pause_seconds=0.1)
        timer.join()
    finally:
        stop.set()
        controller.stop()
    # Waits of 0.1, 0.2, 0.4, 0.8 s fit in two seconds: a handful of tries, not hundreds.
    assert 2 <= handler.mail_tries - started <= 8
