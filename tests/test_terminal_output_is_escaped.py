"""Names and addresses from the database never drive the operator's terminal.

Stored names with C1 controls (`\\x9b` is a CSI), escape sequences, bidirectional overrides or
rich markup are shown as escapes by `subscribers list` and the exports, in a real terminal too
(a pty), while the exported data stays exact.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import subscriptions
from tests.support.cli import NEWSLETTER, Cli

NAMES = {
    "a@example.com": "\x9b31mRood",  # C1 CSI: would turn the terminal red
    "b@example.com": "\x1b]8;;http://e.nl\x07Klik",  # OSC 8: a hidden link
    "c@example.com": "[link=http://e.nl]Anna[/link]",  # rich markup
    "d@example.com": "Eva\u202eevil",  # right-to-left override
}
# What the stored names would send raw (rich's own styling escapes on a terminal are fine).
RAW = ("\x9b", "\x1b]8;;http://e.nl", "\x07", "\u202e")


def store(factory: sessionmaker[Session]) -> None:
    """Names stored the way old data (or a door with a gap) left them."""
    with factory() as session, session.begin():
        for email, name in NAMES.items():
            reader = subscriptions.add(session, email, None, datetime.now(UTC), basis="test")
            reader.name = name


def on_a_terminal(env: dict[str, str], *args: str) -> str:
    """What `newsletter …` writes to a real terminal (a pty), as text."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [NEWSLETTER, *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process is done writing
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks).decode("utf-8")


def test_the_list_shows_control_characters_and_markup_as_text(
    cli: Cli, factory: sessionmaker[Session], env: dict[str, str]
) -> None:
    store(factory)
    for listing in (cli("subscribers", "list").stdout, on_a_terminal(env, "subscribers", "list")):
        assert not any(raw in listing for raw in RAW)
        assert "\\x9b31mRood" in listing and "\\x1b]8;;http://e.nl\\x07Klik" in listing
        assert "[link=http://e.nl]Anna[/link]" in listing
        assert "Eva\\u202eevil" in listing


def test_exports_are_exact_data_and_safe_on_a_terminal(
    cli: Cli, factory: sessionmaker[Session], env: dict[str, str]
) -> None:
    store(factory)
    text = cli("subscribers", "export").stdout
    assert not any(raw in text for raw in ("\x9b", "\u202e"))  # JSON escapes them
    data = json.loads(text)
    assert {s["email"]: s["name"] for s in data["subscribers"]} == NAMES
    piped = cli("subscribers", "export", "--format", "csv").stdout  # to a file or a pipe: exact
    rows = list(csv.DictReader(io.StringIO(piped)))
    assert {r["email"]: r["name"] for r in rows} == NAMES
    shown = on_a_terminal(env, "subscribers", "export", "--format", "csv")
    assert not any(raw in shown for raw in RAW)
    assert "\\x9b31mRood" in shown
    assert not any(raw in on_a_terminal(env, "subscribers", "export") for raw in RAW)
