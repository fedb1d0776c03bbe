"""The web under a send: `newsletter serve` answering unsubscribes and sign-ups during a send.

    .venv/bin/python -m benchmarks.web_load [--subscribers 100000] [--unsubscribes 50]
                                            [--signups 10]

Two sends of a fresh edition to N readers, each on a fresh SQLite database (a fresh PostgreSQL
database on the server of --database-url, when given) with `newsletter serve` beside it: the
first without web load, the second while benchmarks/load_gen.py posts one-click unsubscribes
(RFC 8058) of readers late in the ledger and fills in the sign-up form, at fixed rates, for as
long as `send` runs. The sign-up limit per client is raised for the
bench (NEWSLETTER_SIGNUP_CLIENT_HOURLY_LIMIT=1000000): every request comes from 127.0.0.1.
The receiving end is benchmarks/rcpt_sink.py (a recording Python sink, not smtp-sink: it keeps
each recipient with the time its message was handed over), so both sends are measured against
the same sink. Reports requests/s, p50/p99 latency and errors of each kind of request, the send
rate at the sink with and without the load, peak memory of `send` and `serve`, and the check:
no reader whose unsubscribe was answered at time T has a message handed over after T.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import tempfile
from collections import Counter
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import (
    NEWSLETTER,
    PYTHON,
    RESULTS,
    ROOT,
    command_line,
    environment,
    free_port,
    kill_if_running,
    load,
    machine,
    passed_through,
    plain_postgres,
    populate,
    queue_issue,
    wait_for_port,
)
from benchmarks.postgres import fresh_database
from benchmarks.procs import TreeWatch
from benchmarks.report import print_figures
from benchmarks.sending import run_send


def start(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A child whose output goes to `log` (read when it fails, and for `serve`'s errors)."""
    with log.open("wb") as file:
        return subprocess.Popen(command, env=env, stdout=file, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    if process.returncode not in (0, -signal.SIGTERM):
        raise SystemExit(f"{what} failed ({process.returncode}):\n{log.read_text()[-2000:]}")


def logged_errors(log: Path) -> dict[str, Any]:
    """The lines `serve` logged at ERROR or WARNING level: how many, and the last few."""
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if "ERROR" in line or "WARNING" in line
    ]
    return {"count": len(lines), "last": lines[-5:]}


def _late_readers(url: str) -> list[tuple[str, str]]:
    """(email, token_id) of the readers in the last 40 % of the ledger."""
    query = (
        "SELECT email, token_id FROM subscribers WHERE id > (SELECT max(id) FROM subscribers) * 0.6"
    )
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            return [(str(e), str(t)) for e, t in connection.execute(query)]
    import psycopg

    with psycopg.connect(plain_postgres(url)) as connection:
        return [(str(e), str(t)) for e, t in connection.execute(query)]


def unsubscribe_targets(env: dict[str, str], count: int) -> list[list[str]]:
    """Readers from the last 40 % of the ledger, shuffled, with their List-Unsubscribe path."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})
    from newsletter import links
    from newsletter.settings import load_settings

    settings = load_settings()
    keys = settings.secret_keys()
    rows = _late_readers(env["NEWSLETTER_DATABASE_URL"])
    random.shuffle(rows)
    base = settings.base_url
    return [
        [email, links.unsubscribe_url(base, keys, token).removeprefix(base)]
        for email, token in rows[:count]
    ]


def latencies(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    times = sorted(r["latency_ms"] for r in records)

    def pick(share: float) -> float:
        return round(times[min(len(times) - 1, int(share * len(times)))], 1) if times else 0.0

    return {
        "requests": len(records),
        "requests_per_s": round(len(records) / seconds, 1) if seconds else 0.0,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "max_ms": round(times[-1], 1) if times else 0.0,
        "errors": sum(1 for r in records if not 200 <= r["status"] < 300),
        "error_kinds": dict(
            Counter(
                str(r.get("error") or r["status"]) for r in records if not 200 <= r["status"] < 300
            )
        ),
    }


def read_sink(path: Path) -> dict[str, list[float]]:
    received: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        when, recipient = line.split("\t")
        received.setdefault(recipient, []).append(float(when))
    return received


def check(unsubscribes: list[dict[str, Any]], received: dict[str, list[float]]) -> dict[str, Any]:
    """For each unsubscribe answered (2xx) at T: no message to that reader handed over after T."""
    answered = [r for r in unsubscribes if 200 <= r["status"] < 300]
    after = [
        r["email"] for r in answered if any(t > r["answered"] for t in received.get(r["email"], []))
    ]
    honoured = [r for r in answered if not received.get(r["email"])]
    letters = [t for reader, ts in received.items() if reader.startswith("lezer") for t in ts]
    first_letter = min(letters, default=0.0)
    return {
        "answered": len(answered),
        "after_answer": len(after),
        "after_answer_readers": after[:20],
        "answered_before_message": len(honoured),
        # Of those, answered after the first letter went out: the engine had to skip them.
        "answered_during_delivery_before_message": sum(
            1 for r in honoured if r["answered"] > first_letter
        ),
        "answered_after_message": len(answered) - len(honoured) - len(after),
    }


def sink_rate(received: dict[str, list[float]]) -> tuple[float, int]:
    times = sorted(t for r, ts in received.items() if r.startswith("lezer") for t in ts)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return round(rate), len(times)


def start_load(work: Path, env: dict[str, str], args: argparse.Namespace, port: int) -> list[str]:
    """The load generator's command, its plan written: which readers leave, and the rates."""
    plan = {
        "port": port,
        "unsubscribes_per_s": args.unsubscribes,
        "signups_per_s": args.signups,
        "unsubscribe": unsubscribe_targets(env, args.subscribers),
    }
    (work / "plan.json").write_text(json.dumps(plan))
    files = [str(work / "plan.json"), str(work / "load.json")]
    return [PYTHON, "-m", "benchmarks.load_gen", *files]


def one_send(args: argparse.Namespace, loaded: bool) -> dict[str, Any]:
    """A fresh database, the sink, `serve`, and one send; with the load generator if `loaded`."""
    with tempfile.TemporaryDirectory(prefix="nl-web-") as tmp, ExitStack() as children:
        work = Path(tmp)
        url = f"sqlite:///{work / 'bench.db'}"
        if args.database_url:  # a fresh PostgreSQL database, dropped after the children stop
            url = children.enter_context(fresh_database(args.database_url))
        smtp_port, web_port = free_port(), free_port()
        env = {
            **environment(url, smtp_port, args.connections),
            "NEWSLETTER_SIGNUP_CLIENT_HOURLY_LIMIT": "1000000",
        }
        populate(url, args.subscribers)
        queue_issue(env)
        logs = {name: work / f"{name}.log" for name in ("sink", "serve", "load")}
        sink_command = [
            PYTHON,
            "-m",
            "benchmarks.rcpt_sink",
            str(smtp_port),
            str(work / "sink.txt"),
        ]
        sink = start(sink_command, logs["sink"])
        children.callback(kill_if_running, sink)
        wait_for_port(smtp_port, "the recording sink")
        serve = start([NEWSLETTER, "serve", "--port", str(web_port)], logs["serve"], env)
        children.callback(kill_if_running, serve)
        wait_for_port(web_port, "newsletter serve")
        generator = start(start_load(work, env, args, web_port), logs["load"]) if loaded else None
        if generator is not None:
            children.callback(kill_if_running, generator)
        load_before = load()
        with TreeWatch() as watch:
            watch.watch(serve, "serve")
            watch.watch(sink, "recording sink", counted=False)
            if generator is not None:
                watch.watch(generator, "load generator", counted=False)
            figures = run_send(env, watch)
            if generator is not None:
                stop(generator, "the load generator", logs["load"])
            stop(serve, "newsletter serve", logs["serve"])
        stop(sink, "the recording sink", logs["sink"])
        received = read_sink(work / "sink.txt")
        rate, messages = sink_rate(received)
        result: dict[str, Any] = {
            "load_1min_before": load_before,
            **figures,
            "sink_msgs_per_s": rate,
            "sink_messages": messages,
            "serve_logged": logged_errors(logs["serve"]),
            **watch.report(),
        }
        if generator is not None:
            result["load_file"] = json.loads((work / "load.json").read_text())
            result["received"] = received
    return result


def summarise(
    args: argparse.Namespace, unloaded: dict[str, Any], loaded: dict[str, Any]
) -> dict[str, Any]:
    run = loaded.pop("load_file")
    received = loaded.pop("received")
    seconds = run["stopped"] - run["started"]
    requests = run["requests"]
    loaded["load"] = {
        kind: latencies([r for r in requests if r["kind"] == kind], seconds)
        for kind in ("unsubscribe", "signup_form", "signup")
    }
    loaded["load"]["seconds"] = round(seconds, 2)
    loaded["confirmation_mails_at_sink"] = sum(
        len(t) for r, t in received.items() if r.startswith("nieuw")
    )
    unsubscribes = [r for r in requests if r["kind"] == "unsubscribe"]
    return {
        "unloaded": unloaded,
        "loaded": loaded,
        "loaded_to_unloaded": round(loaded["sink_msgs_per_s"] / unloaded["sink_msgs_per_s"], 3),
        "unsubscribe_check": check(unsubscribes, received),
        "rates_asked": {"unsubscribes_per_s": args.unsubscribes, "signups_per_s": args.signups},
        "signup_client_hourly_limit": "raised to 1000000 for the bench (one client address)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--unsubscribes", type=float, default=50.0, help="per second")
    parser.add_argument("--signups", type=float, default=10.0, help="sign-ups per second")
    parser.add_argument("--database-url", help="a PostgreSQL server: fresh databases on it")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "sink": "benchmarks/rcpt_sink.py (recording Python sink)",
        "database": "PostgreSQL" if args.database_url else "SQLite",
        "subscribers": args.subscribers,
        "connections": args.connections,
        "passed_through": passed_through(),
        "load_1min_at_start": load(),
    }
    unloaded = one_send(args, loaded=False)
    loaded = one_send(args, loaded=True)
    result.update(summarise(args, unloaded, loaded))
    result["load_1min_after"] = load()
    result["machine"] = machine()
    RESULTS.mkdir(exist_ok=True)
    rates = (args.unsubscribes, args.signups) != (50.0, 10.0)
    tag = f"-{args.unsubscribes:g}u-{args.signups:g}s" if rates else ""
    tag += "-postgres" if args.database_url else ""
    out = RESULTS / f"web-load-{args.subscribers}{tag}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_figures(result)
    print(f"every figure: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
