"""Sending on every core: a send or a worker spread over child processes, each with its share of
the connections and the pace and its own prepared edition, all sharing the caps.

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
import pickle
import queue
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter import i18n
from newsletter.delivery import engine as single
from newsletter.delivery import worker as single_worker
from newsletter.delivery.engine import CapReached
from newsletter.delivery.pacing import CapsShare
from newsletter.delivery.run import Clock, DeliveryReport, Progress, next_retry_at, unfinished_count
from newsletter.delivery.senders import Liveness, Senders, SqliteSenders, StatusReader, senders_for
from newsletter.mail.transport import RelayUnavailable, Transport
from newsletter.settings import Settings
from newsletter.storage import ledger, ledger_editions
from newsletter.storage.db import (
    DatabaseUnavailable,
    make_engine,
    retrying,
    session_factory,
    transaction,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# Spawned, not forked: the parent may have threads (a scheduler, a progress bar) and open
# database connections, which a fork would copy half-way.
CONTEXT = multiprocessing.get_context("spawn")
POLL_SECONDS = 0.25
MAX_ROUNDS = 5  # a send whose children keep dying stops after this many rounds
FIELDS = 5  # per child: sent, failed, retry, skipped, recovered
EXPECTED = (RelayUnavailable, CapReached, DatabaseUnavailable)


def process_count(settings: Settings, transport_factory: object = None) -> int:
    """How many processes send: never more than the connections, so the relay sees no more."""
    if transport_factory is not None or settings.smtp is None:
        return 1  # a test's transport cannot cross a process boundary; the outbox is one folder
    return max(1, min(settings.send_processes, settings.smtp_connections))


def shares(settings: Settings, count: int) -> list[Settings]:
    """Each child's settings: its connections, and its part of the pace and in-flight window."""
    total = settings.smtp_connections
    connections = [total // count + (1 if i < total % count else 0) for i in range(count)]
    return [
        settings.model_copy(
            update={
                "smtp_connections": k,
                "smtp_rate": settings.smtp_rate * k / total,
                "inflight_window": max(1, settings.inflight_window * k // total),
                "send_processes": 1,
            }
        )
        for k in connections
    ]


class _Sibling:
    """A child's view of the senders: the parent holds the command's lock, and on SQLite only
    the parent takes back claims (everyone else's would be its siblings')."""

    def __init__(self, inner: Senders) -> None:
        self.inner = inner
        self.skip_locked = inner.skip_locked

    def exclusive(self) -> AbstractContextManager[None]:
        return nullcontext()

    def alive(self, owner: str) -> AbstractContextManager[Liveness]:
        return self.inner.alive(owner)

    def recover(self, factory: sessionmaker[Session], owner: str) -> int:
        if isinstance(self.inner, SqliteSenders):
            return 0
        return self.inner.recover(factory, owner)

    def write_turns(self) -> AbstractContextManager[object]:
        return self.inner.write_turns()

    def status_reader(self) -> StatusReader:
        return self.inner.status_reader()


@dataclass(frozen=True)
class Job:
    """What a child process is given: picklable, with the shared objects of the team."""

    mode: str  # "send" or "work"
    settings: Settings
    family: str
    slot: int
    clock: tuple[datetime, float]
    parent: int
    stop: Any  # multiprocessing Event: finish in-flight messages, then end
    totals: Any  # multiprocessing Array of FIELDS counts per slot
    caps: CapsShare
    events: Any  # multiprocessing Queue of (slot, exception)
    idle_seconds: float
    pause_seconds: float


def child_main(job: Job) -> None:
    """A child process: send its share until done (a send) or stopped (a worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which says stop
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    i18n.use(job.settings.language)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    done = threading.Event()
    threading.Thread(target=_follow, args=(job, stop, done), daemon=True).start()
    engine = make_engine(job.settings.database_url)
    factory = session_factory(engine)
    senders = _Sibling(senders_for(engine))
    clock = Clock(*job.clock)
    last = [Progress()]

    def report(progress: Progress, recovered: int = 0) -> None:
        last[0] = progress
        with job.totals.get_lock():
            base = job.slot * FIELDS
            job.totals[base : base + FIELDS] = [
                progress.sent,
                progress.failed,
                progress.retry,
                progress.skipped,
                recovered,
            ]

    try:
        if job.mode == "send":
            result = single.deliver(
                engine, factory, job.settings, clock, on_batch=report, stop=stop,
                senders=senders, family=job.family, caps_share=job.caps,
            )  # fmt: skip
            report(result.progress, result.recovered)
        else:
            progress = single_worker.work(
                engine, factory, job.settings, stop, clock=clock, on_batch=report,
                idle_seconds=job.idle_seconds, pause_seconds=job.pause_seconds,
                senders=senders, family=job.family, caps_share=job.caps,
            )  # fmt: skip
            report(progress)
    except BaseException as exc:
        if not isinstance(exc, EXPECTED):
            log.exception("sending process %d failed", os.getpid())
        report(last[0])
        job.events.put((job.slot, _portable(exc)))
        if not isinstance(exc, CapReached):  # capped: the others finish what they claimed
            job.stop.set()
    finally:
        done.set()
        engine.dispose()


def _follow(job: Job, stop: threading.Event, done: threading.Event) -> None:
    """Stop when the parent says so, or when the parent is gone."""
    while not done.wait(POLL_SECONDS):
        if job.stop.is_set() or os.getppid() != job.parent:
            stop.set()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it crosses a process boundary intact, else its kind and text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class Team:
    """The child processes of one send or worker, and what the parent watches of them."""

    def __init__(
        self,
        senders: Senders,
        factory: sessionmaker[Session],
        settings: Settings,
        clock: Clock,
        mode: str,
        *,
        idle_seconds: float = 5.0,
        pause_seconds: float = 30.0,
    ) -> None:
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
        self.children: dict[int, tuple[BaseProcess, str]] = {}
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
            self.mode, self.shares[slot], family, slot, (self.clock.start, self.clock.t0),
            os.getpid(), self.stop, self.totals, self.caps, self.events, *self.waits,
        )  # fmt: skip
        process = CONTEXT.Process(
            target=child_main, args=(job,), name=f"newsletter-sender-{slot}", daemon=True
        )
        process.start()
        self.children[slot] = (process, family)

    def start_all(self) -> None:
        for slot in range(len(self.shares)):
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
            engine, factory, settings, clock,
            on_batch=on_batch, transport_factory=transport_factory, stop=stop,
        )  # fmt: skip
    stop = stop or threading.Event()
    senders = senders_for(engine)
    progress = Progress()
    with senders.exclusive():
        recovered = _recover_first(senders, factory, settings)
        team = Team(senders, factory, settings, clock, "send")
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
            engine, factory, settings, stop, clock=clock, idle_seconds=idle_seconds,
            pause_seconds=pause_seconds, on_batch=on_batch,
        )  # fmt: skip
    senders = senders_for(engine)
    progress = Progress()
    with senders.exclusive():
        _recover_first(senders, factory, settings)
        team = Team(
            senders, factory, settings, clock, "work",
            idle_seconds=idle_seconds, pause_seconds=pause_seconds,
        )  # fmt: skip
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
