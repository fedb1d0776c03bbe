"""Peak memory of a process and all its children, sampled from /proc while they run.

Each process's VmHWM (its own peak resident set) only grows, so the last sample before a
process ends is its peak, short of what it grew in the last interval. A process that printed
its own peak (`send` does) can be read more exactly; `TreeWatch.merge_own` takes the larger.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _parents() -> dict[int, int]:
    """Every process's parent, from one scan of /proc (the kernel's children file is optional)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the fields after the last ')'.
        found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def _status(pid: int) -> tuple[int, int] | None:
    """(VmHWM, VmRSS) in KiB, or None when the process has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            name, value = line.split(":", 1)
            values[name] = int(value.split()[0])
    if "VmHWM" not in values:
        return None  # a zombie has no memory left to report
    return values["VmHWM"], values.get("VmRSS", 0)


TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime and stime (fields 14 and 15)


def _label(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = [w.decode(errors="replace") for w in words if w]
    # `…/bin/newsletter send --now …` → "newsletter send"; a forked child keeps its parent's.
    for i, word in enumerate(text):
        if word.endswith("/newsletter") and i + 1 < len(text):
            return f"newsletter {text[i + 1]}"
    return Path(text[0]).name if text else "?"


@dataclass
class Peak:
    pid: int
    role: str
    label: str
    peak_kib: int = 0
    rss_kib: int = 0  # the largest resident set seen at one sample (for the sum over processes)
    cpu_s: float = 0.0  # user + system time, as last seen
    counted: bool = True  # False for the benchmark's own helpers: CPU only, not in the sums


@dataclass
class TreeWatch:
    """Samples the process trees of some root PIDs in a thread: each process's peak every
    `interval` seconds, the tree itself (which processes) every `rescan` seconds."""

    interval: float = 0.1
    rescan: float = 0.5
    roots: dict[int, str] = field(default_factory=dict)
    peaks: dict[int, Peak] = field(default_factory=dict)
    together_kib: int = 0  # the largest sum of resident sets over all processes at one sample
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, process: subprocess.Popen[Any], role: str, *, counted: bool = True) -> None:
        """Watch `process` and its children; `counted=False` for the benchmark's own helpers."""
        self.roots[process.pid] = role
        self._add(process.pid, role)
        self.peaks[process.pid].counted = counted

    def __enter__(self) -> TreeWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _add(self, pid: int, role: str) -> None:
        if pid not in self.peaks:
            self.peaks[pid] = Peak(pid, role, _label(pid))

    def _find_children(self) -> None:
        parents = _parents()
        for root, role in list(self.roots.items()):
            pending = [root]
            while pending:
                pid = pending.pop()
                children = [child for child, parent in parents.items() if parent == pid]
                for child in children:
                    self._add(child, f"{role} child")
                    self.peaks[child].counted = self.peaks[root].counted
                pending.extend(children)

    def _run(self) -> None:
        last_scan = 0.0
        while not self._stop.wait(self.interval):
            if time.monotonic() - last_scan >= self.rescan:
                self._find_children()
                last_scan = time.monotonic()
            self._sample()

    def _sample(self) -> None:
        together = 0
        for peak in list(self.peaks.values()):
            if peak.label in ("?", "python3", "python"):  # read before the child's exec
                peak.label = _label(peak.pid)
            status = _status(peak.pid)
            if status is None:
                continue
            peak.peak_kib = max(peak.peak_kib, status[0])
            peak.rss_kib = max(peak.rss_kib, status[1])
            peak.cpu_s = _cpu_seconds(peak.pid) or peak.cpu_s
            together += status[1] if peak.counted else 0
        self.together_kib = max(self.together_kib, together)

    def merge_own(self, pid: int, own_kib: int | None) -> None:
        """A process's own report of its peak (ru_maxrss), if larger than the last sample."""
        if own_kib is not None and pid in self.peaks:
            self.peaks[pid].peak_kib = max(self.peaks[pid].peak_kib, own_kib)

    def report(self) -> dict[str, Any]:
        counted = [p for p in self.peaks.values() if p.counted]
        processes = [
            {
                "pid": p.pid,
                "role": p.role,
                "command": p.label,
                "peak_rss_mib": mib(p.peak_kib),
                "cpu_s": round(p.cpu_s, 1),
            }
            for p in counted
        ]
        return {
            "processes": processes,
            "helpers_cpu_s": {
                p.role: round(p.cpu_s, 1) for p in self.peaks.values() if not p.counted
            },
            "peak_rss_max_mib": mib(max((p.peak_kib for p in counted), default=0)),
            "peak_rss_sum_mib": mib(sum(p.peak_kib for p in counted)),
            "rss_together_max_mib": mib(self.together_kib),
        }


def mib(kib: int) -> float:
    return round(kib / 1024, 1)
