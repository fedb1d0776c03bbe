"""Shared fixtures: a real database (SQLite file, PostgreSQL when configured), a real SMTP server,
the web app over real HTTP, and the CLI. The helpers behind them live in tests/support."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter import i18n
from newsletter.i18n import LOCALE_VARIABLES
from newsletter.settings import Settings
from newsletter.storage.db import make_engine, session_factory, upgrade
from tests.support.cli import Cli
from tests.support.databases import PG_URL, installation_env, pg_schema, settings_from, sqlite_url
from tests.support.relays import RecordingHandler, SmtpServer, start_smtp
from tests.support.servers import LiveServer, Site, serve_app, start_site


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No NEWSLETTER_* from the developer's shell, and no stray .env: each test sets its own.

    The locale is English, whatever the developer's is; a test that wants Dutch asks for it
    (NEWSLETTER_LANGUAGE=nl), and the language is English again after every test.
    """
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_") and name != "NEWSLETTER_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    for name in LOCALE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.chdir(tmp_path)
    yield
    i18n.use(i18n.DEFAULT)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    if not PG_URL:
        pytest.skip("set NEWSLETTER_TEST_DATABASE_URL to run on PostgreSQL")
    with pg_schema(PG_URL) as url:
        yield url


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The NEWSLETTER_* variables of a test installation (outbox, no SMTP)."""
    return installation_env(database_url, tmp_path)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return settings_from(env)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def cli(env: dict[str, str], engine: Engine) -> Cli:
    """The CLI on a migrated database."""
    return Cli(env)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that records what it receives."""
    handler = RecordingHandler()
    controller = start_smtp(handler)
    try:
        yield SmtpServer(handler, controller)
    finally:
        controller.stop()


@pytest.fixture
def live_app(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    """The web app served by uvicorn on a real port."""
    from newsletter.web.app import create_app

    live = serve_app(create_app(settings, engine))
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def site(env: dict[str, str], engine: Engine, smtp_server: SmtpServer) -> Iterator[Site]:
    """The sign-up site on a real port, its mail going to the test SMTP server."""
    running = start_site(env, engine, smtp_server)
    try:
        yield running
    finally:
        running.live.stop()
