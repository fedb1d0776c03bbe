"""Engine, sessions and the migration check shared by every entry point."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.i18n import _
from newsletter.resources import resource_dir
from newsletter.storage.sqlite_turns import take_turns

if TYPE_CHECKING:  # Alembic is imported where it is used: a sending child never needs it
    from alembic.config import Config

SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long a unit of work is retried while the database is away (a restart, a failover).
DATABASE_PATIENCE_SECONDS = 60.0
T = TypeVar("T")
log = logging.getLogger(__name__)


class DatabaseUnavailable(RuntimeError):
    """The database stayed away (or refused) for longer than we wait; one line, no SQL."""


def describe_error(exc: BaseException) -> str:
    """One line about a database error: the driver's first line, never SQL or its parameters."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    first = lines[0] if lines else type(original).__name__
    return first.split("[SQL:")[0].strip()[:300] or type(original).__name__


def is_connection_fault(exc: BaseException) -> bool:
    """A dropped or refused connection (worth another try), not a mistake in the statement."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError)


def retrying(
    work: Callable[[], T],
    *,
    patience: float = DATABASE_PATIENCE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run a unit of work (one transaction); on a connection fault run it again, with growing
    waits, for up to `patience` seconds; then raise DatabaseUnavailable."""
    deadline = time.monotonic() + patience
    wait = 0.25
    while True:
        try:
            return work()
        except DBAPIError as exc:
            if not is_connection_fault(exc):
                raise
            if time.monotonic() + wait > deadline:
                raise DatabaseUnavailable(
                    _("the database is unreachable: {reason}").format(reason=describe_error(exc))
                ) from None
            log.warning("database connection lost (%s); trying again", describe_error(exc))
            sleep(wait)
            wait = min(wait * 2, 8.0)


class PendingMigrationsError(RuntimeError):
    """The database schema is older than this code."""

    def __init__(self, current: set[str], heads: set[str]) -> None:
        state = ", ".join(sorted(current)) or _("empty")
        super().__init__(
            _(
                "the database needs migrating (it is at {state}, the code expects {heads}). "
                "Run:\n  newsletter db upgrade"
            ).format(state=state, heads=", ".join(sorted(heads)))
        )


def _normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we install; plain postgresql:// would ask for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine; SQLite gets WAL mode, a busy timeout and foreign keys on every connection.

    Its errors never show the SQL parameters (addresses, names, tokens, whole editions): an error
    message may end up in a log.
    """
    url = _normalise_url(url)
    kwargs.setdefault("hide_parameters", True)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        # Before BEGIN IMMEDIATE below: the listeners of an event run in the order they came.
        take_turns(engine, engine.url.database or "", SQLITE_BUSY_TIMEOUT_MS / 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions, so BEGIN IMMEDIATE works.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock up front: no deadlock between two upgrading readers.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def lock_for_transaction(session: Session, name: str) -> None:
    """Let one transaction at a time go past this point for `name`, until it ends.

    PostgreSQL: an advisory transaction lock on a 64-bit hash of the name. SQLite: nothing to
    do, as every write transaction holds the database's write lock from its start
    (BEGIN IMMEDIATE).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.attributes["engine"] = engine
    return config


def _heads_and_current(engine: Engine) -> tuple[set[str], set[str]]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return set(script.get_heads()), current


def check_migrations(engine: Engine) -> None:
    """Raise PendingMigrationsError unless the schema is at the newest revision."""
    heads, current = _heads_and_current(engine)
    if current != heads:
        raise PendingMigrationsError(current, heads)


def upgrade(engine: Engine, revision: str = "heads") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


def current_revisions(engine: Engine) -> tuple[set[str], set[str]]:
    """(heads the code knows, revisions the database is at)."""
    return _heads_and_current(engine)
