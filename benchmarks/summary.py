"""The targets of issue 11 against the latest results in benchmarks/results/, each with the
command that measured it (the last step of `make bench`).

    .venv/bin/python -m benchmarks.summary [--subscribers 100000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _row(figure: str, value: str, target: str, met: bool | None, command: str) -> None:
    verdict = {True: "met", False: "NOT MET", None: ""}[met]
    print(f"  {figure:<50} {value:<30} {target:<26} {verdict:<8} {command}")


def _sqlite(sqlite: dict[str, Any], million: dict[str, Any] | None) -> None:
    unsigned, command = sqlite["dkim_none"], sqlite["command"]
    ratio = unsigned.get("ratio_to_process_floor")
    _row(
        "send rate / process floor (SQLite)",
        f"{unsigned['engine_msgs_per_s']:,.0f} / "
        f"{sqlite.get('process_floor_msgs_per_s', 0):,} = {ratio}",
        "≥ 0.8",
        ratio is not None and ratio >= 0.8,
        command,
    )
    _row(
        "thread floor (for comparison)",
        f"{sqlite.get('thread_floor_msgs_per_s', 0):,} msg/s",
        "",
        None,
        command,
    )
    wall = unsigned["send_wall_s"]
    _row("whole send command", f"{wall} s", "< 40 s", wall < 40, command)
    top, total = unsigned["peak_rss_max_mib"], unsigned["peak_rss_sum_mib"]
    _row("peak RSS, largest process", f"{top} MiB", "< 100 MB", top * 1.048576 < 100, command)
    _row("peak RSS, all processes", f"{total} MiB", "< 250 MB", total * 1.048576 < 250, command)
    if million is None:
        _row(
            "peak RSS at 1,000,000",
            "not measured",
            "within 10 %",
            None,
            ".venv/bin/python -m benchmarks.run --subscribers 1000000 --variants none --no-floor",
        )
        return
    big = million["dkim_none"]["peak_rss_max_mib"]
    change = big / top - 1 if top else 0
    _row(
        "peak RSS at 1,000,000 (largest process)",
        f"{big} MiB ({change:+.1%})",
        "within 10 %",
        abs(change) <= 0.1,
        million["command"],
    )


def _postgres(pg: dict[str, Any]) -> None:
    pair = pg["postgres"]
    ratio = pair.get("ratio_to_process_floor")
    _row(
        "send + worker / process floor (PostgreSQL)",
        f"{pair['combined_msgs_per_s']:,} / {pg.get('process_floor_msgs_per_s', 0):,} = {ratio}",
        "≥ 0.7",
        ratio is not None and ratio >= 0.7,
        pg["command"],
    )
    for process in pair["processes"]:
        mib = process["peak_rss_mib"]
        _row(
            f"  peak RSS, {process['role']}",
            f"{mib} MiB",
            "< 100 MB",
            mib * 1.048576 < 100,
            pg["command"],
        )


def _web(web: dict[str, Any]) -> None:
    command, load = web["command"], web["loaded"]["load"]
    for kind in ("unsubscribe", "signup_form", "signup"):
        figures = load[kind]
        _row(
            f"web under a send: {kind} p99",
            f"{figures['p99_ms']} ms ({figures['requests_per_s']}/s)",
            "< 250 ms",
            figures["p99_ms"] < 250,
            command,
        )
        _row(
            f"web under a send: {kind} errors",
            str(figures["errors"]),
            "0",
            figures["errors"] == 0,
            command,
        )
    ratio = web["loaded_to_unloaded"]
    _row("send rate loaded / unloaded", f"{ratio}", "≥ 0.7", ratio >= 0.7, command)
    after = web["unsubscribe_check"]["after_answer"]
    _row(
        "messages after an answered unsubscribe",
        f"{after} of {web['unsubscribe_check']['answered']}",
        "0",
        after == 0,
        command,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    args = parser.parse_args()
    n = args.subscribers
    print(f"\nIssue 11's targets, {n:,} readers (from {Path(RESULTS).name}/):")
    sqlite = _read(f"bench-{n}-2c-postfix.json")
    if sqlite:
        _sqlite(sqlite, _read("bench-1000000-2c-postfix.json"))
    pg = _read(f"bench-postgres-{n}-2c.json")
    if pg:
        _postgres(pg)
    web = _read(f"web-load-{n}.json")
    if web:
        _web(web)
    for found, what in ((sqlite, "SQLite"), (pg, "PostgreSQL"), (web, "web under a send")):
        if not found:
            print(f"  {what}: no result for {n:,} readers yet")


if __name__ == "__main__":
    main()
