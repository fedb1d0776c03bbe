"""Mail that comes back, read into typed reports: delivery status notifications (RFC 3464),
complaints (ARF, RFC 5965), bounces of MTAs that send no DSN (via flufl.bounce), auto-replies.

Only reading happens here: which delivery a report names, and what to do about it, is decided by
`newsletter.delivery.bounces`. Nothing in a report is trusted to name a reader by itself; it
yields the addresses it was sent to (where a VERP tag sits), the Message-IDs it quotes, and the
per-recipient statuses. Any input gives a report; malformed mail is `OTHER`, never an error.
"""

from __future__ import annotations

import email
import enum
import re
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.utils import getaddresses

_MESSAGE_ID = re.compile(r"^message-id:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_RETURN_PATH = re.compile(r"^return-path:[ \t]*<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(r"\b([245])\.([0-7])\.(\d{1,3})\b")
_ADDRESSED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
_MAILER = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)


class Kind(enum.StrEnum):
    DSN = "dsn"  # multipart/report; report-type=delivery-status, or an MTA's own bounce format
    COMPLAINT = "complaint"  # multipart/report; report-type=feedback-report
    AUTO_REPLY = "auto-reply"  # vacation and out-of-office notices (RFC 3834)
    OTHER = "other"


class Severity(enum.StrEnum):
    HARD = "hard"  # the address is gone: 5.1.x, 5.2.1, or an MTA's words for it
    SOFT = "soft"  # delayed, 4.x.x, mailbox full, blocked as policy, other 5.x.x
    NONE = "none"  # delivered, relayed, expanded: nothing to do


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's part of a report."""

    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # the enhanced status code, e.g. 5.1.1
    recipient: str  # Final-Recipient (or the address an MTA named)
    original_recipient: str = ""
    diagnostic: str = ""
    permanent_wording: bool = False  # flufl.bounce found a permanent failure in the prose

    @property
    def severity(self) -> Severity:
        if self.action not in ("failed", "delayed"):
            return Severity.NONE
        if self.action == "failed" and (
            re.fullmatch(r"5\.(1\.\d+|2\.1)", self.status)
            or (self.permanent_wording and self.status in ("", "5.0.0"))
        ):
            return Severity.HARD
        return Severity.SOFT

    def describe(self) -> str:
        return " ".join(f"{self.action} {self.status} {self.diagnostic}".split())[:500]


@dataclass(frozen=True)
class Report:
    kind: Kind
    subject: str = ""
    sender: str = ""
    addressed_to: tuple[str, ...] = ()  # where the report was delivered (VERP tags sit here)
    return_paths: tuple[str, ...] = ()  # return paths of the quoted original (ARF)
    message_ids: tuple[str, ...] = ()  # Message-IDs of the quoted original
    recipients: tuple[RecipientStatus, ...] = ()
    feedback_type: str = ""
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.kind} from {self.sender or '?'}: {self.subject or '(no subject)'}"[:300]


def _text(message: Message, name: str) -> str:
    try:
        return " ".join(str(message.get(name, "") or "").split())
    except Exception:  # a header the parser cannot even turn into text
        return ""


def _addresses(message: Message, names: tuple[str, ...]) -> tuple[str, ...]:
    values = [str(v) for name in names for v in (message.get_all(name) or [])]
    return tuple(addr.lower() for _, addr in getaddresses(values) if "@" in addr)


def _address_field(value: str) -> str:
    """'rfc822; Anna@Example.com' → 'anna@example.com'."""
    address = value.partition(";")[2] if ";" in value else value
    return address.strip().strip("<>").strip().lower()


def _quoted(part: Message) -> str:
    """The text of a quoted original (message/rfc822 or text/rfc822-headers part)."""
    payload = part.get_payload(decode=False)
    if isinstance(payload, list):
        return "\n".join(item.as_string() for item in payload if isinstance(item, Message))
    if isinstance(payload, str):
        raw = part.get_payload(decode=True)
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else payload
    return ""


def _originals(message: Message) -> str:
    texts = []
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            texts.append(_quoted(part))
    return "\n".join(texts)


def _refines(status: str, code: str) -> bool:
    """A bare x.0.0 Status says less than the same class's code in the remote server's reply."""
    return status.endswith(".0.0") and status[0] == code[0]


def _dsn_recipients(message: Message) -> tuple[RecipientStatus, ...]:
    found: list[RecipientStatus] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the message, the rest per recipient
            if not isinstance(block, Message):
                continue
            status = _STATUS.search(_text(block, "Status"))
            diagnostic = _text(block, "Diagnostic-Code")
            code = _STATUS.search(diagnostic)
            chosen = status
            if code and (status is None or _refines(status.group(0), code.group(0))):
                chosen = code
            found.append(
                RecipientStatus(
                    action=_text(block, "Action").lower(),
                    status=chosen.group(0) if chosen else "",
                    recipient=_address_field(_text(block, "Final-Recipient")),
                    original_recipient=_address_field(_text(block, "Original-Recipient")),
                    diagnostic=diagnostic.partition(";")[2].strip() or diagnostic,
                )
            )
    return tuple(found)


def _feedback(message: Message) -> tuple[str, tuple[str, ...]]:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            fields: Message = part
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                fields = payload[0]
            elif isinstance(payload, str):
                fields = email.message_from_string(payload.lstrip(), policy=policy.compat32)
            mail_from = _address_field(_text(fields, "Original-Mail-From"))
            return _text(fields, "Feedback-Type").lower(), (mail_from,) if mail_from else ()
    return "", ()


def _body_text(message: Message) -> str:
    """Every text part of the message, decoded, without the top-level header."""
    texts = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                texts.append(raw.decode("utf-8", "replace"))
    return "\n".join(texts)


def _prose_failures(message: Message) -> tuple[RecipientStatus, ...]:
    """A bounce in an MTA's own words (no DSN): flufl.bounce names the failed addresses."""
    from flufl.bounce import all_failures  # here: only reading bounces needs its detectors

    temporary, permanent = all_failures(message)
    code = _STATUS.search(_body_text(message))
    status = code.group(0) if code else ""
    found = [
        RecipientStatus(
            "failed", status, a.decode("ascii", "replace").lower(), permanent_wording=True
        )
        for a in sorted(permanent)
    ]
    found += [
        RecipientStatus(
            "delayed",
            status if status.startswith("4") else "4.0.0",
            a.decode("ascii", "replace").lower(),
        )
        for a in sorted(temporary - permanent)
    ]
    return tuple(found)


def _is_auto_reply(message: Message) -> bool:
    """RFC 3834 and the common older markers, from a person's mailbox, not from an MTA."""
    auto = _text(message, "Auto-Submitted").lower()
    marked = (
        auto.startswith("auto-replied")
        or bool(message.get("X-Autoreply") or message.get("X-Autorespond"))
        or _text(message, "Precedence").lower() == "auto_reply"
        or bool(
            re.match(
                r"(automatic reply|auto(matisch)? ?(reply|antwoord)|out of (the )?office|afwezig)",
                _text(message, "Subject"),
                re.IGNORECASE,
            )
        )
    )
    from_mailer = bool(_MAILER.search(_text(message, "From"))) or bool(
        message.get("X-Failed-Recipients")
    )
    return marked and not from_mailer


def parse(data: bytes) -> Report:
    """Read one message; never raises."""
    try:
        return _parse(email.message_from_bytes(data, policy=policy.compat32))
    except Exception as exc:  # malformed beyond what the parser tolerates: not a report of ours
        return Report(Kind.OTHER, notes=[f"unreadable: {type(exc).__name__}"])


def _parse(message: Message) -> Report:
    subject, sender = _text(message, "Subject"), _text(message, "From")
    addressed_to = _addresses(message, _ADDRESSED_TO)
    originals = _originals(message)
    ids = tuple(dict.fromkeys(_MESSAGE_ID.findall(originals)))
    report_type = str(message.get_param("report-type", "") or "").lower()
    is_report = message.get_content_type() == "multipart/report"
    if is_report and report_type == "feedback-report":
        feedback_type, mail_from = _feedback(message)
        quoted = tuple(path.lower() for path in _RETURN_PATH.findall(originals))
        return Report(
            Kind.COMPLAINT,
            subject,
            sender,
            addressed_to,
            return_paths=tuple(dict.fromkeys(mail_from + quoted)),
            message_ids=ids,
            feedback_type=feedback_type,
        )
    if is_report and report_type == "delivery-status":
        recipients = _dsn_recipients(message)
        return Report(Kind.DSN, subject, sender, addressed_to, (), ids, recipients)
    if _is_auto_reply(message):
        return Report(Kind.AUTO_REPLY, subject, sender, addressed_to)
    recipients = _prose_failures(message)
    if recipients:
        if not ids:  # an MTA's bounce quotes the original inline, after its own text
            ids = tuple(dict.fromkeys(_MESSAGE_ID.findall(_body_text(message))))
        return Report(Kind.DSN, subject, sender, addressed_to, (), ids, recipients)
    return Report(Kind.OTHER, subject, sender, addressed_to)
