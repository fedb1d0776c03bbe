"""What every benchmark shares: the sink, a filled database, the environment, the machine."""

from __future__ import annotations

import os
import platform
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
NEWSLETTER = str(Path(sys.executable).parent / "newsletter")
PYTHON = sys.executable
SUNDAY = "2026-11-29T07:00:00+01:00"
RESULTS = ROOT / "benchmarks" / "results"
# Passed through to every `newsletter` child when set (the engine for several processes).
PASSED_THROUGH = ("NEWSLETTER_SEND_PROCESSES",)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


class Sink:
    """The receiving end: Postfix's smtp-sink, or (only when asked) an aiosmtpd sink."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.controller: Controller | None = None

    def __enter__(self) -> Sink:
        if self.kind == "postfix":
            binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
            if not Path(binary).exists():
                raise SystemExit(
                    "smtp-sink not found: install Postfix (apt-get install postfix), or run with "
                    "--sink aiosmtpd for a slower Python sink (labelled as such)."
                )
            user = ["-u", "postfix"] if os.geteuid() == 0 else []
            self.process = subprocess.Popen(
                [binary, *user, f"127.0.0.1:{self.port}", "1000"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        else:
            from aiosmtpd.controller import Controller

            class Discard:
                async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                    return "250 OK"

            self.controller = Controller(Discard(), hostname="127.0.0.1", port=self.port)
            self.controller.start()
        wait_for_port(self.port, "the sink")
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.controller is not None:
            self.controller.stop()


def kill_if_running(process: subprocess.Popen[Any]) -> None:
    """After a failure: no child is left running."""
    if process.poll() is None:
        process.kill()
        process.wait()


def _subscriber_rows(count: int, columns: set[str]) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    now = datetime.now(UTC).replace(tzinfo=None)
    values = {
        "status": "subscribed",
        "created_at": now,
        "subscribed_at": now,
        # Proof of consent, where the schema asks for it.
        "requested_at": now,
        "confirmed_at": now,
        "source": "import",
        "consent_basis": "benchmark",
    }
    fixed = {name: value for name, value in values.items() if name in columns}
    names = ["email", "email_key", "name", "token_id", *fixed]
    rows = (
        (
            f"lezer{i:07d}@example.com",
            f"lezer{i:07d}@example.com",
            "Lezer" if i % 2 else None,
            secrets.token_hex(16),
            *fixed.values(),
        )
        for i in range(count)
    )
    return names, rows


def populate(database_url: str, count: int) -> None:
    """Create the schema with `newsletter db upgrade`, then insert subscribers in bulk."""
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": database_url}
    subprocess.run([NEWSLETTER, "db", "upgrade"], env=env, check=True, capture_output=True)
    if database_url.startswith("sqlite:///"):
        # sqlite3's own `with` only commits; closing() closes the connection too.
        path = database_url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as connection, connection:
            columns = {row[1] for row in connection.execute("PRAGMA table_info(subscribers)")}
            names, rows = _subscriber_rows(count, columns)
            connection.executemany(
                f"INSERT INTO subscribers ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                ((*row[:4], *(str(v) for v in row[4:])) for row in rows),
            )
        return
    _populate_postgres(database_url, count)


def _populate_postgres(database_url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(plain_postgres(database_url)) as connection:
        found = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'subscribers'"
        ).fetchall()
        names, rows = _subscriber_rows(count, {row[0] for row in found})
        statement = f"COPY subscribers ({', '.join(names)}) FROM STDIN"
        with connection.cursor().copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


def plain_postgres(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def environment(database_url: str, port: int, connections: int) -> dict[str, str]:
    return {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "NEWSLETTER_SMTP_CONNECTIONS": str(connections),
        "NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789",
        "NEWSLETTER_FROM": "Zachte Zondag <nieuws@nieuws.example.nl>",
        "NEWSLETTER_BASE_URL": "https://nieuws.example.nl",
        "NEWSLETTER_ISSUES_DIR": str(ROOT / "issues"),
    }


def passed_through() -> dict[str, str]:
    """The engine settings this run passes through from the environment (reported)."""
    return {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}


def queue_issue(env: dict[str, str]) -> None:
    issue = sorted((ROOT / "issues").glob("*.md"))[0]
    command = [NEWSLETTER, "issues", "queue", str(issue)]
    subprocess.run(command, env=env, check=True, capture_output=True)


SENT = re.compile(r"Sent (\d+), failed (\d+).*?\((\d+) messages/s(?:, peak memory (\d+) KiB)?")


def parse_sent(stdout: str) -> tuple[float | None, int | None]:
    """The engine's own rate and peak memory (KiB) from `send`'s last line, where it says them."""
    found = SENT.search(stdout)
    if not found:
        return None, None
    return float(found.group(3)), int(found.group(4)) if found.group(4) else None


def load() -> float:
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, str]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found.group(1) if found else model
    mem = Path("/proc/meminfo").read_text().split("\n")[0] if Path("/proc/meminfo").exists() else ""
    return {
        "cpus": str(os.cpu_count()),
        "cpu": model,
        "memory": mem.split(":")[-1].strip(),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def command_line() -> str:
    """How this run was started, for the figures it prints."""
    module = Path(sys.argv[0]).stem
    prefix = "".join(f"{k}={v} " for k, v in passed_through().items())
    return f"{prefix}.venv/bin/python -m benchmarks.{module} {' '.join(sys.argv[1:])}".strip()
