"""Ways to hand a message over: an SMTP relay, or .eml files in the outbox folder.

A transport takes an envelope and the message bytes and answers with a typed `Verdict`. Every
SMTP reply is classified here, in one place (RFC 5321 §4.2.1): 2yz accepted, 4yz temporary,
5yz permanent, except that 552 to RCPT counts as 452 (§4.5.3.1.10).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import itertools
import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from newsletter.config_values import SmtpConfig
from newsletter.i18n import _
from newsletter.settings import Settings

THROTTLE_CODES = frozenset({421, 450, 451, 454})
# A file system that cannot make hard links (FAT, some network shares) says so with these.
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})


class Kind(enum.StrEnum):
    ACCEPTED = "accepted"
    TEMPORARY = "temporary"  # try again later
    PERMANENT = "permanent"


class Stage(enum.StrEnum):
    """Where in the hand-over the answer came."""

    CONNECTION = "connection"  # dropped, timed out, or refused before a reply
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    SMTP = "SMTP"  # a reply outside the transaction (e.g. a 421 while reading)
    OUTBOX = "outbox"


@dataclass(frozen=True)
class Envelope:
    """SMTP's envelope: the return path and the one recipient."""

    sender: str
    recipient: str


@dataclass(frozen=True)
class Verdict:
    """What the next hop said about one message."""

    kind: Kind
    stage: Stage
    code: int | None = None
    text: str = ""

    @property
    def accepted(self) -> bool:
        return self.kind is Kind.ACCEPTED

    @property
    def temporary(self) -> bool:
        return self.kind is Kind.TEMPORARY

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES

    def describe(self) -> str:
        """One line for the ledger and `newsletter status`: 'RCPT: 5.1.1 User unknown'."""
        return self.text if self.accepted else f"{self.stage}: {self.text}"[:500]


ACCEPTED = Verdict(Kind.ACCEPTED, Stage.DATA, 250, "accepted")


class RelayUnavailable(ConnectionError):
    """The relay could not be reached at all: nothing was handed over."""


class RelayRefuses(RelayUnavailable):
    """The relay answers but refuses to send for us (EHLO, AUTH, MAIL FROM, or everyone)."""

    def __str__(self) -> str:
        return _("the relay refuses to send: {reason}").format(reason=super().__str__())


class Transport(Protocol):
    """Hands one message for one recipient to the next hop."""

    def send(self, envelope: Envelope, data: bytes) -> Verdict: ...

    def close(self) -> None: ...


def classify(code: int, reply: bytes | str, *, stage: Stage) -> Verdict:
    """An SMTP reply as a Verdict."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())[:400]
    if 200 <= code < 300:
        return Verdict(Kind.ACCEPTED, stage, code, text)
    temporary = 400 <= code < 500 or (code == 552 and stage is Stage.RCPT)
    return Verdict(Kind.TEMPORARY if temporary else Kind.PERMANENT, stage, code, text)


def connection_lost(exc: BaseException) -> Verdict:
    """A dropped connection or a time-out: whether the relay kept the message is unknown."""
    reason = str(exc) or type(exc).__name__
    return Verdict(Kind.TEMPORARY, Stage.CONNECTION, None, reason[:400])


def _safe(recipient: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "@.-_" else "_" for ch in recipient)[:100]


class OutboxTransport:
    """Writes each message as an .eml file, named by time, sequence and recipient.

    The embedded default, for trying things out: one folder, files sorting in the order written.
    """

    _sequence = itertools.count(1)

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _target(self, recipient: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return self.folder / f"{stamp}-{next(self._sequence):06d}-{_safe(recipient)}.eml"

    def send(self, envelope: Envelope, data: bytes) -> Verdict:
        """Write the file whole, then give it its name: a reader never sees half a message."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f".{os.getpid()}-{next(self._sequence)}.partial"
            partial.write_bytes(data)
            try:
                while True:
                    target = self._target(envelope.recipient)
                    try:
                        os.link(partial, target)  # never overwrites
                    except FileExistsError:
                        continue  # another process took that name: the next sequence number
                    except OSError as exc:
                        if exc.errno not in _NO_LINKS:
                            raise
                        with target.open("xb") as handle:  # a file system without hard links
                            handle.write(data)
                    return ACCEPTED
            finally:
                partial.unlink()
        except OSError as exc:
            return Verdict(Kind.TEMPORARY, Stage.OUTBOX, None, str(exc)[:400])

    def close(self) -> None:
        pass


def dot_stuffed(data: bytes) -> bytes:
    """The DATA payload with its terminator (RFC 5321 §4.5.2); `data` has CRLF line ends."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class _Refused(Exception):
    """One transaction's refusal, with its stage."""

    def __init__(self, stage: Stage, code: int, reply: bytes) -> None:
        self.stage, self.code, self.reply = stage, code, reply


def _failed(connection: smtplib.SMTP, code: int) -> None:
    # 421: the server is closing the channel; otherwise reset the transaction for the next one.
    if code == 421:
        connection.close()
    else:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            connection.rset()


def _abandon(connection: smtplib.SMTP, replies: list[tuple[int, bytes]], code: int) -> None:
    """End a refused transaction; a server that said 354 anyway gets an empty message ended."""
    if len(replies) == 3 and replies[2][0] == 354:
        connection.send(b".\r\n")
        connection.getreply()
    _failed(connection, code)


def _transaction(connection: smtplib.SMTP, envelope: Envelope, data: bytes) -> None:
    """One message, one recipient, on an open connection; raises _Refused or smtplib's errors.

    The same commands as smtplib's sendmail(), without its per-message regex over the whole body
    and its address re-parsing: the bytes come CRLF-clean from composing, and the addresses were
    validated when they were stored (ASCII, no spaces or brackets). Where the server offers
    PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write: two round trips, not four.
    """
    mail, rcpt = f"FROM:<{envelope.sender}>", f"TO:<{envelope.recipient}>"
    if connection.has_extn("pipelining"):
        connection.send(f"MAIL {mail}\r\nRCPT {rcpt}\r\nDATA\r\n".encode("ascii"))
        replies = [connection.getreply() for _ in range(3)]
    else:
        replies = [connection.docmd("MAIL", mail)]
        if replies[0][0] == 250:
            replies.append(connection.docmd("RCPT", rcpt))
            if replies[1][0] in (250, 251):
                replies.append(connection.docmd("DATA"))
    for stage, wanted, index in ((Stage.MAIL, (250,), 0), (Stage.RCPT, (250, 251), 1)):
        code, reply = replies[index]
        if code not in wanted:
            _abandon(connection, replies, code)
            raise _Refused(stage, code, reply)
    code, reply = replies[2]
    if code == 354:
        connection.send(dot_stuffed(data))
        code, reply = connection.getreply()
        if code == 250:
            return
    _failed(connection, code)
    raise _Refused(Stage.DATA, code, reply)


class SmtpTransport:
    """One SMTP connection, reused for many messages and reopened after a limit or an error."""

    def __init__(self, config: SmtpConfig, *, timeout: float, max_messages: int) -> None:
        self.config = config
        self.timeout = timeout
        self.max_messages = max_messages
        self._connection: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self.connections_opened = 0

    def _open(self) -> smtplib.SMTP:
        config = self.config
        context = ssl.create_default_context()
        connection: smtplib.SMTP | None = None
        try:
            if config.security == "tls":
                connection = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=self.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(config.host, config.port, timeout=self.timeout)
            connection.ehlo_or_helo_if_needed()  # SMTPHeloError when both are refused
            if config.security == "starttls":
                connection.starttls(context=context)
                connection.ehlo_or_helo_if_needed()
            if config.username:
                connection.login(config.username, config.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(connection)
            raise RelayRefuses(
                _("{host}:{port} refused the login ({code})").format(
                    host=config.host, port=config.port, code=exc.smtp_code
                )
            ) from None
        except smtplib.SMTPResponseException as exc:
            # A greeting, EHLO or STARTTLS answered with a refusal: the relay is there, and says no.
            _close_quietly(connection)
            reply = classify(exc.smtp_code, exc.smtp_error, stage=Stage.SMTP).text
            raise RelayRefuses(
                _("{host}:{port} answered {code} {reply}").format(
                    host=config.host, port=config.port, code=exc.smtp_code, reply=reply
                )
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(connection)
            raise RelayUnavailable(
                _("cannot reach the SMTP relay at {host}:{port}: {reason}").format(
                    host=config.host, port=config.port, reason=exc
                )
            ) from None
        self.connections_opened += 1
        self._sent_on_connection = 0
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        _close_quietly(connection)

    def send(self, envelope: Envelope, data: bytes) -> Verdict:
        if self._connection is not None and self._sent_on_connection >= self.max_messages:
            self.close()
        if self._connection is None:
            self._connection = self._open()
        connection = self._connection
        try:
            _transaction(connection, envelope, data)
        except _Refused as refused:
            if connection.sock is None:  # a 421 closed it
                self._drop()
            return classify(refused.code, refused.reply, stage=refused.stage)
        except smtplib.SMTPResponseException as exc:
            self._drop()
            return classify(exc.smtp_code, exc.smtp_error, stage=Stage.SMTP)
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()
            return connection_lost(exc)
        self._sent_on_connection += 1
        return ACCEPTED

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()


def _close_quietly(connection: smtplib.SMTP | None) -> None:
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.close()


def make_transport(settings: Settings) -> Transport:
    """The configured relay, or the outbox folder when no NEWSLETTER_SMTP_URL is set."""
    smtp = settings.smtp
    if smtp is None:
        return OutboxTransport(settings.outbox_dir)
    return SmtpTransport(
        smtp, timeout=settings.smtp_timeout, max_messages=settings.smtp_messages_per_connection
    )
