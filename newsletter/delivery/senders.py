"""How senders coexist on each database: one small class per database, chosen once.

SQLite: one sending command at a time, guarded by an OS file lock (released by the kernel when
the process dies), so a sender may take back every claim it finds; its threads and its child
processes take turns to write. PostgreSQL: any number of senders on any machines; each holds a
session advisory lock named after its owner id for its lifetime, so a
`pg_try_advisory_xact_lock` on another owner's key succeeds only if that owner is gone; claims
use `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, Protocol

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.i18n import _
from newsletter.storage import ledger
from newsletter.storage.db import SQLITE_BUSY_TIMEOUT_MS, transaction
from newsletter.storage.models import Delivery, DeliveryStatus


class SenderBusy(RuntimeError):
    """Another process is already sending from this SQLite database."""


Holder = tuple[str, str | None]  # a delivery's (status, lease owner)


class StatusReader(Protocol):
    """Reads one delivery's state on a connection of its own, outside any transaction; a
    dropped connection is opened anew once before the error is raised."""

    def holder(self, delivery_id: int) -> Holder | None:
        """(status, lease owner), or None when the row is gone (the reader was erased)."""

    def close(self) -> None: ...


class Liveness(Protocol):
    """Proof that a sender is alive, held for as long as it sends."""

    def check(self) -> None:
        """Raise OperationalError if the proof was lost (the database connection dropped)."""


class Senders(Protocol):
    """What differs between the databases when several senders work on one ledger."""

    skip_locked: bool

    def exclusive(self) -> AbstractContextManager[None]:
        """Held for a whole sending command; raises SenderBusy where only one may run."""

    def alive(self, owner: str) -> AbstractContextManager[Liveness]:
        """Held while `owner` sends, so other senders can tell it is not dead."""

    def recover(self, factory: sessionmaker[Session], owner: str) -> int:
        """Take back deliveries claimed by senders that are gone; returns how many."""

    def write_turns(self) -> AbstractContextManager[object]:
        """Taken around each write by the threads of one process."""

    def status_reader(self) -> StatusReader: ...


class _NoProof:
    def check(self) -> None:
        pass


class _SqliteStatus:
    def __init__(self, database: str) -> None:
        self._lite = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self._lite.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    def holder(self, delivery_id: int) -> Holder | None:
        row = self._lite.execute(
            "SELECT status, lease_owner FROM deliveries WHERE id = ?", (delivery_id,)
        ).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def close(self) -> None:
        self._lite.close()


class SqliteSenders:
    """One sending process per database file, its threads taking turns to write."""

    skip_locked = False

    def __init__(self, engine: Engine) -> None:
        self.database = engine.url.database or ""
        self._turns = threading.Lock()

    def _lock_path(self) -> Path | None:
        if not self.database or self.database == ":memory:":
            return None
        return Path(self.database).with_name(Path(self.database).name + ".sender-lock")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        path = self._lock_path()
        if path is None:
            yield
            return
        handle: IO[str] = path.open("a+")
        try:
            _lock_or_say_who(handle)
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
            handle.flush()
            yield
        finally:
            handle.close()

    @contextmanager
    def alive(self, owner: str) -> Iterator[Liveness]:
        yield _NoProof()  # the file lock already says so

    def recover(self, factory: sessionmaker[Session], owner: str) -> int:
        # Under the sender file lock no other SQLite sender can be alive.
        with transaction(factory) as session:
            return ledger.recover_abandoned(session)

    def write_turns(self) -> AbstractContextManager[object]:
        # The threads of a process wait here without spinning; between processes (the send's
        # children, serve) every transaction takes its turn by a file lock
        # (storage/sqlite_turns.py).
        return self._turns

    def status_reader(self) -> StatusReader:
        return _SqliteStatus(self.database)


def _lock_or_say_who(handle: IO[str]) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or _("another process")
        raise SenderBusy(
            _(
                "another sender ({holder}) is already sending from this SQLite database; on "
                "SQLite one sending process at a time. Wait for it to finish, or move to "
                "PostgreSQL to run several workers."
            ).format(holder=holder)
        ) from None


def lock_key(owner: str) -> int:
    """The advisory lock key of a sender's owner id."""
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:8], "big", signed=True)


class _AdvisoryProof:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def check(self) -> None:
        self.connection.execute(text("SELECT 1"))
        self.connection.rollback()  # never sit idle in a transaction


class _PostgresStatus:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pg = self._connect()

    def _connect(self) -> Connection:
        return self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _read(self, delivery_id: int) -> Any:
        return self._pg.exec_driver_sql(
            "SELECT status, lease_owner FROM deliveries WHERE id = %(id)s", {"id": delivery_id}
        ).first()

    def holder(self, delivery_id: int) -> Holder | None:
        try:
            row = self._read(delivery_id)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The connection dropped (a restart, a failover): one new one, then give up.
            self._pg.close()
            self._pg = self._connect()
            row = self._read(delivery_id)
        return None if row is None else (str(row[0]), row[1])

    def close(self) -> None:
        self._pg.close()


class PostgresSenders:
    """Any number of senders; each proves it is alive with a session advisory lock."""

    skip_locked = True

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def exclusive(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    @contextmanager
    def alive(self, owner: str) -> Iterator[Liveness]:
        connection = self.engine.connect()
        try:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key(owner)})
            connection.commit()
            yield _AdvisoryProof(connection)
        finally:
            try:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(owner)}
                )
                connection.commit()
            except SQLAlchemyError:
                pass  # the connection is gone (or broken), and the lock with it
            connection.close()

    def recover(self, factory: sessionmaker[Session], owner: str) -> int:
        with transaction(factory) as session:
            owners = session.scalars(
                select(Delivery.lease_owner)
                .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_owner != owner)
                .distinct()
            ).all()
            live = [owner]
            for other in owners:
                if other is None:
                    continue
                # The try-lock succeeds only if the owner's session (and so the owner) is gone.
                gone = session.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock_key(other)}
                )
                if not gone:
                    live.append(other)
            return ledger.recover_abandoned(session, live_owners=live)

    def write_turns(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()

    def status_reader(self) -> StatusReader:
        return _PostgresStatus(self.engine)


def senders_for(engine: Engine) -> Senders:
    """The mechanics of the engine's database."""
    if engine.dialect.name == "sqlite":
        return SqliteSenders(engine)
    return PostgresSenders(engine)
