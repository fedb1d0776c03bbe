"""Bounce reports for tests: the project's own fixtures filled in, a relay that bounces some
readers back to the envelope sender, and a real IMAP server (pymap) on loopback."""

from __future__ import annotations

import imaplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from tests.support.relays import Received, RecordingHandler, free_port

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reports"
PYMAP = str(Path(sys.executable).parent / "pymap")
SUBJECT = "Een open hand"


def fill(
    name: str,
    *,
    return_path: str,
    recipient: str,
    message_id: str,
    subject: str = SUBJECT,
) -> bytes:
    """The fixture `name` filled in, with CRLF line ends."""
    text = Template((FIXTURES / name).read_text(encoding="utf-8")).substitute(
        return_path=return_path, recipient=recipient, message_id=message_id, subject=subject
    )
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def about(received: Received, name: str, **changes: str) -> bytes:
    """The fixture `name` about a message the relay received (its envelope and Message-ID)."""
    values = {
        "return_path": received.mail_from,
        "recipient": received.rcpt_tos[0],
        "message_id": str(received.message["Message-ID"]),
        **changes,
    }
    return fill(name, **values)


@dataclass
class BouncingHandler(RecordingHandler):
    """Accepts every message; for the readers in `doomed`, also writes the report named there,
    addressed to the message's envelope sender, as the next hop would mail it back."""

    doomed: dict[str, str] = field(default_factory=dict)
    reports: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        fixture = self.doomed.get(envelope.rcpt_tos[0])
        if fixture is not None:
            with self.lock:
                self.reports.append(about(self.received[-1], fixture))
        return reply


@dataclass
class ImapServer:
    """A pymap server (in-memory) on loopback with one mailbox user."""

    port: int
    user: str = "bounces"
    password: str = "geheim-wachtwoord"

    def url(self, folder: str = "INBOX") -> str:
        return f"imap://{self.user}:{self.password}@127.0.0.1:{self.port}/{folder}"

    @contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            imap.login(self.user, self.password)
            yield imap
        finally:
            imap.logout()

    def append(self, data: bytes, folder: str = "INBOX") -> None:
        with self.session() as imap:
            status, _ = imap.append(folder, None, None, data)
            assert status == "OK"

    def subjects(self, folder: str) -> list[str]:
        """The Subject of every undeleted message in `folder`, in order."""
        with self.session() as imap:
            status, _ = imap.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, found = imap.uid("SEARCH", "UNDELETED")
            subjects = []
            for uid in found[0].split():
                _, data = imap.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                item = data[0]
                assert isinstance(item, tuple)
                subjects.append(item[1].decode().partition(":")[2].strip())
            return subjects

    def flags(self, folder: str = "INBOX") -> list[str]:
        with self.session() as imap:
            imap.select(f'"{folder}"', readonly=True)
            _, data = imap.fetch("1:*", "(FLAGS)")
            return [item.decode() for item in data if isinstance(item, bytes)]


@contextmanager
def imap_server() -> Iterator[ImapServer]:
    """pymap's in-memory backend in a process of its own, on a free loopback port."""
    server = ImapServer(free_port())
    process = subprocess.Popen(
        [
            *(PYMAP, "--host", "127.0.0.1", "--port", str(server.port), "--no-tls", "dict"),
            *("--demo-user", server.user, "--demo-password", server.password),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("pymap did not start") from None
                time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
