"""Sending on every core: a send or a worker spread over processes, each with its share of the
connections and the pace and its own prepared edition, all sharing the caps. The parent sends
the first share itself, in a thread, and starts a child process for each of the others.

The parent holds what the command holds (SQLite's sender lock), takes back abandoned claims
before its children start (on SQLite only the parent may: a child would take back its
siblings'), and watches them. A child's error stops its siblings and is raised again here. A
child that dies has what it claimed put back (its owner ids share a family the parent knows);
the others, a new round of a send, or a worker's new child send it. SIGTERM or Ctrl-C to the
parent set the shared stop: every child finishes its in-flight messages, records them and ends.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.delivery import engine as single
from newsletter.delivery import worker as single_worker
from newsletter.delivery.engine import CapReached
from newsletter.delivery.pacing import CapsShare
from newsletter.delivery.run import Clock, DeliveryReport, Progress, next_retry_at, unfinished_count
from newsletter.delivery.senders import Senders, SqliteSenders, senders_for
from newsletter.delivery.share import (
    FIELDS,
    POLL_SECONDS,
    Job,
    child_main,
    process_count,
    run_share,
    shares,
)
from newsletter.mail.transport import Transport
from newsletter.settings import Settings
from newsletter.storage import ledger, ledger_editions
from newsletter.storage.db import (
    retrying,
    transaction,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Spawned, not forked: the parent may have threads (a scheduler, a progress bar) and open
# database connections, which a fork would copy half-way.
CONTEXT = multiprocessing.get_context("spawn")
MAX_ROUNDS = 5  # a send whose children keep dying stops after this many rounds


class _Here:
    """The parent's own share, sent by a thread: one process fewer to start and to hold in
    memory. It looks like a child process to the team."""

    def __init__(self, job: Job, engine: Engine) -> None:
        self.pid = os.getpid()
        self.thread = threading.Thread(
            target=run_share, args=(job, engine, threading.Event()), name="share-0", daemon=True
        )
        self.thread.start()

    @property
    def exitcode(self) -> int | None:
        return None if self.thread.is_alive() else 0

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def kill(self) -> None:
        pass  # it follows the team's stop


class Team:
    """The child processes of one send or worker, and what the parent watches of them."""

    def __init__(
        self,
        engine: Engine,
        senders: Senders,
        factory: sessionmaker[Session],
        settings: Settings,
        clock: Clock,
        mode: str,
        *,
        idle_seconds: float = 5.0,
        pause_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.senders = senders
        self.factory = factory
        self.settings = settings
        self.shares = shares(settings, process_count(settings))
        self.clock = clock
        self.mode = mode
        self.waits = (idle_seconds, pause_seconds)
        self.family = f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stop = CONTEXT.Event()
        self.events = CONTEXT.Queue()
        self.totals = CONTEXT.Array("q", FIELDS * len(self.shares))
        self.caps = CapsShare(CONTEXT)
        self.children: dict[int, tuple[BaseProcess | _Here, str]] = {}
        self.banked = [0] * FIELDS  # counts of children that ended and were replaced
        self.started = 0
        self.error: BaseException | None = None

    def write(self, unit: Callable[[Session], T]) -> T:
        def attempt() -> T:
            with self.senders.write_turns(), transaction(self.factory) as session:
                return unit(session)

        return retrying(attempt, patience=self.settings.database_patience_seconds)

    def start(self, slot: int) -> None:
        with self.totals.get_lock():
            base = slot * FIELDS
            for field in range(FIELDS):
                self.banked[field] += self.totals[base + field]
                self.totals[base + field] = 0
        self.started += 1
        family = f"{self.family}/{self.started}"
        job = Job(
            self.mode,
            self.shares[slot],
            family,
            slot,
            (self.clock.start, self.clock.t0),
            None if slot == 0 else os.getpid(),
            self.stop,
            self.totals,
            self.caps,
            self.events,
            *self.waits,
        )
        if slot == 0:
            self.children[slot] = (_Here(job, self.engine), family)
            return
        process = CONTEXT.Process(
            target=child_main, args=(job,), name=f"newsletter-sender-{slot}", daemon=True
        )
        process.start()
        self.children[slot] = (process, family)

    def start_all(self) -> None:
        for slot in reversed(range(len(self.shares))):  # the children first: they take longest
            self.start(slot)

    def poll(self, outer_stop: threading.Event) -> list[int]:
        """Pass on a stop, take in errors, and put back what dead children held; their slots."""
        if outer_stop.is_set():
            self.stop.set()
        while True:
            try:
                _slot, exc = self.events.get_nowait()
            except queue.Empty:
                break
            if self.error is None or isinstance(self.error, CapReached):
                self.error = exc
            if not isinstance(exc, CapReached):
                self.stop.set()
        died = []
        for slot, (process, family) in list(self.children.items()):
            if process.exitcode is None:
                continue
            process.join()
            del self.children[slot]
            if process.exitcode != 0:
                released = self.write(lambda s, f=family: ledger.recover_family(s, f))  # type: ignore[misc]
                log.warning(
                    "sending process %s ended with exit code %s; %d of its deliveries are back "
                    "in the queue",
                    process.pid,
                    process.exitcode,
                    released,
                )
                died.append(slot)
        return died

    def progress(self, progress: Progress) -> int:
        """Fill in the team's totals; returns how many claims its children took back."""
        with self.totals.get_lock():
            values = list(self.totals[:])
        sums = list(self.banked)
        for index, value in enumerate(values):
            sums[index % FIELDS] += value
        progress.sent, progress.failed, progress.retry, progress.skipped = sums[:4]
        return sums[4]

    def close(self) -> None:
        """Stop every child (each finishes its in-flight messages) and wait for them."""
        self.stop.set()
        deadline = time.monotonic() + self.settings.lease_seconds
        for process, _family in self.children.values():
            process.join(timeout=max(deadline - time.monotonic(), 0.1))
            if process.exitcode is None:
                process.kill()  # its claims go back below, as a dead child's
                process.join()
        self.poll(threading.Event())
        self.events.close()


def _recover_first(senders: Senders, factory: sessionmaker[Session], settings: Settings) -> int:
    """On SQLite, the parent takes back abandoned claims before any child claims."""
    if not isinstance(senders, SqliteSenders):
        return 0  # PostgreSQL: each child takes back what dead senders held
    return retrying(
        lambda: senders.recover(factory, ""), patience=settings.database_patience_seconds
    )


def deliver(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    clock: Clock,
    *,
    on_batch: Callable[[Progress], None] | None = None,
    transport_factory: Callable[[], Transport] | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send every due delivery, on `NEWSLETTER_SEND_PROCESSES` processes (`engine.deliver`)."""
    if process_count(settings, transport_factory) == 1:
        return single.deliver(
            engine,
            factory,
            settings,
            clock,
            on_batch=on_batch,
            transport_factory=transport_factory,
            stop=stop,
        )
    stop = stop or threading.Event()
    senders = senders_for(engine)
    progress = Progress()
    with senders.exclusive():
        recovered = _recover_first(senders, factory, settings)
        team = Team(engine, senders, factory, settings, clock, "send")
        try:
            for _round in range(MAX_ROUNDS):
                team.start_all()
                died = _watch(team, stop, progress, on_batch)
                if team.error is not None or not died or stop.is_set():
                    break
                log.warning("a sending process died; sending what it held with a new round")
        finally:
            team.close()
        recovered += team.progress(progress)
        if on_batch is not None:
            on_batch(progress)
        if team.error is not None:
            raise team.error
        team.write(lambda session: ledger_editions.finish_editions(session, clock.now()))
    patience = settings.database_patience_seconds
    unfinished = retrying(lambda: unfinished_count(factory), patience=patience)
    with factory() as session:
        next_retry = next_retry_at(session)
    return DeliveryReport(progress, recovered, unfinished, next_retry)


def _watch(
    team: Team,
    stop: threading.Event,
    progress: Progress,
    on_batch: Callable[[Progress], None] | None,
) -> bool:
    """Until every child of a round has ended; whether one of them died."""
    died = False
    while team.children:
        died = bool(team.poll(stop)) or died
        team.progress(progress)
        if on_batch is not None:
            on_batch(progress)
        time.sleep(POLL_SECONDS)
    team.poll(stop)  # errors sent just before the end
    return died


def work(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event,
    *,
    clock: Clock | None = None,
    idle_seconds: float = 5.0,
    pause_seconds: float = 30.0,
    on_batch: Callable[[Progress], None] | None = None,
) -> Progress:
    """Send whatever falls due until `stop`, on several processes (`worker.work`); a child that
    dies is replaced."""
    clock = clock or Clock()
    if process_count(settings) == 1:
        return single_worker.work(
            engine,
            factory,
            settings,
            stop,
            clock=clock,
            idle_seconds=idle_seconds,
            pause_seconds=pause_seconds,
            on_batch=on_batch,
        )
    senders = senders_for(engine)
    progress = Progress()
    with senders.exclusive():
        _recover_first(senders, factory, settings)
        team = Team(
            engine,
            senders,
            factory,
            settings,
            clock,
            "work",
            idle_seconds=idle_seconds,
            pause_seconds=pause_seconds,
        )
        try:
            team.start_all()
            while team.children:
                for slot in team.poll(stop):
                    if not team.stop.is_set():
                        log.warning("starting a new sending process in place of one that died")
                        team.start(slot)
                team.progress(progress)
                if on_batch is not None:
                    on_batch(progress)
                time.sleep(POLL_SECONDS)
        finally:
            team.close()
        team.progress(progress)
        if team.error is not None:
            raise team.error
    return progress
