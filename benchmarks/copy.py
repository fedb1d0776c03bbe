"""`newsletter db copy`: time and peak memory at two list sizes (memory should not grow).

    .venv/bin/python -m benchmarks.copy [--subscribers 10000 100000] [--to postgresql://…]

For each size: a SQLite installation with that many subscribers, a consent event each, an
issue, an edition and a delivery each (the ledger), made in bulk; then `newsletter db copy`
into a fresh SQLite file (or the given PostgreSQL database, emptied first) in a child process.
Prints the rows copied, the wall time and the child's peak RSS (ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.common import NEWSLETTER, populate

SECRET = "benchmark-secret-key-0123456789"
PEAK = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def add_history(database: Path, count: int) -> None:
    """A consent event per subscriber, one sent edition and a delivery per subscriber."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO consent_events (subscriber_id, event, at, source, detail)"
            " SELECT id, 'imported', ?, 'import', 'benchmark' FROM subscribers",
            (now,),
        )
        connection.execute(
            "INSERT INTO issues (id, slug, source_path, theme, subject, question, body,"
            " content_hash, status, queued_at, updated_at) VALUES (1, 'een', 'issues/een.md',"
            " 'loslaten', 'Een open hand', 'Wat laat je los?', ?, ?, 'sent', ?, ?)",
            ("Tekst.\n" * 40, "0" * 64, now, now),
        )
        connection.execute(
            "INSERT INTO editions (id, scheduled_at, issue_id, theme, subject, html, text,"
            " message_id_seed, status, created_at) VALUES (1, ?, 1, 'loslaten', 'Een open hand',"
            " ?, ?, ?, 'done', ?)",
            (now, "<p>x</p>" * 2000, "x\n" * 2000, "0" * 32, now),
        )
        connection.execute(
            "INSERT INTO deliveries (edition_id, subscriber_id, status, attempts, finished_at)"
            " SELECT 1, id, 'sent', 1, ? FROM subscribers",
            (now,),
        )
    assert count > 0


def empty_postgres(url: str) -> None:
    """Drop everything in the target schema, so `db copy` starts from an empty database."""
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    engine = create_engine(parsed)
    try:
        with engine.begin() as connection:
            schema = connection.scalar(text("SELECT current_schema()"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        engine.dispose()


def one(count: int, target_url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="nl-copy-") as folder:
        work = Path(folder)
        source = work / "bron.db"
        populate(f"sqlite:///{source}", count)
        add_history(source, count)
        target = target_url or f"sqlite:///{work / 'doel.db'}"
        if target_url:
            empty_postgres(target_url)
        env = {
            **os.environ,
            "NEWSLETTER_DATABASE_URL": f"sqlite:///{source}",
            "NEWSLETTER_SECRET_KEY": SECRET,
        }
        start = time.perf_counter()
        # A wrapper process whose only child is the copy: its RUSAGE_CHILDREN peak is the copy's.
        measured = subprocess.run(
            [sys.executable, "-c", PEAK, NEWSLETTER, "db", "copy", "--to", target],
            env=env, cwd=folder, check=True, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        peak_kib = int(measured.stdout.strip().splitlines()[-1])
        rows = 3 * count + 2
        where = "PostgreSQL" if target_url else "SQLite"
        print(f"{count:>9,} subscribers → {where}: {rows:,} rows in {seconds:.1f} s "
              f"({rows / seconds:,.0f} rows/s), peak RSS {peak_kib / 1024:.1f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--to", default=None, help="a PostgreSQL URL whose schema may be emptied")
    args = parser.parse_args()
    for count in args.subscribers:
        one(count, args.to)


if __name__ == "__main__":
    main()
