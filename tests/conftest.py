"""Shared fixtures: a real database (SQLite file, PostgreSQL when configured), a real SMTP server,
the web app over real HTTP, and the CLI."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cli import main
from newsletter.settings import Settings, load_settings
from newsletter.storage.db import make_engine, session_factory, upgrade

PG_URL = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
SECRET = "test-secret-key-0123456789abcdef"
FROM = "Zachte Zondag <nieuws@nieuws.example.nl>"
ISSUES = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NEWSLETTER_* from the developer's shell, and no stray .env: each test sets its own."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_") and name != "NEWSLETTER_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _pg_schema_url(base: str, schema: str) -> str:
    url = make_url(base)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'newsletter.db'}"
        return
    if not PG_URL:
        pytest.skip("set NEWSLETTER_TEST_DATABASE_URL to run on PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_pg_schema_url(PG_URL, "public"))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _pg_schema_url(PG_URL, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """The NEWSLETTER_* variables of a test installation (outbox, no SMTP)."""
    return {
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_FROM": FROM,
        "NEWSLETTER_BASE_URL": "https://nieuws.example.nl",
        "NEWSLETTER_LIST_ID": "weekly.nieuws.example.nl",
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_ISSUES_DIR": str(tmp_path / "issues"),
    }


def settings_from(env: dict[str, str]) -> Settings:
    names = {
        "NEWSLETTER_" + name.upper(): name for name in Settings.model_fields if name != "from_"
    }
    names["NEWSLETTER_FROM"] = "from_"
    return load_settings(**{names[k]: v for k, v in env.items()}, _env_file=None)


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return settings_from(env)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@dataclass
class Cli:
    """Runs `newsletter …` in-process with the test's environment."""

    env: dict[str, str]

    def __call__(self, *args: str, code: int | None = 0, **env: str) -> Result:
        runner = CliRunner()
        result = runner.invoke(main, list(args), env={**self.env, **env}, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, (
                f"exit {result.exit_code}, expected {code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result


@pytest.fixture
def cli(env: dict[str, str], engine: Engine) -> Cli:
    """The CLI on a migrated database."""
    return Cli(env)


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that keeps every message it accepts."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 OK queued"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    handler: Any
    controller: Controller

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    @property
    def received(self) -> list[Received]:
        return list(self.handler.received)


def start_smtp(handler: Any, port: int | None = None) -> Controller:
    controller = Controller(
        handler, hostname="127.0.0.1", port=port or free_port(), decode_data=False
    )
    controller.start()
    return controller


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on loopback that records what it receives."""
    handler = RecordingHandler()
    controller = start_smtp(handler)
    try:
        yield SmtpServer(handler, controller)
    finally:
        controller.stop()


# --- HTTP ---------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve_app(app: Any, port: int | None = None) -> LiveServer:
    """Serve the app with uvicorn in a thread; `port` chosen beforehand lets the app know its URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture
def live_app(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    """The web app served by uvicorn on a real port."""
    from newsletter.web.app import create_app

    live = serve_app(create_app(settings, engine))
    try:
        yield live
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)


# --- Sign-up and the subscriber's life (issue 4) -------------------------------------------


@dataclass
class Site:
    """The web app serving its own base URL, mailing through the test SMTP server."""

    url: str
    env: dict[str, str]
    settings: Settings
    smtp: SmtpServer
    live: LiveServer

    @property
    def cli(self) -> Cli:
        return Cli(self.env)

    def wait_for_mail(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` messages the SMTP server received, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while len(self.smtp.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} mails, got {len(self.smtp.received)}")
            time.sleep(0.02)
        return self.smtp.received[:count]


def start_site(env: dict[str, str], engine: Engine, smtp: SmtpServer, **overrides: str) -> Site:
    from newsletter.web.app import create_app

    port = free_port()
    site_env = {
        **env,
        "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_SMTP_URL": smtp.url,
        **overrides,
    }
    settings = settings_from(site_env)
    live = serve_app(create_app(settings, engine), port)
    return Site(live.url, site_env, settings, smtp, live)


@pytest.fixture
def site(env: dict[str, str], engine: Engine, smtp_server: SmtpServer) -> Iterator[Site]:
    """The sign-up site on a real port, its mail going to the test SMTP server."""
    running = start_site(env, engine, smtp_server)
    try:
        yield running
    finally:
        running.live.server.should_exit = True
        running.live.thread.join(timeout=10)
