"""Rough edges end in a calm page or message, never a 500 nobody meant, a hang, or a stray host.

Over real HTTP on SQLite and PostgreSQL: form numbers are ASCII digits within bounds; a failure
inside still answers with the security headers; a trailing slash redirects to the configured
address, whatever Host the request names; odd bytes in queries and forms get a 4xx. And
`issues check` refuses a FIFO by name instead of waiting on it.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import subscriptions
from newsletter.settings import Settings
from newsletter.storage.models import Subscriber
from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.readers import path_for
from tests.support.servers import LiveServer

SECURITY = ("content-security-policy", "referrer-policy", "x-frame-options", "cache-control")


def reader(factory: sessionmaker[Session]) -> Subscriber:
    with factory() as session, session.begin():
        return subscriptions.add(session, "anna@example.com", "Anna", datetime.now(UTC), basis="x")


@pytest.mark.parametrize(
    "weeks", ["²", "١٢", "２", "99", "0", "-1", "+2", " 2", "2.0", "", "9" * 400, "0x2"]
)
def test_the_pause_form_takes_only_plain_numbers_of_weeks(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session], weeks: str
) -> None:
    pause = live_app.url + path_for(settings, reader(factory)).replace("/afmelden/", "/pauzeren/")
    response = httpx.post(pause, data={"weken": weeks})
    assert response.status_code == 400 and "Dat kwam niet goed aan" in response.text
    with factory() as session:
        assert session.scalars(text("SELECT paused_until FROM subscribers")).one() is None
    assert httpx.post(pause, data={"weken": "4"}).status_code == 200


def test_a_failure_inside_answers_the_calm_page_with_every_security_header(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session], engine: Engine
) -> None:
    page = live_app.url + path_for(settings, reader(factory))
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE deliveries"))  # the unsubscribe skips deliveries
    response = httpx.post(page)
    # PostgreSQL reports the missing table as a programming error (500); SQLite as an
    # operational one, which the app answers as a database that is away (503). Both calm.
    assert response.status_code in (500, 503)
    assert "Er ging iets mis" in response.text and '<html lang="nl"' in response.text
    for header in SECURITY:
        assert header in response.headers, header
    assert "Traceback" not in response.text and "deliveries" not in response.text


@pytest.mark.parametrize("path", ["/aanmelden/", "/afmelden/{token}/", "/aanmelden//"])
def test_a_trailing_slash_redirects_to_the_configured_address_only(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session], path: str
) -> None:
    token = path_for(settings, reader(factory)).rsplit("/", 1)[1]
    target = path.replace("{token}", token)
    for host in ("evil.example", "evil.example:443", ""):
        headers = {"Host": host} if host else {}
        response = httpx.get(
            live_app.url + target + "?email=a%40example.com", headers=headers,
            follow_redirects=False,
        )  # fmt: skip
        assert response.status_code == 308
        location = response.headers["location"]
        assert location.startswith(settings.base_url + "/"), location
        assert location.endswith(target.rstrip("/") + "?email=a%40example.com")
        assert "evil" not in location
    assert httpx.get(live_app.url + "/bestaat-niet/").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/aanmelden?email=%ff%fe&name=%00", None),
        ("GET", "/aanmelden?email=" + "a" * 5000, None),
        ("GET", "/aanmelden?name=%ED%A0%80", None),
        ("POST", "/aanmelden", b"email=%ED%A0%80&name=%00"),
        ("POST", "/pauzeren/%ff", b"weken=2"),
        ("GET", "/bevestig/%ED%A0%80", None),
        ("POST", "/bevestig/" + "A" * 80, b""),
        ("GET", "/afmelden/" + "\u00e9" * 20, None),
        ("GET", "/static/..%2f..%2fpyproject.toml", None),
    ],
)
def test_odd_bytes_get_a_calm_answer_not_a_500(
    live_app: LiveServer, method: str, path: str, body: bytes | None
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
    response = httpx.request(method, live_app.url + path, content=body, headers=headers)
    assert response.status_code < 500, response.text[:300]
    assert "content-security-policy" in response.headers


def test_issues_check_refuses_a_fifo_by_name_instead_of_waiting(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "issues"
    write_issue(folder, "een")
    os.mkfifo(folder / "pijp.md")
    (folder / "map.md").mkdir()
    outcome: list[str] = []
    thread = threading.Thread(
        target=lambda: outcome.append(cli("issues", "check", code=1).stderr), daemon=True
    )
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():
        with (folder / "pijp.md").open("w"):
            pass  # let it go
        raise AssertionError("issues check waited on a FIFO")
    assert f"{folder / 'pijp.md'}: is not a regular file" in outcome[0]
    assert f"{folder / 'map.md'}: is not a regular file" in outcome[0]
    assert "2 of 3 issue files have errors" in outcome[0]
