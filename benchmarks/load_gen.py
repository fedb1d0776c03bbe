"""An open-loop HTTP load generator for the web benchmark: one-click unsubscribes and sign-ups.

    .venv/bin/python -m benchmarks.load_gen PLAN.json OUT.json

PLAN.json: {"port", "unsubscribes_per_s", "signups_per_s", "unsubscribe": [[email, path], …]}.
Requests start on a fixed schedule (open loop: a slow answer does not delay the next request),
each on a new connection, until SIGTERM; then every request's figures go to OUT.json. An
unsubscribe is a POST of `List-Unsubscribe=One-Click` to the reader's List-Unsubscribe path
(RFC 8058); a sign-up is a GET of the form (for its CSRF cookie and token) and a POST of it.
Latency runs from a request's scheduled start to the last byte of its answer; an unsubscribe is
"answered" at the wall time its status line arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

TIMEOUT = 10.0
HOST = "nieuws.example.nl"


async def exchange(port: int, request: bytes) -> tuple[int, float, bytes]:
    """One request on a new connection: (status, wall time of the status line, whole answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        first = await reader.readline()
        answered = time.time()
        rest = await reader.read()
    finally:
        writer.close()
    status = int(first.split()[1]) if first.startswith(b"HTTP/") else 0
    return status, answered, first + rest


def http(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n{headers}"
    if method == "POST":
        head += "Content-Type: application/x-www-form-urlencoded\r\n"
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def timed(kind: str, port: int, request: bytes, scheduled: float) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": kind, "scheduled": scheduled}
    try:
        status, answered, answer = await asyncio.wait_for(exchange(port, request), TIMEOUT)
        record.update(status=status, answered=answered, answer=answer)
    except (OSError, TimeoutError) as exc:
        record.update(status=0, error=type(exc).__name__)
    record["latency_ms"] = (time.time() - scheduled) * 1000
    return record


async def unsubscribe(port: int, email: str, path: str, scheduled: float) -> dict[str, Any]:
    body = b"List-Unsubscribe=One-Click"
    record = await timed("unsubscribe", port, http("POST", path, body), scheduled)
    record.pop("answer", None)
    return {**record, "email": email}


async def sign_up(port: int, number: int, scheduled: float) -> list[dict[str, Any]]:
    form = await timed("signup_form", port, http("GET", "/aanmelden"), scheduled)
    answer = form.pop("answer", b"")
    cookie = re.search(rb"nl_formulier=([0-9a-f]{32})", answer)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', answer)
    if not cookie or not token:
        return [{**form, "status": form.get("status") or 0, "error": "no form"}]
    fields = {"email": f"nieuw{number:07d}@example.org", "name": "", "website": ""}
    fields["csrf_token"] = token.group(1).decode()
    body = "&".join(f"{k}={quote(v)}" for k, v in fields.items()).encode()
    headers = f"Cookie: nl_formulier={cookie.group(1).decode()}\r\n"
    post = await timed("signup", port, http("POST", "/aanmelden", body, headers), time.time())
    post.pop("answer", None)
    return [form, post]


async def run(plan: dict[str, Any], stop: asyncio.Event) -> list[dict[str, Any]]:
    port = plan["port"]
    pool = iter(plan["unsubscribe"])
    tasks: list[asyncio.Task[Any]] = []
    start = time.time()
    unsub_every, signup_every = 1 / plan["unsubscribes_per_s"], 1 / plan["signups_per_s"]
    next_unsub, next_signup, signups = start, start, 0
    while not stop.is_set():
        now = time.time()
        if now >= next_unsub:
            target = next(pool, None)
            if target is not None:
                email, path = target
                tasks.append(asyncio.create_task(unsubscribe(port, email, path, next_unsub)))
            next_unsub += unsub_every
        if now >= next_signup:
            tasks.append(asyncio.create_task(sign_up(port, signups, next_signup)))
            signups, next_signup = signups + 1, next_signup + signup_every
        wait = min(next_unsub, next_signup) - time.time()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    records: list[dict[str, Any]] = []
    for result in await asyncio.gather(*tasks):
        records.extend(result if isinstance(result, list) else [result])
    return records


async def main(plan_file: Path, out: Path) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    plan = json.loads(plan_file.read_text())
    started = time.time()
    records = await run(plan, stop)
    out.write_text(json.dumps({"started": started, "stopped": time.time(), "requests": records}))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
