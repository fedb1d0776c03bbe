"""Running `newsletter send` (and `newsletter worker`) in children, with their memory watched."""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from typing import Any

from benchmarks.common import NEWSLETTER, SUNDAY, parse_sent
from benchmarks.procs import TreeWatch


def run_send(env: dict[str, str], watch: TreeWatch | None = None) -> dict[str, Any]:
    """`newsletter send --now <Sunday>` in a child: wall time, the engine's rate, peak memory of
    the child and every process it starts (in `watch`, when given, for the caller to report)."""
    own_watch = watch is None
    with ExitStack() as stack:
        watch = stack.enter_context(TreeWatch()) if watch is None else watch
        started = time.perf_counter()
        child = subprocess.Popen(
            [NEWSLETTER, "send", "--now", SUNDAY],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        watch.watch(child, "send")
        stdout, stderr = child.communicate()
        wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"newsletter send failed:\n{stdout}\n{stderr}")
    rate, own_peak = parse_sent(stdout)
    watch.merge_own(child.pid, own_peak)
    return {
        "send_wall_s": round(wall, 2),
        "engine_msgs_per_s": rate,
        "send_pid": child.pid,
        "stdout_tail": stdout.strip().splitlines()[-3:],
        **(watch.report() if own_watch else {}),
    }
