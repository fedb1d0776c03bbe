"""Leases that hold: a relay so slow that batches outlive a short lease, shared by two workers on
PostgreSQL, sends every reader once; a reader erased or unsubscribed while their edition is
being sent is never mailed."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Delivery, DeliveryStatus, Subscriber
from tests.support.cli import Cli, spawned
from tests.support.databases import on_two_processes
from tests.support.issue_files import queue_and_import
from tests.support.relays import RecordingHandler, free_port, start_smtp

SUNDAY = "2026-11-29T07:00:00+01:00"


@pytest.fixture(autouse=True)
def _two_sending_processes(env: dict[str, str]) -> None:
    on_two_processes(env)


class SlowHandler(RecordingHandler):
    """Takes its time over every message, like a relay under load."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.seconds)
        return await super().handle_DATA(server, session, envelope)


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


def wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize(
    ("rate", "readers"),
    [("0", 90), ("6", 90)],
    ids=["no-pace-renewals", "paced-claims"],
)
def test_two_workers_on_a_slow_relay_outliving_the_lease_send_everyone_once(
    cli: Cli, env: dict[str, str], tmp_path: Path, rate: str, readers: int
) -> None:
    if not env["NEWSLETTER_DATABASE_URL"].startswith("postgresql"):
        pytest.skip("several workers need PostgreSQL")
    addresses = [f"lezer{i:03d}@example.com" for i in range(readers)]
    queue_and_import(cli, tmp_path, addresses)
    cli("send", "--now", SUNDAY, code=1, NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{free_port()}")
    handler = SlowHandler(0.12)  # 90 messages take ~11 s per connection: past a 10 s lease
    controller = start_smtp(handler)
    run_env = {
        **env,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "NEWSLETTER_LEASE_SECONDS": "10",
        "NEWSLETTER_SMTP_RATE": rate,
    }
    with ExitStack() as stack:
        workers = [
            stack.enter_context(spawned(run_env, "worker", "--now", SUNDAY)) for _ in range(2)
        ]
        try:
            done = wait_for(
                lambda: len({r.rcpt_tos[0] for r in handler.received}) >= readers, timeout=120
            )
            time.sleep(1.0)  # room for a duplicate, had a lease been lost
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            outputs = [worker.communicate(timeout=60) for worker in workers]
            controller.stop()
    assert done, outputs
    per_rcpt = Counter(r.rcpt_tos[0] for r in handler.received)
    assert set(per_rcpt) == set(addresses)
    assert max(per_rcpt.values()) == 1, [a for a, n in per_rcpt.items() if n > 1]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "Traceback" not in err


def test_a_reader_erased_and_one_unsubscribed_during_their_send_get_nothing(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = [f"lezer{i}@example.com" for i in range(6)]
    queue_and_import(cli, tmp_path, addresses)
    handler = GateHandler()
    controller = start_smtp(handler)
    run_env = {
        **env,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "NEWSLETTER_SMTP_CONNECTIONS": "1",
    }
    erased, leaving = addresses[3], addresses[4]
    try:
        with spawned(run_env, "send", "--now", SUNDAY) as process:
            assert handler.first_arrived.wait(30)
            # The whole list is claimed by now; both leave while the relay holds the first message.
            cli("subscribers", "forget", erased, "--yes")
            cli("subscribers", "unsubscribe", leaving)
            handler.gate.set()
            _out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
    finally:
        handler.gate.set()
        controller.stop()
    received = Counter(r.rcpt_tos[0] for r in handler.received)
    assert set(received) == set(addresses) - {erased, leaving}
    assert set(received.values()) == {1}
    with factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    states = dict(rows)
    assert erased not in states, "an erased reader leaves no delivery row"
    assert states[leaving] is DeliveryStatus.SKIPPED
