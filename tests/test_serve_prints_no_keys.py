"""`newsletter serve` as its own process: every route driven, nothing printed holds a key.

No token (unsubscribe, confirmation, form), no secret, no client's whole address and no
address's local part appears in anything the server writes, with the access log on (it shows
`/afmelden/…` and the client's /24) or off (the default: no line per request at all). A
request that fails inside gets the calm 500 page with the security headers, and the log one
line without a traceback.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from tests.support.cli import Cli, spawned
from tests.support.databases import SECRET
from tests.support.issue_files import write_issue
from tests.support.readers import form_token
from tests.support.relays import body_of, free_port

CLIENT = "203.0.113.77"  # the reader's address, as the trusted proxy passes it on
SECRETS_OF_READERS = ("lezer.geheim", "nieuw.geheim", "lokaal.deel")


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    """`newsletter serve` as a process of its own, once it answers."""
    with spawned(env, "serve", "--port", str(port)) as server:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start: {server.communicate()}")
            time.sleep(0.05)
        yield server


def stop(server: subprocess.Popen[str]) -> str:
    """Everything the server printed, once it has stopped."""
    server.send_signal(signal.SIGINT)
    out, err = server.communicate(timeout=30)
    return out + err


def mail_with(outbox: Path, needle: str, timeout: float = 15) -> EmailMessage:
    """The first mail in the outbox whose text part holds `needle`, waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in outbox.rglob("*.eml"):
            mail = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(mail, EmailMessage)
            if needle in body_of(mail, "plain"):
                return mail
        time.sleep(0.05)
    raise AssertionError(f"no mail with {needle!r} in {outbox}")


def installation(env: dict[str, str], tmp_path: Path, **more: str) -> tuple[dict[str, str], int]:
    port = free_port()
    served = {**env, "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}", **more}
    cli = Cli(served)
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "lezer.geheim@example.com", "--name", "Lezer", "--consent", "x")
    cli("send", "--now", "2026-11-29T07:00")
    return served, port


def unsubscribe_token(outbox: Path) -> str:
    letter = mail_with(outbox, "/afmelden/")
    return str(letter["List-Unsubscribe"]).strip("<>").rsplit("/", 1)[1]


def drive_every_route(url: str, outbox: Path, token: str) -> list[str]:
    """Every route, as readers and scanners use them; returns the keys that went over the wire."""
    keys = [token]
    with httpx.Client(headers={"X-Forwarded-For": CLIENT}) as browser:
        form = browser.get(f"{url}/aanmelden", params={"email": "lokaal.deel@example.com"})
        assert form.status_code == 200 and browser.head(f"{url}/aanmelden").status_code == 200
        keys += [form_token(form.text), browser.cookies["nl_formulier"]]
        sent = browser.post(
            f"{url}/aanmelden",
            data={"csrf_token": keys[1], "email": "nieuw.geheim@example.com", "name": "Nieuw"},
        )
        assert sent.status_code == 200
        confirmation = body_of(mail_with(outbox, "/bevestig/"), "plain")
        link = re.search(r"http://127\.0\.0\.1:\d+/bevestig/[A-Za-z0-9_\-]+", confirmation)
        assert link is not None
        keys.append(link.group(0).rsplit("/", 1)[1])
        for method, status in [("GET", 200), ("HEAD", 200), ("POST", 200), ("POST", 200)]:
            assert browser.request(method, link.group(0)).status_code == status
        for method, path, data, status in [
            ("GET", f"/afmelden/{token}", None, 200),
            ("HEAD", f"/pauzeren/{token}", None, 200),
            ("POST", f"/pauzeren/{token}", {"weken": "2"}, 200),
            ("POST", f"/pauzeren/{token}", {"weken": "²"}, 400),
            ("POST", f"/hervatten/{token}", {}, 200),
            ("POST", f"/afmelden/{token}", {"List-Unsubscribe": "One-Click"}, 200),
            ("GET", f"/afmelden/{token}", None, 200),
            ("POST", f"/terugkomen/{token}", {}, 200),
            ("GET", f"/afmelden/{token}/", None, 308),
            ("GET", f"/{token}", None, 404),
            ("GET", f"/afmelden/{token[:-2]}xy", None, 404),
            ("PUT", "/aanmelden", None, 405),
            ("POST", "/aanmelden", {"email": "x" * 20_000}, 413),
            ("GET", "/static/style.css", None, 200),
            ("GET", "/healthz", None, 200),
        ]:
            response = browser.request(method, url + path, data=data, follow_redirects=False)
            assert response.status_code == status, (method, path)
    return keys


def _drive_and_break(
    server: subprocess.Popen[str], engine: Engine, port: int, outbox: Path, token: str
) -> tuple[str, list[str]]:
    """Drive every route, then break the database under a sign-up; what was printed, and keys."""
    try:
        url = f"http://127.0.0.1:{port}"
        keys = drive_every_route(url, outbox, token)
        with engine.begin() as connection:  # now the database fails under the sign-up
            connection.execute(text("DROP TABLE signup_attempts"))
        with httpx.Client(headers={"X-Forwarded-For": CLIENT}) as browser:
            form = browser.get(f"{url}/aanmelden")
            broken = browser.post(
                f"{url}/aanmelden",
                data={"csrf_token": form_token(form.text), "email": "nieuw.geheim@example.com"},
            )
        # A missing table: a programming error on PostgreSQL (500), an operational one on
        # SQLite, answered as a database that is away (503). Both pages are calm.
        assert broken.status_code in (500, 503) and "Er ging iets mis" in broken.text
        assert "frame-ancestors 'none'" in broken.headers["content-security-policy"]
        assert broken.headers["referrer-policy"] == "no-referrer"
    finally:
        printed = stop(server)
    return printed, keys


def test_serve_prints_no_token_no_secret_and_no_whole_client_address(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    served, port = installation(env, tmp_path, NEWSLETTER_ACCESS_LOG="true")
    outbox = Path(env["NEWSLETTER_OUTBOX_DIR"])
    token = unsubscribe_token(outbox)
    with serving(served, port) as server:
        printed, keys = _drive_and_break(server, engine, port, outbox, token)
    for key in [*keys, SECRET]:
        assert key not in printed, key
    assert CLIENT not in printed and "203.0.113.0/24" in printed
    for local_part in SECRETS_OF_READERS:
        assert local_part not in printed
    assert '"GET /afmelden/… HTTP/1.1" 200' in printed
    assert '"GET /aanmelden?… HTTP/1.1" 200' in printed
    failed = ("POST /aanmelden failed:", "POST /aanmelden: the database:")
    assert any(line in printed for line in failed) and "Traceback" not in printed


def test_the_access_log_is_off_unless_asked_for(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    served, port = installation(env, tmp_path)
    token = unsubscribe_token(Path(env["NEWSLETTER_OUTBOX_DIR"]))
    with serving(served, port) as server:
        try:
            page = httpx.get(f"http://127.0.0.1:{port}/afmelden/{token}")
            assert page.status_code == 200
        finally:
            printed = stop(server)
    assert "/afmelden" not in printed and "/healthz" not in printed and token not in printed
    assert "127.0.0.1:" not in printed.replace(f"http://127.0.0.1:{port}", "")
