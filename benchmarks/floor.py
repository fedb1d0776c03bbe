"""The floor: what plain smtplib pushes to the same sink, in processes and in threads.

The process floor runs independent processes (no shared GIL), as many as give the highest rate
on this machine and at least the engine's connections: the ratio uses it. The thread floor runs
smtplib threads in one process, one per connection, for comparison.
"""

from __future__ import annotations

import multiprocessing
import os
import smtplib
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import ROOT


def sample_message(env: dict[str, str]) -> bytes:
    """One message exactly as the engine builds it, for the floor to push."""
    sys.path.insert(0, str(ROOT))
    os.environ.update({k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})
    from sqlalchemy import select

    from newsletter.mail.composing import EditionMessage, Recipient
    from newsletter.settings import load_settings
    from newsletter.storage.db import make_engine, session_factory
    from newsletter.storage.models import Edition

    settings = load_settings()
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        edition = session.scalars(select(Edition)).one()
        message = EditionMessage(
            settings,
            subject=edition.subject,
            html=edition.html,
            text=edition.text,
            seed=edition.message_id_seed,
        )
    engine.dispose()
    url = "https://nieuws.example.nl/afmelden/" + "x" * 43
    return message.build(Recipient(1, "lezer0000001@example.com", "Lezer", url), datetime.now(UTC))


def _push(port: int, data: bytes, count: int, go: Any) -> None:
    """One floor worker: plain smtplib, one ready message, reconnecting every 1,000."""
    go.wait()
    smtp = smtplib.SMTP("127.0.0.1", port)
    smtp.ehlo()
    for i in range(count):
        if i and i % 1000 == 0:  # the engine reconnects every 1000 messages too
            smtp.quit()
            smtp = smtplib.SMTP("127.0.0.1", port)
            smtp.ehlo()
        smtp.sendmail("nieuws@nieuws.example.nl", ["lezer@example.com"], data)
    smtp.quit()


def process_floor(port: int, data: bytes, count: int, processes: int) -> float:
    """Plain smtplib in `processes` independent processes: messages per second."""
    context = multiprocessing.get_context("fork")
    go = context.Event()
    per = count // processes
    workers = [context.Process(target=_push, args=(port, data, per, go)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    go.set()
    for worker in workers:
        worker.join()
    if any(worker.exitcode != 0 for worker in workers):
        raise SystemExit("a floor process failed")
    return per * processes / (time.perf_counter() - started)


def thread_floor(port: int, data: bytes, count: int, threads: int) -> float:
    """Plain smtplib in `threads` threads of one process (one GIL): messages per second."""
    go = threading.Event()
    per = count // threads
    workers = [threading.Thread(target=_push, args=(port, data, per, go)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    go.set()
    for worker in workers:
        worker.join()
    return per * threads / (time.perf_counter() - started)


def ladder(connections: int, top: int | None = None) -> list[int]:
    """The process counts to try: the engine's connections up to max(4, 2 × cores), or `top`."""
    top = max(top or max(4, 2 * (os.cpu_count() or 1)), connections)
    return list(range(connections, top + 1))


def floors(
    port: int, data: bytes, count: int, connections: int, top: int | None = None
) -> dict[str, Any]:
    """Every rung of the process ladder, the best of them, and the thread floor."""
    rungs = {n: round(process_floor(port, data, count, n)) for n in ladder(connections, top)}
    best = max(rungs, key=lambda n: rungs[n])
    return {
        "process_floor_msgs_per_s": rungs[best],
        "process_floor_processes": best,
        "process_floor_ladder": {str(n): rate for n, rate in rungs.items()},
        "thread_floor_msgs_per_s": round(thread_floor(port, data, count, connections)),
        "thread_floor_threads": connections,
        "floor_messages_per_rung": count,
    }
