"""Does the sign-up answer take longer for some addresses than for others? Measured over HTTP.

    .venv/bin/python -m benchmarks.signup_timing [--rounds 300] [--database-url postgresql://…]
    .venv/bin/python -m benchmarks.signup_timing --code /tmp/old   # another checkout's code

Starts `newsletter serve` (mail to an outbox) in a child process on a fresh database holding
one address in each state: pending, subscribed, unsubscribed, bounced, erased (a fresh erased
address every round) and new (a fresh one every round). Each round posts the sign-up form once
for each state, in a random order, on a new connection, after the previous request's work
after the answer has settled, and times the answer (send to last byte). It prints the median
per state and, for each state against `new`, how often a `new` answer was the slower one of the
pair in a round and the AUC (the chance that a random `new` answer is slower than a random one
of that state): 0.5 means the answers cannot be told apart; the issue measured about 0.9.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from benchmarks.common import NEWSLETTER, RESULTS, free_port, machine

STATES = ("new", "pending", "subscribed", "unsubscribed", "bounced", "erased")
SECRET = "benchmark-secret-key-0123456789"

# Run in the server's own code (any version), so the states are made by that code's rules.
SETUP = """
import sys
from datetime import UTC, datetime
from newsletter.readers import privacy, signup, subscriptions
from newsletter.settings import load_settings
from newsletter.storage.db import make_engine, session_factory
settings = load_settings()
keys = settings.secret_keys()
now = datetime.now(UTC)
factory = session_factory(make_engine(settings.database_url))
with factory() as session, session.begin():
    for name in ("subscribed", "unsubscribed", "bounced"):
        reader = subscriptions.add(session, name + "@example.com", None, now, basis="benchmark")
        if name == "unsubscribed":
            subscriptions.unsubscribe(session, reader, now)
        if name == "bounced":
            subscriptions.mark_bounced(session, [reader.id], now, source="relay", detail="550")
    signup.request(session, settings, keys, email="pending@example.com", name=None,
                   client_host="192.0.2.1", now=now)
    for n in range(int(sys.argv[1])):
        privacy.forget(session, keys, f"erased{n}@example.com", now)
"""


def environment(
    work: Path, port: int, database_url: str | None, code: Path | None
) -> dict[str, str]:
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url or f"sqlite:///{work / 'newsletter.db'}",
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_OUTBOX_DIR": str(work / "outbox"),
        "NEWSLETTER_SIGNUP_CLIENT_HOURLY_LIMIT": "1000000000",
        "NEWSLETTER_SIGNUP_RESEND_MINUTES": "0",  # every sign-up mails: the most work after
    }
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def post(port: int, cookie: str, token: str, email: str) -> float:
    """One sign-up on a connection of its own; seconds from sending to the last byte."""
    body = urlencode({"csrf_token": token, "email": email, "name": ""})
    connection = http.client.HTTPConnection("127.0.0.1", port)
    try:
        connection.connect()
        start = time.perf_counter()
        connection.request(
            "POST",
            "/aanmelden",
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"nl_formulier={cookie}",
                "Connection": "close",
            },
        )
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    if response.status != 200:
        raise SystemExit(f"sign-up answered {response.status}")
    return elapsed


def form(port: int) -> tuple[str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    try:
        connection.request("GET", "/aanmelden")
        response = connection.getresponse()
        page = response.read().decode()
        cookie = re.search(r"nl_formulier=([0-9a-f]{32})", response.getheader("set-cookie") or "")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    finally:
        connection.close()
    if cookie is None or token is None:
        raise SystemExit("the sign-up form has no token")
    return cookie.group(1), token.group(1)


def auc(slow: list[float], other: list[float]) -> float:
    """P(a random `slow` sample > a random `other` sample), ties counted half (Mann-Whitney)."""
    ranked = sorted([(v, 0) for v in slow] + [(v, 1) for v in other])
    ranks: dict[float, float] = {}
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        ranks[ranked[i][0]] = (i + j + 1) / 2
        i = j
    rank_sum = sum(ranks[v] for v in slow)
    u = rank_sum - len(slow) * (len(slow) + 1) / 2
    return u / (len(slow) * len(other))


def measure(port: int, rounds: int, pause: float) -> dict[str, list[float]]:
    cookie, token = form(port)
    times: dict[str, list[float]] = {state: [] for state in STATES}
    for warm in range(20):  # warm up the server (imports, caches, connections)
        post(port, cookie, token, f"warm{warm}.{uuid.uuid4().hex[:8]}@example.com")
        time.sleep(pause)
    for n in range(rounds):
        order = list(STATES)
        random.shuffle(order)
        for state in order:
            email = {
                "new": f"new.{uuid.uuid4().hex[:12]}@example.com",
                "erased": f"erased{n}@example.com",
            }.get(state, f"{state}@example.com")
            times[state].append(post(port, cookie, token, email))
            time.sleep(pause)  # the work after the answer settles before the next request
    return times


def report(times: dict[str, list[float]]) -> dict[str, Any]:
    new = times["new"]
    result: dict[str, Any] = {}
    print(f"{'state':<13} {'median ms':>9} {'p25':>7} {'p75':>7}  {'new slower':>10}  {'AUC':>5}")
    for state in STATES:
        values = times[state]
        q = statistics.quantiles(values, n=4)
        slower = sum(a > b for a, b in zip(new, values, strict=True)) / len(values)
        area = auc(new, values) if state != "new" else 0.5
        result[state] = {
            "median_ms": statistics.median(values) * 1000,
            "p25_ms": q[0] * 1000,
            "p75_ms": q[2] * 1000,
            "new_slower_in_pairs": slower,
            "auc_new_vs": area,
        }
        print(f"{state:<13} {statistics.median(values) * 1000:9.2f} {q[0] * 1000:7.2f} "
              f"{q[2] * 1000:7.2f}  {slower:10.0%}  {area:5.2f}")  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.03, help="seconds between requests")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL (fresh schema)")
    parser.add_argument("--code", type=Path, default=None, help="run another checkout's code")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = environment(Path(folder), port, args.database_url, args.code)
        # In the temporary folder: `python -c` puts the working directory first on its path.
        subprocess.run(
            [NEWSLETTER, "db", "upgrade"], env=env, cwd=folder, check=True, capture_output=True
        )
        subprocess.run(
            [sys.executable, "-c", SETUP, str(args.rounds)], env=env, cwd=folder, check=True
        )
        server = subprocess.Popen(
            [NEWSLETTER, "serve", "--port", str(port)], env=env, cwd=folder,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    form(port)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("serve did not start") from None
                    time.sleep(0.1)
            times = measure(port, args.rounds, args.pause)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.rounds} rounds, {args.database_url or 'SQLite'}, code: {args.code or 'this'}")
    result = report(times)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"signup-timing-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"rounds": args.rounds, "states": result, "machine": machine()},
                              indent=2))  # fmt: skip
    print(f"written to {out}")


if __name__ == "__main__":
    main()
