"""Build each recipient's message bytes from pieces encoded once per edition.

Building an `EmailMessage` per recipient costs milliseconds; here the headers and both bodies are
encoded once (quoted-printable, 7-bit clean), and per recipient only the To header, the
Message-ID, the unsubscribe URL and the greeting are encoded and spliced in between soft line
breaks. The result parses back to the same message an `EmailMessage` would give.
"""

from __future__ import annotations

import quopri
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from urllib.parse import quote

from newsletter.mail.rendering import Markers, greeting, slot_values, split_on_markers
from newsletter.settings import Settings

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # what stays as it is when a URL is made ASCII for a header


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    name: str | None
    unsubscribe_url: str


def _qp(data: str) -> bytes:
    encoded = quopri.encodestring(data.encode("utf-8"))
    return encoded.replace(b"\n", CRLF)


def _encoded_headers(**headers: str) -> bytes:
    """Headers as the email package writes them: RFC 2047 where needed, folded, ASCII."""
    message = EmailMessage(policy=policy.SMTP)
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    block = message.as_bytes()
    return block.split(b"\r\n\r\n", 1)[0] + CRLF


class _Body:
    """One text part, pre-encoded: static pieces as bytes, slots for the personal parts."""

    def __init__(self, document: str, markers: Markers, *, html: bool) -> None:
        self.html = html
        self.pieces: list[bytes | int] = []
        for piece in split_on_markers(document, markers):
            if isinstance(piece, int):
                self.pieces.append(piece)
            elif piece:
                encoded = _qp(piece)
                if not encoded.endswith(CRLF):
                    encoded += SOFT_BREAK
                self.pieces.append(encoded)

    def encode(self, greeting_text: str, url: str) -> bytes:
        values = slot_values(greeting_text, url, html=self.html)
        out: list[bytes] = []
        for piece in self.pieces:
            if isinstance(piece, int):
                out.append(_qp(values[piece]) + SOFT_BREAK)
            else:
                out.append(piece)
        body = b"".join(out)
        return body if body.endswith(CRLF) else body + CRLF


class EditionMessage:
    """The edition's message, ready to be stamped out per recipient."""

    def __init__(
        self,
        settings: Settings,
        *,
        subject: str,
        html: str,
        text: str,
        seed: str,
        archive_url: str | None = None,
    ) -> None:
        markers = Markers.for_seed(seed)
        self.seed = seed
        self.domain = settings.sender_domain
        self.envelope_from = settings.sender.addr_spec
        self.zone = settings.zone
        boundary = f"=_nl_{seed}"  # "=_" cannot occur in quoted-printable text
        list_id = f"{settings.list_name} <{settings.effective_list_id}>"
        self.head = _encoded_headers(From=settings.from_, Subject=subject)
        self.list_headers = (
            _encoded_headers(
                List_Id=list_id,
                List_Unsubscribe_Post="List-Unsubscribe=One-Click",
                Precedence="bulk",
                Auto_Submitted="auto-generated",
                MIME_Version="1.0",
            )
            # RFC 2369: unencoded and unfolded, like List-Unsubscribe; the same for every reader.
            + (
                f"List-Archive: <{quote(archive_url, safe=URL_SAFE)}>\r\n" if archive_url else ""
            ).encode()
            + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
        )
        part_head = (
            'Content-Type: text/{}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self.text_head = f"--{boundary}\r\n{part_head.format('plain')}".encode()
        self.html_head = f"--{boundary}\r\n{part_head.format('html')}".encode()
        self.tail = f"--{boundary}--\r\n".encode()
        self.text = _Body(text, markers, html=False)
        self.html = _Body(html, markers, html=True)

    def message_id(self, delivery_id: int) -> str:
        """Stable per delivery, so a retry carries the same Message-ID."""
        return f"<{self.seed}.{delivery_id}@{self.domain}>"

    def build(self, recipient: Recipient, now: datetime) -> bytes:
        """The full message for one recipient, CRLF line ends, 7-bit clean."""
        to = formataddr((recipient.name or "", recipient.email), charset="utf-8")
        greeting_text = greeting(recipient.name)
        url = recipient.unsubscribe_url
        personal = (
            f"To: {to}\r\n"
            f"Date: {format_datetime(now.astimezone(self.zone))}\r\n"
            f"Message-ID: {self.message_id(recipient.delivery_id)}\r\n"
            f"List-Unsubscribe: <{url}>\r\n"
        ).encode("ascii")
        return b"".join(
            (
                self.head,
                personal,
                self.list_headers,
                self.text_head,
                self.text.encode(greeting_text, url),
                self.html_head,
                self.html.encode(greeting_text, url),
                self.tail,
            )
        )
