"""Real SMTP relays on loopback (aiosmtpd): one that records what it accepts, one that replies
from a script, and the helpers to start them and read what they received."""

from __future__ import annotations

import socket
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One message as the relay accepted it: envelope and raw bytes."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def body_of(message: EmailMessage, subtype: str) -> str:
    """The decoded text of the message's text/`subtype` part ("plain" or "html"), which must exist."""
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that keeps every message it accepts."""

    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 OK queued"


@dataclass
class ScriptedHandler:
    """Replies per recipient from a script: the n-th try of an address gets the n-th reply."""

    rcpt: dict[str, list[str | None]] = field(default_factory=dict)
    data: dict[str, list[str | None]] = field(default_factory=dict)
    mail: list[str | None] = field(default_factory=list)
    tries: Counter[str] = field(default_factory=Counter)
    data_tries: Counter[str] = field(default_factory=Counter)
    mail_tries: int = 0
    accepted: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    offered_ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    pipelining: bool = False

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:  # RFC 2920: the engine then sends MAIL, RCPT and DATA in one write
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        n, self.mail_tries = self.mail_tries, self.mail_tries + 1
        reply = self.mail[n] if n < len(self.mail) else None
        if reply:
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        n = self.tries[address]
        self.tries[address] += 1
        script = self.rcpt.get(address, [])
        reply = script[n] if n < len(script) else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0]
        message_id = message_from_bytes(envelope.original_content, policy=policy.default)[
            "Message-ID"
        ]
        self.offered_ids[rcpt].append(message_id)
        n = self.data_tries[rcpt]
        self.data_tries[rcpt] += 1
        script = self.data.get(rcpt, [])
        action = script[n] if n < len(script) else None
        if action == "drop":
            server.transport.close()  # the connection dies in the middle of DATA
            return "421 gone"
        if action:
            return action
        self.accepted[rcpt].append(message_id)
        return "250 2.0.0 queued"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_smtp(handler: Any, port: int | None = None) -> Controller:
    """An aiosmtpd server for `handler` on loopback, started; the caller stops it."""
    controller = Controller(
        handler, hostname="127.0.0.1", port=port or free_port(), decode_data=False
    )
    controller.start()
    return controller


@dataclass
class SmtpServer:
    """A running recording relay: its URL for NEWSLETTER_SMTP_URL and what it received."""

    handler: Any
    controller: Controller

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    @property
    def received(self) -> list[Received]:
        return list(self.handler.received)
