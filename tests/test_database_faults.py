"""Database faults: connections killed in a loop while `send` and two workers run; a database
that is away ends a command in one line; /healthz says 503 when the database cannot be written.
Never a traceback, never SQL parameters."""

from __future__ import annotations

import signal
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.db import make_engine
from tests.support.cli import Cli, spawned
from tests.support.databases import settings_from
from tests.support.issue_files import queue_and_import
from tests.support.relays import RecordingHandler, free_port, start_smtp
from tests.support.servers import serve_app

SUNDAY = "2026-11-29T07:00:00+01:00"
WINDOW = 50


def named(url: str, application: str) -> str:
    """The database URL with an application name, so the test can kill exactly these sessions."""
    return (
        make_url(url)
        .update_query_dict({"application_name": application})
        .render_as_string(hide_password=False)
    )


def test_senders_survive_connections_killed_in_a_loop(
    cli: Cli, env: dict[str, str], tmp_path: Path, factory: sessionmaker[Session]
) -> None:
    if not env["NEWSLETTER_DATABASE_URL"].startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    addresses = [f"lezer{i:04d}@example.com" for i in range(1500)]
    queue_and_import(cli, tmp_path, addresses)
    handler = RecordingHandler()
    controller = start_smtp(handler)
    url = env["NEWSLETTER_DATABASE_URL"]
    smtp = {"NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
    stack = ExitStack()
    processes = [
        stack.enter_context(
            spawned(
                {**env, **smtp, "NEWSLETTER_DATABASE_URL": named(url, f"nl-fault-{name}")}, *args
            )
        )
        for name, args in (
            ("send", ("send", "--now", SUNDAY)),
            ("a", ("worker", "--now", SUNDAY)),
            ("b", ("worker", "--now", SUNDAY)),
        )
    ]
    kills = 0
    try:
        deadline = time.monotonic() + 120
        while len({r.rcpt_tos[0] for r in handler.received}) < len(addresses):
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
            with factory() as session:
                kills += int(
                    session.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name LIKE 'nl-fault-%'"
                        )
                    ).scalar()
                    or 0
                )
        send_out, send_err = processes[0].communicate(timeout=120)
        for worker in processes[1:]:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=60) for worker in processes[1:]]
        cli("send", "--now", SUNDAY, env=smtp)  # finishes whatever is left (normally nothing)
    finally:
        stack.close()  # kills whatever still runs, reaps it and closes its pipes
        controller.stop()
    assert kills >= 3
    for process, (_out, err) in zip(processes, [(send_out, send_err), *outputs], strict=True):
        assert "Traceback" not in err, err
        assert "<html" not in err.lower()
        assert process.returncode == 0, err
    per_rcpt = Counter(r.rcpt_tos[0] for r in handler.received)
    assert set(per_rcpt) == set(addresses)
    duplicates = sum(n - 1 for n in per_rcpt.values())
    assert duplicates <= WINDOW * kills, f"{duplicates} duplicates after {kills} kills"


def test_a_database_that_is_away_ends_a_command_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    away = {
        **env,
        "NEWSLETTER_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/x",
        "NEWSLETTER_DATABASE_PATIENCE_SECONDS": "2",
    }
    for args in (("send", "--now", SUNDAY), ("status",), ("worker",)):
        result = Cli(away)(*args, code=1)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines[-1].startswith("Error: the database is unreachable:"), result.stderr
        assert "Traceback" not in result.stderr
        assert "[SQL" not in result.stderr


def test_healthz_answers_503_when_the_database_cannot_be_written(
    env: dict[str, str], engine: Engine, database_url: str, tmp_path: Path
) -> None:
    from newsletter.web.app import create_app

    if database_url.startswith("sqlite"):
        database = make_url(database_url).database
        read_only = f"sqlite:///file:{database}?mode=ro&uri=true"
    else:
        parsed = make_url(database_url)
        options = f"{parsed.query['options']} -cdefault_transaction_read_only=on"
        read_only = parsed.update_query_dict({"options": options}).render_as_string(
            hide_password=False
        )
    settings = settings_from(env)
    for url, expected in ((database_url, 200), (read_only, 503)):
        app_engine = make_engine(url)
        live = serve_app(create_app(settings, app_engine))
        try:
            response = httpx.get(live.url + "/healthz")
        finally:
            live.server.should_exit = True
            live.thread.join(timeout=10)
            app_engine.dispose()
        assert response.status_code == expected, (url, response.text)
