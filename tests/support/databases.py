"""A test installation's database and settings: a SQLite file, or a PostgreSQL schema of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from newsletter.settings import Settings, load_settings

PG_URL = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
SECRET = "test-secret-key-0123456789abcdef"
FROM = "Zachte Zondag <nieuws@nieuws.example.nl>"


def sqlite_url(folder: Path) -> str:
    """A SQLite database file in the test's own folder."""
    return f"sqlite:///{folder / 'newsletter.db'}"


def pg_schema_url(base: str, schema: str) -> str:
    """The PostgreSQL URL `base`, with psycopg 3 and `schema` as the search path."""
    url = make_url(base)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@contextmanager
def pg_schema(base: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test, dropped afterwards; yields its URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_schema_url(base, "public"))
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield pg_schema_url(base, schema)
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def installation_env(database_url: str, folder: Path) -> dict[str, str]:
    """The NEWSLETTER_* variables of a test installation (outbox, no SMTP).

    One sending process: starting a child costs a second of imports per send, which most tests
    do not need; the sending tests, the crash, lease and database-fault tests run on two
    (`on_two_processes`), as a 2-core machine does by default.
    """
    return {
        "NEWSLETTER_SEND_PROCESSES": "1",
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_FROM": FROM,
        "NEWSLETTER_BASE_URL": "https://nieuws.example.nl",
        "NEWSLETTER_LIST_ID": "weekly.nieuws.example.nl",
        "NEWSLETTER_OUTBOX_DIR": str(folder / "outbox"),
        "NEWSLETTER_ISSUES_DIR": str(folder / "issues"),
    }


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings these NEWSLETTER_* variables give, without reading the process environment."""
    names = {
        "NEWSLETTER_" + name.upper(): name for name in Settings.model_fields if name != "from_"
    }
    names["NEWSLETTER_FROM"] = "from_"
    return load_settings(**{names[k]: v for k, v in env.items()}, _env_file=None)


def on_two_processes(env: dict[str, str]) -> None:
    """Send as the default does on a 2-core machine: two processes (for the fault tests)."""
    env["NEWSLETTER_SEND_PROCESSES"] = "2"
