"""Real sending processes killed, stopped and run side by side: nobody is missed, duplicates stay
within the in-flight window, and an unsubscribe during a send is honoured at once."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Delivery, DeliveryStatus, Subscriber
from tests.support.cli import Cli, spawned
from tests.support.databases import on_two_processes, settings_from
from tests.support.issue_files import queue_and_import
from tests.support.readers import path_for
from tests.support.relays import RecordingHandler, free_port, start_smtp
from tests.support.servers import LiveServer

SUNDAY = "2026-11-29T07:00:00+01:00"
WINDOW = 50


@pytest.fixture(autouse=True)
def _two_sending_processes(env: dict[str, str]) -> None:
    on_two_processes(env)


def prepare(cli: Cli, tmp_path: Path, count: int) -> list[str]:
    addresses = [f"lezer{i:05d}@example.com" for i in range(count)]
    queue_and_import(cli, tmp_path, addresses)
    return addresses


def received_per_rcpt(handler: RecordingHandler) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in handler.received)


def test_sigkill_at_random_moments_then_resume_misses_nobody(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    addresses = prepare(cli, tmp_path, 3000)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    rng = random.Random(int(os.environ.get("NEWSLETTER_TEST_SEED", "8058")))
    run_env = {**env, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    kills = 0
    try:
        for _ in range(3):
            before = len(handler.received)
            with spawned(run_env, "send", "--now", SUNDAY) as process:
                # Kill once the process is sending, at a random moment in its run.
                deadline = time.monotonic() + 30
                while len(handler.received) == before and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.05, 0.8))
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    kills += 1
                process.communicate(timeout=30)
        with spawned(run_env, "send", "--now", SUNDAY) as final:
            _out, err = final.communicate(timeout=120)
            assert final.returncode == 0, err
    finally:
        controller.stop()
    per_rcpt = received_per_rcpt(handler)
    missing = set(addresses) - set(per_rcpt)
    assert not missing, f"{len(missing)} recipients missed"
    duplicates = sum(n - 1 for n in per_rcpt.values())
    assert kills >= 1
    assert duplicates <= kills * WINDOW, f"{duplicates} duplicates after {kills} kills"


def test_sigterm_stops_a_worker_cleanly_and_releases_its_claims(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    prepare(cli, tmp_path, 2000)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    port = free_port()
    # Settle the edition with the relay unreachable: nothing is sent yet.
    cli("send", "--now", SUNDAY, code=1, NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{port}")
    run_env = {**env, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    try:
        with spawned(run_env, "worker", "--now", SUNDAY) as worker:
            deadline = time.monotonic() + 30
            while len(handler.received) < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
    finally:
        controller.stop()
    assert worker.returncode == 0, err
    assert "Worker stopped: sent" in out
    with factory() as session:
        sending = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.SENDING)
        ).all()
        sent = session.scalars(
            select(Delivery.id).where(Delivery.status == DeliveryStatus.SENT)
        ).all()
    assert sending == [], "claims are released on SIGTERM"
    assert len(sent) == len(handler.received)


def test_a_second_sqlite_sender_says_so(cli: Cli, env: dict[str, str], tmp_path: Path) -> None:
    if not env["NEWSLETTER_DATABASE_URL"].startswith("sqlite"):
        pytest.skip("SQLite only: PostgreSQL runs any number of senders")
    prepare(cli, tmp_path, 1)
    with spawned(env, "worker") as worker:
        try:
            database = make_url(env["NEWSLETTER_DATABASE_URL"]).database
            assert database is not None
            lock = Path(database + ".sender-lock")
            deadline = time.monotonic() + 15
            while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
                time.sleep(0.05)
            result = cli("send", "--now", SUNDAY, code=1)
            assert "another sender" in result.stderr
            assert "one sending process at a time" in result.stderr
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)


class GateHandler(RecordingHandler):
    """Holds the first message until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.first_arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.first_arrived.is_set():
            self.first_arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 20)
        return await super().handle_DATA(server, session, envelope)


def test_an_address_unsubscribed_during_its_send_gets_nothing_more(
    cli: Cli,
    env: dict[str, str],
    tmp_path: Path,
    live_app: LiveServer,
    factory: sessionmaker[Session],
) -> None:
    addresses = prepare(cli, tmp_path, 6)
    handler = GateHandler()
    controller = start_smtp(handler)
    run_env = {
        **env,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "NEWSLETTER_SMTP_CONNECTIONS": "1",
    }
    settings = settings_from(env)
    leaving_address = addresses[4]
    try:
        with spawned(run_env, "send", "--now", SUNDAY) as process:
            assert handler.first_arrived.wait(20)
            with factory() as session:
                leaving = session.scalars(
                    select(Subscriber).where(Subscriber.email == leaving_address)
                ).one()
            response = httpx.post(live_app.url + path_for(settings, leaving))
            assert response.status_code == 200
            handler.gate.set()
            _out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
    finally:
        handler.gate.set()
        controller.stop()
    per_rcpt = received_per_rcpt(handler)
    assert leaving_address not in per_rcpt
    assert set(per_rcpt) == set(addresses) - {leaving_address}
    with factory() as session:
        status = session.scalars(
            select(Delivery.status).where(Delivery.subscriber_id == leaving.id)
        ).one()
    assert status is DeliveryStatus.SKIPPED


def test_two_postgresql_workers_share_an_edition_and_survive_a_killed_connection(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    if not env["NEWSLETTER_DATABASE_URL"].startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    addresses = prepare(cli, tmp_path, 3000)
    cli("send", "--now", SUNDAY, code=1, NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{free_port()}")
    handler = RecordingHandler()
    controller = start_smtp(handler)
    smtp = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    url_a = make_url(env["NEWSLETTER_DATABASE_URL"]).update_query_dict(
        {"application_name": "nl-worker-a"}
    )
    env_a = {**env, **smtp, "NEWSLETTER_DATABASE_URL": url_a.render_as_string(hide_password=False)}
    try:
        with (
            spawned(env_a, "worker", "--now", SUNDAY) as worker_a,
            spawned({**env, **smtp}, "worker", "--now", SUNDAY) as worker_b,
        ):
            deadline = time.monotonic() + 60
            while len(handler.received) < 600 and time.monotonic() < deadline:
                time.sleep(0.01)
            with factory() as session:
                killed = session.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = 'nl-worker-a'"
                    )
                ).scalar()
            assert killed and killed >= 1
            while len(set(r.rcpt_tos[0] for r in handler.received)) < len(addresses):
                if time.monotonic() > deadline + 60:
                    break
                time.sleep(0.05)
            for worker in (worker_a, worker_b):
                worker.send_signal(signal.SIGTERM)
            out_a, err_a = worker_a.communicate(timeout=60)
            out_b, err_b = worker_b.communicate(timeout=60)
        # A rerun completes whatever is left (nothing, normally).
        cli("send", "--now", SUNDAY, env=smtp)
    finally:
        controller.stop()
    assert worker_a.returncode == 0, err_a
    assert worker_b.returncode == 0, err_b
    per_rcpt = received_per_rcpt(handler)
    assert set(per_rcpt) == set(addresses)
    assert sum(n - 1 for n in per_rcpt.values()) <= WINDOW
    sent_a = int(out_a.split("sent ")[1].split(",")[0])
    sent_b = int(out_b.split("sent ")[1].split(",")[0])
    assert sent_a > 0
    assert sent_b > 0
