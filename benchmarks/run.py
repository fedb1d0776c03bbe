"""`make bench`: the delivery engine against the SMTP protocol's own limit, on this machine.

    .venv/bin/python -m benchmarks.run [--subscribers 100000] [--connections 2] [--sink postfix]
    .venv/bin/python -m benchmarks.run --database-url postgresql://postgres@127.0.0.1:5432/postgres

Starts Postfix's smtp-sink on loopback, sends one edition to N subscribers with `newsletter send`
in a child process, unsigned, signed with DKIM RSA-2048 and signed with Ed25519 (each on a fresh
SQLite database), watching the peak memory of `send` and every process it starts. Then the
floors: plain smtplib in 1, 2, … independent processes (the best is the process floor, which the
ratios use) and in threads of one process (the thread floor, for comparison); and the
per-message cost of building and signing. With --database-url it runs `send` and one `worker`
side by side on a fresh PostgreSQL database instead (benchmarks/postgres.py). Prints every
figure with the command that reproduces it and writes them to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    ROOT,
    Sink,
    command_line,
    environment,
    load,
    machine,
    passed_through,
    populate,
    queue_issue,
)
from benchmarks.costs import VARIANTS, render_costs, signing_costs, write_keys
from benchmarks.floor import floors, sample_message
from benchmarks.report import print_figures
from benchmarks.sending import run_send


def run_variant(args: argparse.Namespace, port: int, extra: dict[str, str]) -> dict[str, Any]:
    """One whole `newsletter send` of a fresh edition to N subscribers, with these settings."""
    with tempfile.TemporaryDirectory(prefix="nl-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        env = {**environment(url, port, args.connections), **extra}
        t0 = time.perf_counter()
        populate(url, args.subscribers)
        queue_issue(env)
        populate_s = time.perf_counter() - t0
        load_before = load()
        figures = run_send(env)
        data = sample_message(env) if not extra else b""
    return {
        "populate_s": round(populate_s, 2),
        **figures,
        "end_to_end_msgs_per_s": round(args.subscribers / figures["send_wall_s"]),
        "load_1min_before": load_before,
        "sample": data,
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key] or 0) for r in runs))


def measure_rounds(
    args: argparse.Namespace, port: int, keys: dict[str, dict[str, str]], wanted: list[str]
) -> tuple[dict[str, Any], bytes]:
    """Every variant, round after round (interleaved, so a change in the machine's load falls
    on all of them alike), and the floors after each round; the medians, and every figure."""
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in wanted}
    floor_runs: list[dict[str, Any]] = []
    sample = b""
    for _ in range(args.rounds):
        for variant in wanted:
            figures = run_variant(args, port, keys[variant])
            sample = figures.pop("sample") or sample
            runs[variant].append(figures)
        if not args.no_floor:
            count = min(args.subscribers, args.floor_messages)
            floor_runs.append(
                {
                    "load_1min_before": load(),
                    **floors(port, sample, count, args.connections, args.floor_processes),
                }
            )
    result: dict[str, Any] = {}
    unsigned = median_of(runs["none"], "engine_msgs_per_s")
    process_floor = median_of(floor_runs, "process_floor_msgs_per_s") if floor_runs else 0.0
    for variant, measured in runs.items():
        rate = median_of(measured, "engine_msgs_per_s")
        summary: dict[str, Any] = {
            "engine_msgs_per_s": rate,
            "end_to_end_msgs_per_s": median_of(measured, "end_to_end_msgs_per_s"),
            "send_wall_s": median_of(measured, "send_wall_s"),
            "peak_rss_max_mib": median_of(measured, "peak_rss_max_mib"),
            "peak_rss_sum_mib": median_of(measured, "peak_rss_sum_mib"),
            "ratio_to_unsigned": round(rate / unsigned, 3) if unsigned else None,
            "rounds": measured,
        }
        if process_floor:
            summary["ratio_to_process_floor"] = round(rate / process_floor, 3)
        result[f"dkim_{variant}"] = summary
    if floor_runs:
        result["process_floor_msgs_per_s"] = round(process_floor)
        result["thread_floor_msgs_per_s"] = round(median_of(floor_runs, "thread_floor_msgs_per_s"))
        result["ratio_uses"] = "the process floor"
        result["floor_rounds"] = floor_runs
    return result, sample


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--sink", choices=["postfix", "aiosmtpd"], default="postfix")
    parser.add_argument("--no-floor", action="store_true", help="skip the smtplib floors")
    parser.add_argument("--floor-messages", type=int, default=50_000, help="per floor rung")
    parser.add_argument(
        "--floor-processes", type=int, help="the process floor's top rung (max(4, 2 × cores))"
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="DKIM variants: none,rsa,ed25519"
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (any database on it): send + one worker on a fresh database",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.database_url:
        from benchmarks.postgres import unreachable

        why = unreachable(args.database_url)
        if why:
            print(f"PostgreSQL part skipped: {why}\n  start PostgreSQL, then: {command_line()}")
            return
    wanted = ["none", *[v for v in args.variants.split(",") if v and v != "none"]]
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "sink": "postfix smtp-sink" if args.sink == "postfix" else "aiosmtpd sink (Python)",
        "subscribers": args.subscribers,
        "connections": args.connections,
        "passed_through": passed_through(),
        "load_1min_at_start": load(),
    }
    with tempfile.TemporaryDirectory(prefix="nl-keys-") as keys_dir, Sink(args.sink) as sink:
        if args.database_url:
            from benchmarks.postgres import measure_postgres

            result.update(measure_postgres(args, sink.port))
            name = f"bench-postgres-{args.subscribers}-{args.connections}c.json"
        else:
            keys = write_keys(Path(keys_dir))
            measured, sample = measure_rounds(args, sink.port, keys, wanted)
            result.update(measured)
            result["message_bytes"] = len(sample)
            url = f"sqlite:///{Path(keys_dir) / 'costs.db'}"
            env = environment(url, sink.port, args.connections)
            os.environ.update({k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})
            result.update({k: round(v, 3) for k, v in render_costs().items()})
            result.update({k: round(v, 1) for k, v in signing_costs(keys).items()})
            name = f"bench-{args.subscribers}-{args.connections}c-{args.sink}.json"
        result["load_1min_after"] = load()
        result["machine"] = machine()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / name
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_figures(result)
    print(f"every figure: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
