"""A send spread over several processes: each reader once, a killed child costs no reader, SIGTERM
stops them all, a refusing relay says so as before, and the caps hold for all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Delivery, DeliveryStatus
from tests.support.cli import Cli, spawned
from tests.support.issue_files import queue_and_import
from tests.support.relays import RecordingHandler, ScriptedHandler, free_port, start_smtp

SUNDAY = "2026-11-29T07:00:00+01:00"
WINDOW = 50
TWO = {"NEWSLETTER_SEND_PROCESSES": "2", "NEWSLETTER_SMTP_CONNECTIONS": "2"}


def prepare(cli: Cli, tmp_path: Path, count: int) -> list[str]:
    addresses = [f"lezer{i:05d}@example.com" for i in range(count)]
    queue_and_import(cli, tmp_path, addresses)
    # Settle the edition with the relay unreachable: nothing is sent yet.
    cli("send", "--now", SUNDAY, code=1, NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{free_port()}")
    return addresses


def sending_children(pid: int) -> list[int]:
    """The sending processes a `newsletter` process spawned (not multiprocessing's helpers)."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    children = []
    for child in map(int, found):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            children.append(child)
    return children


def wait_for(handler: RecordingHandler, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while len(handler.received) < count and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)


def still_sending(factory: sessionmaker[Session]) -> list[int]:
    with factory() as session:
        return list(
            session.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.SENDING))
        )


def per_rcpt(handler: RecordingHandler) -> Counter[str]:
    return Counter(r.rcpt_tos[0] for r in handler.received)


def test_two_processes_deliver_each_reader_exactly_once(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = prepare(cli, tmp_path, 1500)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    run_env = {**env, **TWO, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    try:
        with spawned(run_env, "send", "--now", SUNDAY) as process:
            wait_for(handler, 100, process)
            children = sending_children(process.pid)
            out, err = process.communicate(timeout=120)
    finally:
        controller.stop()
    assert process.returncode == 0, err
    assert len(children) == 1, "the parent sends a share itself, a child the other"
    assert f"Sent {len(addresses)}, failed 0" in out
    assert per_rcpt(handler) == Counter(addresses)
    assert still_sending(factory) == []


def test_a_sending_process_killed_mid_send_costs_no_reader(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = prepare(cli, tmp_path, 3000)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    run_env = {**env, **TWO, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    try:
        with spawned(run_env, "send", "--now", SUNDAY) as process:
            wait_for(handler, 300, process)
            children = sending_children(process.pid)
            os.kill(children[0], signal.SIGKILL)
            _out, err = process.communicate(timeout=180)
    finally:
        controller.stop()
    assert process.returncode == 0, err
    assert "back in the queue" in err
    received = per_rcpt(handler)
    assert set(received) == set(addresses), "every reader is delivered"
    assert sum(n - 1 for n in received.values()) <= WINDOW, "duplicates within the window"
    assert still_sending(factory) == []


def test_sigterm_stops_every_sending_process_and_the_next_send_finishes(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = prepare(cli, tmp_path, 3000)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    relay = {**TWO, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    try:
        with spawned({**env, **relay}, "send", "--now", SUNDAY) as process:
            wait_for(handler, 300, process)
            children = sending_children(process.pid)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert len(children) == 1, "the parent sends a share itself, a child the other"
        assert not any(Path(f"/proc/{child}").exists() for child in children)
        assert still_sending(factory) == [], "claims are released on SIGTERM"
        stopped_at = len(handler.received)
        assert stopped_at < len(addresses)
        cli("send", "--now", SUNDAY, env=relay)
    finally:
        controller.stop()
    assert "deliveries are not finished" in out
    assert per_rcpt(handler) == Counter(addresses), "each reader once"


def test_a_refusing_relay_ends_a_two_process_send_as_before(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    prepare(cli, tmp_path, 12)
    handler = ScriptedHandler(mail=["530 5.7.0 Authentication required"] * 100)
    controller = start_smtp(handler)
    try:
        relay = {**TWO, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        result = cli("send", "--now", SUNDAY, code=1, env=relay)
    finally:
        controller.stop()
    assert "Error: the relay refuses to send: 530 at MAIL FROM" in result.stderr
    assert "12 deliveries wait" in result.stderr
    assert "Traceback" not in result.stderr
    assert still_sending(factory) == []


def test_the_hourly_cap_holds_for_all_processes_together(
    cli: Cli, tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    prepare(cli, tmp_path, 100)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    try:
        result = cli("send", "--now", SUNDAY,
                     NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{controller.port}",
                     NEWSLETTER_SEND_PROCESSES="2", NEWSLETTER_SMTP_CONNECTIONS="4",
                     NEWSLETTER_SMTP_HOURLY_LIMIT="30")  # fmt: skip
    finally:
        controller.stop()
    assert len(handler.received) == 30
    assert "cap is reached" in result.stdout
    assert still_sending(factory) == []


def test_a_worker_replaces_a_sending_process_that_died(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    addresses = prepare(cli, tmp_path, 3000)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    run_env = {**env, **TWO, "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    try:
        with spawned(run_env, "worker", "--now", SUNDAY) as worker:
            wait_for(handler, 300, worker)
            first = sending_children(worker.pid)
            os.kill(first[0], signal.SIGKILL)
            deadline = time.monotonic() + 60
            while len(per_rcpt(handler)) < len(addresses) and time.monotonic() < deadline:
                time.sleep(0.05)
            replaced = sending_children(worker.pid)
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
    finally:
        controller.stop()
    assert worker.returncode == 0, err
    assert "Worker stopped: sent" in out
    assert len(replaced) == 1 and replaced != first, "a new child took the dead one's place"
    received = per_rcpt(handler)
    assert set(received) == set(addresses)
    assert sum(n - 1 for n in received.values()) <= WINDOW
    assert still_sending(factory) == []
