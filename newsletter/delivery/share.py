"""One share of a spread send or worker: its settings, and what runs it in a child process (or
in the parent's own thread), reporting counts and errors to the parent (`processes`)."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter import i18n
from newsletter.delivery import engine as single
from newsletter.delivery import worker as single_worker
from newsletter.delivery.engine import CapReached
from newsletter.delivery.pacing import CapsShare
from newsletter.delivery.run import Clock, Progress
from newsletter.delivery.senders import Liveness, Senders, SqliteSenders, StatusReader, senders_for
from newsletter.mail.transport import RelayUnavailable
from newsletter.settings import Settings
from newsletter.storage.db import DatabaseUnavailable, make_engine, session_factory

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
FIELDS = 5  # per share: sent, failed, retry, skipped, recovered
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
    parent: int | None  # None: the parent's own share, in a thread
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
    engine = make_engine(job.settings.database_url)
    try:
        run_share(job, engine, stop)
    finally:
        engine.dispose()


def run_share(job: Job, engine: Engine, stop: threading.Event) -> None:
    """Send one share, in a child process or in the parent's own thread; errors go to the
    parent as events."""
    done = threading.Event()
    threading.Thread(target=_follow, args=(job, stop, done), daemon=True).start()
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
                engine,
                factory,
                job.settings,
                clock,
                on_batch=report,
                stop=stop,
                senders=senders,
                family=job.family,
                caps_share=job.caps,
            )
            report(result.progress, result.recovered)
        else:
            progress = single_worker.work(
                engine,
                factory,
                job.settings,
                stop,
                clock=clock,
                on_batch=report,
                idle_seconds=job.idle_seconds,
                pause_seconds=job.pause_seconds,
                senders=senders,
                family=job.family,
                caps_share=job.caps,
            )
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


def _follow(job: Job, stop: threading.Event, done: threading.Event) -> None:
    """Stop when the parent says so, or when the parent is gone."""
    while not done.wait(POLL_SECONDS):
        if job.stop.is_set() or (job.parent is not None and os.getppid() != job.parent):
            stop.set()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it crosses a process boundary intact, else its kind and text."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes, just made
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
