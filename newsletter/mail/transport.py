"""Ways to hand a message over: an SMTP relay, or .eml files in the outbox folder.

Every SMTP reply is classified here, in one place: accepted, temporary (try again later) or
permanent. RFC 5321 §4.2.1: 4yz is temporary, 5yz permanent, except that 552 to RCPT counts as
452 (§4.5.3.1.10).
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from newsletter.settings import SmtpConfig

THROTTLE_CODES = frozenset({421, 450, 451, 454})


@dataclass(frozen=True)
class Outcome:
    """What the relay said about one message."""

    accepted: bool
    temporary: bool = False
    code: int | None = None
    reply: str = ""

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES


ACCEPTED = Outcome(accepted=True, code=250, reply="accepted")


class RelayUnavailable(ConnectionError):
    """The relay could not be reached at all: nothing was handed over."""


class Transport(Protocol):
    """Hands one message for one recipient to the next hop."""

    def send(self, envelope_from: str, recipient: str, data: bytes, name: str) -> Outcome: ...

    def close(self) -> None: ...


def classify(code: int, reply: bytes | str, *, stage: str) -> Outcome:
    """An SMTP reply as an Outcome; `stage` is MAIL, RCPT or DATA."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())[:400]
    if 200 <= code < 300:
        return Outcome(accepted=True, code=code, reply=text)
    temporary = 400 <= code < 500 or (code == 552 and stage == "RCPT")
    return Outcome(accepted=False, temporary=temporary, code=code, reply=f"{stage}: {text}")


class OutboxTransport:
    """Writes each message as an .eml file: the embedded default, for trying things out."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, envelope_from: str, recipient: str, data: bytes, name: str) -> Outcome:
        target = self.folder / f"{name}.eml"
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
            os.replace(temporary, target)
        except OSError as exc:
            return Outcome(accepted=False, temporary=True, reply=f"outbox: {exc}")
        return ACCEPTED

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


def _failed(connection: smtplib.SMTP, code: int) -> None:
    # 421: the server is closing the channel; otherwise reset the transaction for the next one.
    if code == 421:
        connection.close()
    else:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            connection.rset()


def _transaction(connection: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> None:
    """One message, one recipient, on an open connection; raises smtplib's error types.

    The same commands as smtplib's sendmail(), without its per-message regex over the whole body
    and its address re-parsing: the bytes come CRLF-clean from composing, and the addresses were
    validated when they were stored (ASCII, no spaces or brackets). Where the server offers
    PIPELINING (RFC 2920), MAIL, RCPT and DATA go out in one write: two round trips, not four.
    """
    mail, rcpt = f"FROM:<{sender}>", f"TO:<{recipient}>"
    if connection.has_extn("pipelining"):
        connection.send(f"MAIL {mail}\r\nRCPT {rcpt}\r\nDATA\r\n".encode("ascii"))
        replies = [connection.getreply() for _ in range(3)]
    else:
        replies = [connection.docmd("MAIL", mail)]
        if replies[0][0] == 250:
            replies.append(connection.docmd("RCPT", rcpt))
            if replies[1][0] in (250, 251):
                replies.append(connection.docmd("DATA"))
    (mail_code, mail_reply), *rest = replies
    if mail_code != 250:
        _abandon(connection, replies, mail_code)
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
    rcpt_code, rcpt_reply = rest[0]
    if rcpt_code not in (250, 251):
        _abandon(connection, replies, rcpt_code)
        raise smtplib.SMTPRecipientsRefused({recipient: (rcpt_code, rcpt_reply)})
    data_code, data_reply = rest[1]
    if data_code != 354:
        _failed(connection, data_code)
        raise smtplib.SMTPDataError(data_code, data_reply)
    connection.send(dot_stuffed(data))
    code, reply = connection.getreply()
    if code != 250:
        _failed(connection, code)
        raise smtplib.SMTPDataError(code, reply)


def _abandon(connection: smtplib.SMTP, replies: list[tuple[int, bytes]], code: int) -> None:
    """End a refused transaction; a server that said 354 anyway gets an empty message ended."""
    if len(replies) == 3 and replies[2][0] == 354:
        connection.send(b".\r\n")
        connection.getreply()
    _failed(connection, code)


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
        try:
            connection: smtplib.SMTP
            if config.security == "tls":
                connection = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=self.timeout, context=context
                )
            else:
                connection = smtplib.SMTP(config.host, config.port, timeout=self.timeout)
            connection.ehlo()
            if config.security == "starttls":
                connection.starttls(context=context)
                connection.ehlo()
            if config.username:
                connection.login(config.username, config.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise RelayUnavailable(
                f"the relay at {config.host}:{config.port} refused the login ({exc.smtp_code})"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayUnavailable(
                f"cannot reach the SMTP relay at {config.host}:{config.port}: {exc}"
            ) from None
        self.connections_opened += 1
        self._sent_on_connection = 0
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def send(self, envelope_from: str, recipient: str, data: bytes, name: str) -> Outcome:
        if self._connection is not None and self._sent_on_connection >= self.max_messages:
            self.close()
        if self._connection is None:
            self._connection = self._open()
        connection = self._connection
        try:
            _transaction(connection, envelope_from, recipient, data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = exc.recipients[recipient]
            return self._after_error(classify(code, reply, stage="RCPT"))
        except smtplib.SMTPSenderRefused as exc:
            return self._after_error(classify(exc.smtp_code, exc.smtp_error, stage="MAIL"))
        except smtplib.SMTPDataError as exc:
            return self._after_error(classify(exc.smtp_code, exc.smtp_error, stage="DATA"))
        except smtplib.SMTPResponseException as exc:
            self._drop()
            return classify(exc.smtp_code, exc.smtp_error, stage="SMTP")
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            # A dropped connection or a time-out: whether the relay kept the message is unknown.
            self._drop()
            reason = str(exc) or type(exc).__name__
            return Outcome(accepted=False, temporary=True, reply=f"connection: {reason}"[:400])
        self._sent_on_connection += 1
        return ACCEPTED

    def _after_error(self, outcome: Outcome) -> Outcome:
        # smtplib has already sent RSET, or closed the socket after a 421.
        if self._connection is not None and self._connection.sock is None:
            self._drop()
        return outcome

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
