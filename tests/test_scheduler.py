"""The scheduler as a real process: it catches up within the grace, and two never send twice."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.scheduler import WEEKLY_JOB_ID, Jobs, build_scheduler
from newsletter.settings import Settings
from tests.support.cli import Cli, spawned
from tests.support.issue_files import queue_and_import
from tests.support.relays import RecordingHandler, start_smtp


def prepare(cli: Cli, tmp_path: Path, count: int) -> list[str]:
    addresses = [f"lezer{i}@example.com" for i in range(count)]
    queue_and_import(cli, tmp_path, addresses)
    return addresses


def schedule_minutes_ago(minutes: int) -> str:
    """A daily cron (in UTC) whose latest fire time was `minutes` ago, away from minute edges."""
    while datetime.now(UTC).second > 50:
        time.sleep(1)
    moment = datetime.now(UTC) - timedelta(minutes=minutes)
    return f"{moment.minute} {moment.hour} * * *"


def test_the_scheduler_uses_the_cron_with_coalescing_and_the_grace(
    settings: Settings, engine: Engine, factory: sessionmaker[Session]
) -> None:
    scheduler = build_scheduler(Jobs(engine, factory, settings), settings)
    job = next(j for j in scheduler.get_jobs() if j.id == WEEKLY_JOB_ID)
    assert isinstance(job.trigger, CronTrigger)
    assert str(job.trigger.timezone) == "Europe/Amsterdam"
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == 12 * 3600


def test_two_schedulers_started_late_send_the_week_once(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    addresses = prepare(cli, tmp_path, 40)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    run_env = {
        **env,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "NEWSLETTER_TIMEZONE": "UTC",
        # The scheduler was down when this fired, 5 minutes ago: well within the grace.
        "NEWSLETTER_SCHEDULE": schedule_minutes_ago(5),
    }
    try:
        with spawned(run_env, "scheduler") as first, spawned(run_env, "scheduler") as second:
            schedulers = [first, second]
            try:
                deadline = time.monotonic() + 60
                while len(handler.received) < len(addresses) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(2)  # room for a second send, had there been one
            finally:
                for process in schedulers:
                    process.send_signal(signal.SIGTERM)
                outputs = [process.communicate(timeout=30) for process in schedulers]
    finally:
        controller.stop()
    per_rcpt = Counter(r.rcpt_tos[0] for r in handler.received)
    assert set(per_rcpt) == set(addresses), outputs
    assert set(per_rcpt.values()) == {1}
    for process in schedulers:
        assert process.returncode == 0
    out = cli("status").stdout
    assert out.count("done") == 1
