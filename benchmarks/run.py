"""`make bench`: the delivery engine against the SMTP protocol's own limit, on this machine.

    .venv/bin/python -m benchmarks.run [--subscribers 100000] [--connections 2] [--sink postfix]

Starts Postfix's smtp-sink on loopback (Debian package `postfix`: `apt-get install postfix`), sends
one edition to N subscribers with `newsletter send` in a child process, unsigned, signed with
DKIM RSA-2048 and signed with Ed25519 (each on a fresh database), then measures the floor: plain
smtplib in independent processes, as many as the engine's connections, pushing one ready message
of the same size to the same sink, and the per-message cost of building and signing. Prints
messages per second for each, their ratios, peak RSS, the load average, render and signing costs
and the machine, and writes them to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import resource
import secrets
import shutil
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
NEWSLETTER = str(Path(sys.executable).parent / "newsletter")
SUNDAY = "2026-11-29T07:00:00+01:00"
RESULTS = ROOT / "benchmarks" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the sink did not start")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.controller is not None:
            self.controller.stop()


def populate(database: Path, count: int) -> None:
    """Create the schema with `newsletter db upgrade`, then insert subscribers in bulk."""
    env = {**os.environ, "NEWSLETTER_DATABASE_URL": f"sqlite:///{database}"}
    subprocess.run([NEWSLETTER, "db", "upgrade"], env=env, check=True, capture_output=True)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    # sqlite3's own `with` only commits; closing() closes the connection too.
    with closing(sqlite3.connect(database)) as connection, connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(subscribers)")}
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
        connection.executemany(
            f"INSERT INTO subscribers ({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)})",
            rows,
        )


def environment(work: Path, port: int, connections: int) -> dict[str, str]:
    return {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "NEWSLETTER_SMTP_CONNECTIONS": str(connections),
        "NEWSLETTER_SECRET_KEY": "benchmark-secret-key-0123456789",
        "NEWSLETTER_FROM": "Zachte Zondag <nieuws@nieuws.example.nl>",
        "NEWSLETTER_BASE_URL": "https://nieuws.example.nl",
        "NEWSLETTER_ISSUES_DIR": str(ROOT / "issues"),
    }


def run_send(env: dict[str, str]) -> tuple[float, float, int]:
    """Run `newsletter send` in a child; returns (wall seconds, engine msg/s, peak RSS in KiB)."""
    issue = sorted((ROOT / "issues").glob("*.md"))[0]
    subprocess.run([NEWSLETTER, "issues", "queue", str(issue)], env=env, check=True,
                   capture_output=True)  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(
        [NEWSLETTER, "send", "--now", SUNDAY],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - started
    # The child has been reaped by communicate(); its own peak RSS is in RUSAGE_CHILDREN only as
    # a maximum over all children, so `send` reports its own peak (ru_maxrss, KiB) below.
    if child.returncode != 0:
        raise SystemExit(f"newsletter send failed:\n{stdout}\n{stderr}")
    done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    found = re.search(r"peak memory (\d+) KiB", done.stdout)
    peak = int(found.group(1)) if found else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    match = re.search(r"Sent (\d+), failed (\d+).*\((\d+) messages/s", done.stdout)
    if not match:
        raise SystemExit(f"unexpected output:\n{done.stdout}")
    return wall, float(match.group(3)), peak


def sample_message(work: Path, env: dict[str, str]) -> bytes:
    """One message exactly as the engine builds it, for the floor to push."""
    sys.path.insert(0, str(ROOT))
    os.environ.update({k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})
    from sqlalchemy import select

    from newsletter.mail.composing import EditionMessage, Recipient
    from newsletter.settings import load_settings
    from newsletter.storage.db import make_engine, session_factory
    from newsletter.storage.models import Edition

    settings = load_settings()
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        edition = session.scalars(select(Edition)).one()
        message = EditionMessage(settings, subject=edition.subject, html=edition.html,
                                 text=edition.text, seed=edition.message_id_seed)  # fmt: skip
    engine.dispose()
    url = "https://nieuws.example.nl/afmelden/" + "x" * 43
    return message.build(Recipient(1, "lezer0000001@example.com", "Lezer", url), datetime.now(UTC))


def _push(port: int, data: bytes, count: int, go: Any) -> None:
    """One floor process: plain smtplib, one ready message, reconnecting every 1,000."""
    go.wait()
    smtp = smtplib.SMTP("127.0.0.1", port)
    smtp.ehlo()
    for i in range(count):
        if i and i % 1000 == 0:  # the engine reconnects every 1000 messages too
            smtp.quit()
            smtp = smtplib.SMTP("127.0.0.1", port)
            smtp.ehlo()
        smtp.sendmail("nieuws@nieuws.example.nl", ["lezer@example.com"], data)
    smtp.quit()


def floor(port: int, data: bytes, count: int, processes: int) -> float:
    """Plain smtplib in `processes` independent processes (no shared GIL): the protocol's rate."""
    context = multiprocessing.get_context("fork")
    go = context.Event()
    per = count // processes
    workers = [context.Process(target=_push, args=(port, data, per, go)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    go.set()
    for worker in workers:
        worker.join()
    if any(worker.exitcode != 0 for worker in workers):
        raise SystemExit("a floor process failed")
    return per * processes / (time.perf_counter() - started)


def render_costs(env: dict[str, str]) -> dict[str, float]:
    from newsletter.mail.composing import EditionMessage, Recipient
    from newsletter.mail.rendering import IssueContent, render_edition
    from newsletter.settings import load_settings

    settings = load_settings()
    content = IssueContent(
        "Onderwerp", "loslaten", "Wat mag je loslaten?", "Kort.", "Tekst.\n" * 40
    )
    render_edition(content, settings, seed="warm0000", send_at=datetime.now(UTC))
    started = time.perf_counter()
    rounds = 20
    for i in range(rounds):
        rendered = render_edition(content, settings, seed=f"{i:08d}", send_at=datetime.now(UTC))
    per_edition = (time.perf_counter() - started) / rounds
    message = EditionMessage(settings, subject=rendered.subject, html=rendered.html,
                             text=rendered.text, seed="00000019")  # fmt: skip
    now = datetime.now(UTC)
    recipients = [Recipient(i, f"l{i}@example.com", "Lezer", f"https://x.nl/afmelden/{i:043d}")
                  for i in range(10_000)]  # fmt: skip
    started = time.perf_counter()
    for recipient in recipients:
        message.build(recipient, now)
    per_recipient = (time.perf_counter() - started) / len(recipients)
    return {
        "render_ms_per_edition": per_edition * 1000,
        "build_us_per_recipient": per_recipient * 1e6,
    }


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


VARIANTS = ("none", "rsa", "ed25519")


def write_keys(folder: Path) -> dict[str, dict[str, str]]:
    """A test RSA-2048 and Ed25519 key; the NEWSLETTER_DKIM_* variables of each variant."""
    from newsletter.mail.dkim import generate_key

    variants: dict[str, dict[str, str]] = {"none": {}}
    for kind in ("rsa", "ed25519"):
        path = folder / f"{kind}.pem"
        path.write_bytes(generate_key(kind)[0])
        variants[kind] = {"NEWSLETTER_DKIM_SELECTOR": kind, "NEWSLETTER_DKIM_KEY_FILE": str(path)}
    return variants


def signing_costs(env: dict[str, str], keys: dict[str, dict[str, str]]) -> dict[str, float]:
    """Microseconds per message: building it unsigned and signed, and the signature alone."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from newsletter.config_values import read_dkim_key
    from newsletter.mail.composing import EditionMessage, Recipient
    from newsletter.mail.rendering import IssueContent, render_edition
    from newsletter.settings import load_settings

    content = IssueContent(
        "Onderwerp", "loslaten", "Wat mag je loslaten?", "Kort.", "Tekst.\n" * 400
    )
    rendered = render_edition(content, load_settings(), seed="sign0000", send_at=datetime.now(UTC))
    recipients = [Recipient(i, f"l{i}@example.com", "Lezer", f"https://x.nl/afmelden/{i:043d}")
                  for i in range(2000)]  # fmt: skip
    costs: dict[str, float] = {}
    for variant, extra in keys.items():
        settings = load_settings(
            **{k.removeprefix("NEWSLETTER_").lower(): v for k, v in extra.items()}
        )
        message = EditionMessage(settings, subject=rendered.subject, html=rendered.html,
                                 text=rendered.text, seed="sign0000")  # fmt: skip
        now = datetime.now(UTC)
        started = time.perf_counter()
        for recipient in recipients:
            message.build(recipient, now)
        costs[f"build_us_{variant}"] = (time.perf_counter() - started) / len(recipients) * 1e6
        if extra:
            key = read_dkim_key(Path(extra["NEWSLETTER_DKIM_KEY_FILE"]))
            started = time.perf_counter()
            for _ in range(500):
                if variant == "rsa":
                    key.sign(b"x" * 600, padding.PKCS1v15(), hashes.SHA256())
                else:
                    key.sign(b"x" * 32)
            costs[f"signature_only_us_{variant}"] = (time.perf_counter() - started) / 500 * 1e6
    costs["message_bytes_for_costs"] = float(len(message.build(recipients[0], now)))
    return costs


def load() -> float:
    return os.getloadavg()[0]


def run_variant(args: argparse.Namespace, port: int, extra: dict[str, str]) -> dict[str, Any]:
    """One whole `newsletter send` of a fresh edition to N subscribers, with these settings."""
    with tempfile.TemporaryDirectory(prefix="nl-bench-") as tmp:
        work = Path(tmp)
        env = {**environment(work, port, args.connections), **extra}
        t0 = time.perf_counter()
        populate(work / "bench.db", args.subscribers)
        populate_s = time.perf_counter() - t0
        load_before = load()
        wall, engine_rate, peak_kib = run_send(env)
        data = sample_message(work, env) if not extra else b""
    return {
        "populate_s": round(populate_s, 2),
        "send_wall_s": round(wall, 2),
        "engine_msgs_per_s": engine_rate,
        "end_to_end_msgs_per_s": round(args.subscribers / wall),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "load_1min_before": round(load_before, 2),
        "sample": data,
    }


def measure_rounds(
    args: argparse.Namespace, port: int, keys: dict[str, dict[str, str]], wanted: list[str]
) -> tuple[dict[str, Any], bytes]:
    """Every variant, round after round (interleaved, so a change in the machine's load falls
    on all of them alike), and the floor after each round; the medians, and every figure."""
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in wanted}
    floors: list[float] = []
    sample = b""
    for _ in range(args.rounds):
        for variant in wanted:
            figures = run_variant(args, port, keys[variant])
            sample = figures.pop("sample") or sample
            runs[variant].append(figures)
        if not args.no_floor:
            floors.append(floor(port, sample, min(args.subscribers, 100_000), args.connections))
    result: dict[str, Any] = {}
    unsigned = statistics.median(float(r["engine_msgs_per_s"]) for r in runs["none"])
    for variant, measured in runs.items():
        rate = statistics.median(float(r["engine_msgs_per_s"]) for r in measured)
        summary: dict[str, Any] = {
            "engine_msgs_per_s": rate,
            "ratio_to_unsigned": round(rate / unsigned, 3),
            "rounds": measured,
        }
        if floors:
            summary["ratio_to_floor"] = round(rate / statistics.median(floors), 3)
        result[f"dkim_{variant}"] = summary
    if floors:
        result["floor_msgs_per_s"] = round(statistics.median(floors))
        result["floor_rounds"] = [round(f) for f in floors]
    return result, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--sink", choices=["postfix", "aiosmtpd"], default="postfix")
    parser.add_argument("--no-floor", action="store_true", help="skip the smtplib floor")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="DKIM variants: none,rsa,ed25519"
    )
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians")
    args = parser.parse_args()
    wanted = ["none", *[v for v in args.variants.split(",") if v and v != "none"]]
    with tempfile.TemporaryDirectory(prefix="nl-keys-") as keys_dir, Sink(args.sink) as sink:
        keys = write_keys(Path(keys_dir))
        result: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "sink": "postfix smtp-sink" if args.sink == "postfix" else "aiosmtpd sink (Python)",
            "subscribers": args.subscribers,
            "connections": args.connections,
            "inflight_window": 50,
            "load_1min_at_start": round(load(), 2),
        }
        measured, sample = measure_rounds(args, sink.port, keys, wanted)
        result.update(measured)
        result["message_bytes"] = len(sample)
        env = environment(Path(keys_dir), sink.port, args.connections)
        os.environ.update({k: v for k, v in env.items() if k.startswith("NEWSLETTER_")})
        result.update({k: round(v, 3) for k, v in render_costs(env).items()})
        result.update({k: round(v, 1) for k, v in signing_costs(env, keys).items()})
        result["load_1min_after"] = round(load(), 2)
        result["machine"] = machine()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{args.subscribers}-{args.connections}c-{args.sink}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
