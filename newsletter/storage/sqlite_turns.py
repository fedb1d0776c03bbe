"""SQLite's writers take turns: every transaction on a database file, in any process, first takes
an exclusive lock on a file beside it (`<database>.write-turn`), then BEGIN IMMEDIATE.

SQLite lets one writer in at a time and makes the others wait in its busy handler, which sleeps
1, 2, 5, … up to 100 ms between tries. Under steady writes from several processes (a send, its
child processes, `serve` answering unsubscribes and sign-ups) the sleepers keep losing to
whoever arrives while they sleep, and a send waited for seconds per batch. Here a waiter asks
again every fraction of a millisecond (the kernel's flock, tried without blocking so a wait can
end in "database is locked" like SQLite's own, never in a hang), so the lock passes on within
about a millisecond of its release. Each DBAPI connection has its own open file, so threads of
one process take turns too.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

FIRST_WAIT = 0.0002  # seconds between tries, doubling up to LONGEST_WAIT
LONGEST_WAIT = 0.002
_INFO_KEY = "newsletter_write_turn"


def _take(handle: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    wait = FIRST_WAIT
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise OperationalError(
                    "BEGIN IMMEDIATE", None, Exception("database is locked")
                ) from None
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)


def _give_back(info: dict[Any, Any]) -> None:
    handle = info.get(_INFO_KEY)
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)


def take_turns(engine: Engine, database: str, timeout: float) -> None:
    """Make every transaction of this SQLite engine wait for its turn (see the module)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).with_name(Path(database).name + ".write-turn")

    @event.listens_for(engine, "connect")
    def _open(_dbapi: Any, record: Any) -> None:
        record.info[_INFO_KEY] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @event.listens_for(engine, "close")
    def _close(_dbapi: Any, record: Any) -> None:
        handle = record.info.pop(_INFO_KEY, None)
        if handle is not None:
            os.close(handle)  # closing the file gives the lock back too

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        _take(conn.connection.info[_INFO_KEY], timeout)

    def _end(conn: Any) -> None:
        try:
            info = conn.connection.info
        except Exception:  # an invalidated connection: checkin gives the turn back
            return
        _give_back(info)

    event.listen(engine, "commit", _end)
    event.listen(engine, "rollback", _end)

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi: Any, record: Any) -> None:
        _give_back(record.info)  # whatever happened, a pooled connection holds no turn
