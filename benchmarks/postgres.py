"""PostgreSQL: `newsletter send` and one `newsletter worker` sharing one edition.

A fresh database (`bench_<random>`) on the server of --database-url, filled like the SQLite
runs; `send` and the worker start together (both with the clock at the same Sunday), the worker
is stopped (SIGTERM) once `send` has exited and nothing is left unfinished, and the database is
dropped. The rate is the deliveries handled over the wall time from the first to the last
hand-over, as the benchmark sees them finish (polling the ledger every 0.2 s); the peak memory
of every process of both commands is sampled from /proc.
"""

from __future__ import annotations

import argparse
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.common import (
    NEWSLETTER,
    SUNDAY,
    environment,
    kill_if_running,
    load,
    parse_sent,
    plain_postgres,
    populate,
    queue_issue,
)
from benchmarks.floor import floors, sample_message
from benchmarks.procs import TreeWatch

FINISHED = "SELECT count(*) FROM deliveries WHERE status IN ('sent', 'failed', 'skipped')"
UNFINISHED = "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending', 'retry')"


def unreachable(server_url: str) -> str | None:
    """Why the PostgreSQL server cannot be used, or None when it can."""
    try:
        with psycopg.connect(plain_postgres(server_url), connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database on the server of `server_url`, dropped afterwards; yields its URL."""
    name = f"bench_{secrets.token_hex(4)}"
    base = plain_postgres(server_url).split("?")[0].rsplit("/", 1)[0]
    with psycopg.connect(plain_postgres(server_url), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(plain_postgres(server_url), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


def _count(connection: psycopg.Connection[Any], query: str) -> int:
    row = connection.execute(query).fetchone()
    return int(row[0]) if row else 0


def follow(
    url: str, total: int, send: subprocess.Popen[str], worker: subprocess.Popen[str]
) -> tuple[float, float]:
    """Poll the ledger until `send` has exited and nothing is unfinished; stop the worker then.
    Returns the wall times (perf_counter) of the first and the last finished delivery seen."""
    first = last = 0.0
    seen = 0
    with psycopg.connect(url, autocommit=True) as connection:
        while True:
            time.sleep(0.2)
            finished = _count(connection, FINISHED)
            now = time.perf_counter()
            if finished and not first:
                first = now
            if finished > seen:
                seen, last = finished, now
            if send.poll() is not None and (
                finished >= total or _count(connection, UNFINISHED) == 0
            ):
                break
            if worker.poll() is not None:
                raise SystemExit(f"the worker stopped early:\n{worker.communicate()}")
    worker.send_signal(signal.SIGTERM)
    return first, last


def run_pair(url: str, env: dict[str, str], total: int) -> dict[str, Any]:
    """`send` and one `worker` side by side on one edition."""

    def start(*words: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [NEWSLETTER, *words, "--now", SUNDAY],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    with TreeWatch() as watch, ExitStack() as children:
        started = time.perf_counter()
        send, worker = start("send"), start("worker")
        children.callback(kill_if_running, send)
        children.callback(kill_if_running, worker)
        watch.watch(send, "send")
        watch.watch(worker, "worker")
        first, last = follow(plain_postgres(url), total, send, worker)
        send_out, send_err = send.communicate()
        send_wall = time.perf_counter() - started
        worker_out, worker_err = worker.communicate(timeout=60)
    if send.returncode != 0 or worker.returncode != 0:
        raise SystemExit(f"send or worker failed:\n{send_out}{send_err}\n{worker_out}{worker_err}")
    rate, own_peak = parse_sent(send_out)
    watch.merge_own(send.pid, own_peak)
    return {
        "combined_msgs_per_s": round(total / (last - first)) if last > first else None,
        "first_to_last_s": round(last - first, 2),
        "send_wall_s": round(send_wall, 2),
        "send_engine_msgs_per_s": rate,
        "handled_by_send": _handled(
            send_out, r"Sent (\d+), failed (\d+), to retry (\d+), skipped (\d+)"
        ),
        "handled_by_worker": _handled(
            worker_out, r"sent (\d+), failed (\d+), to retry (\d+), skipped (\d+)"
        ),
        "send_stdout_tail": send_out.strip().splitlines()[-3:],
        "worker_stdout_tail": worker_out.strip().splitlines()[-3:],
        **watch.report(),
    }


def _handled(stdout: str, pattern: str) -> int | None:
    found = re.search(pattern, stdout)
    return sum(int(n) for n in found.groups()) if found else None


def measure_postgres(args: argparse.Namespace, port: int) -> dict[str, Any]:
    """The PostgreSQL part of a run: the pair, then the floors against the same sink."""
    with fresh_database(args.database_url) as url:
        env = environment(url, port, args.connections)
        t0 = time.perf_counter()
        populate(url, args.subscribers)
        queue_issue(env)
        populate_s = round(time.perf_counter() - t0, 2)
        load_before = load()
        pair = run_pair(url, env, args.subscribers)
        sample = sample_message(env)
    result: dict[str, Any] = {
        "postgres": {"populate_s": populate_s, "load_1min_before": load_before, **pair},
        "message_bytes": len(sample),
    }
    if not args.no_floor:
        count = min(args.subscribers, args.floor_messages)
        figures = floors(port, sample, count, args.connections, args.floor_processes)
        result.update(
            process_floor_msgs_per_s=figures["process_floor_msgs_per_s"],
            thread_floor_msgs_per_s=figures["thread_floor_msgs_per_s"],
            ratio_uses="the process floor",
            floor_rounds=[{"load_1min_before": load(), **figures}],
        )
        combined = pair["combined_msgs_per_s"] or 0
        result["postgres"]["ratio_to_process_floor"] = round(
            combined / figures["process_floor_msgs_per_s"], 3
        )
    return result
