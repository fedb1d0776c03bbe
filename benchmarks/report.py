"""What a run prints: every figure with its target, where it has one, and the command."""

from __future__ import annotations

from typing import Any


def _line(figure: str, value: str, target: str = "") -> None:
    print(f"  {figure:<64} {value:<34} {target}")


def _mb(mib: float) -> str:
    """MiB as measured, and MB (10^6 bytes) as the targets are written."""
    return f"{mib} MiB = {mib * 1.048576:.1f} MB"


def _rss(prefix: str, figures: dict[str, Any]) -> None:
    for process in figures.get("processes", []):
        _line(
            f"{prefix}peak RSS, {process['role']} ({process['command']}, pid {process['pid']})",
            f"{_mb(process['peak_rss_mib'])}, {process['cpu_s']} s CPU",
            "< 100 MB each",
        )
    _line(
        f"{prefix}peak RSS, all processes (sum of peaks)",
        _mb(figures["peak_rss_sum_mib"]),
        "< 250 MB together",
    )
    for role, seconds in figures.get("helpers_cpu_s", {}).items():
        _line(f"{prefix}CPU of the benchmark's {role}", f"{seconds} s", "(not counted above)")


def _floors(result: dict[str, Any]) -> None:
    if "process_floor_msgs_per_s" not in result:
        return
    last = result["floor_rounds"][-1]
    ladder = ", ".join(f"{n}: {rate}" for n, rate in last["process_floor_ladder"].items())
    _line(
        "process floor (smtplib, best of the ladder)",
        f"{result['process_floor_msgs_per_s']:,} msg/s",
        f"processes → msg/s: {ladder}",
    )
    _line(
        f"thread floor (smtplib, {last['thread_floor_threads']} threads in one process)",
        f"{result['thread_floor_msgs_per_s']:,} msg/s",
        "for comparison",
    )
    print("  the ratios below use the process floor")


def _sqlite(result: dict[str, Any]) -> None:
    _floors(result)
    for key, variant in (
        ("dkim_none", "unsigned"),
        ("dkim_rsa", "RSA-2048"),
        ("dkim_ed25519", "Ed25519"),
    ):
        if key not in result:
            continue
        figures = result[key]
        ratio = figures.get("ratio_to_process_floor")
        # The targets are written for 100,000 readers, unsigned.
        targeted = key == "dkim_none" and result["subscribers"] == 100_000
        _line(
            f"send, {variant}: engine rate",
            f"{figures['engine_msgs_per_s']:,.0f} msg/s"
            + (f" ({ratio} × floor)" if ratio is not None else ""),
            "≥ 0.8 × process floor" if targeted and ratio is not None else "",
        )
        _line(
            f"send, {variant}: whole command",
            f"{figures['send_wall_s']} s ({figures['end_to_end_msgs_per_s']:,.0f} msg/s)",
            "< 40 s" if targeted else "",
        )
        _rss(f"send, {variant}: ", figures["rounds"][-1])
    for key in ("render_ms_per_edition", "build_us_per_recipient", "message_bytes"):
        if key in result:
            _line(key, str(result[key]))


def _postgres(result: dict[str, Any]) -> None:
    _floors(result)
    pg = result["postgres"]
    _line(
        "send + 1 worker: deliveries / (last − first hand-over)",
        f"{pg['combined_msgs_per_s']:,.0f} msg/s ({pg.get('ratio_to_process_floor')} × floor)",
        "≥ 0.7 × process floor",
    )
    _line("handled by send / by the worker", f"{pg['handled_by_send']} / {pg['handled_by_worker']}")
    _line("send: whole command", f"{pg['send_wall_s']} s")
    _rss("", pg)


def _web(result: dict[str, Any]) -> None:
    for name in ("unloaded", "loaded"):
        run = result[name]
        _line(
            f"send rate, {name} (sink: first to last message)",
            f"{run['sink_msgs_per_s']:,.0f} msg/s",
            "",
        )
    _line("loaded / unloaded send rate", str(result["loaded_to_unloaded"]), "≥ 0.7")
    load = result["loaded"]["load"]
    for kind in ("unsubscribe", "signup_form", "signup"):
        figures = load[kind]
        _line(
            f"{kind}: requests/s, p50, p99",
            f"{figures['requests_per_s']}/s, {figures['p50_ms']} ms, {figures['p99_ms']} ms",
            "p99 < 250 ms",
        )
        kinds = ", ".join(f"{k}: {n}" for k, n in figures["error_kinds"].items())
        _line(
            f"{kind}: errors (non-2xx, refused, timed out)",
            f"{figures['errors']} {kinds}".strip(),
            "0",
        )
    check = result["unsubscribe_check"]
    _line(
        "unsubscribes answered / of those, messages after the answer",
        f"{check['answered']} / {check['after_answer']}",
        "0 after",
    )
    _line(
        "  answered before the reader's letter (of which during delivery)",
        f"{check['answered_before_message']} "
        f"({check.get('answered_during_delivery_before_message', '?')})",
    )
    _rss("loaded run: ", result["loaded"])


def print_figures(result: dict[str, Any]) -> None:
    print(f"\n{result['command']}")
    print(
        f"  {result['when']}, {result['subscribers']:,} readers, {result['sink']}, load "
        f"{result['load_1min_at_start']} → {result['load_1min_after']} (1 min), "
        f"{result['machine']['cpus']} cores, passed through: "
        f"{result['passed_through'] or 'nothing'}"
    )
    if "postgres" in result:
        _postgres(result)
    elif "unsubscribe_check" in result:
        _web(result)
    else:
        _sqlite(result)
