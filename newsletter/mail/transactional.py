"""One-off mails (a sign-up's confirmation, and the like): rendered, built, signed, handed over.

Each mail has three templates in templates/email/: `<name>.subject.txt.j2`, `<name>.mjml.j2`
and `<name>.txt.j2`, rendered with the house context and the mail's own values.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from newsletter.mail import dkim
from newsletter.mail.rendering import compile_mjml
from newsletter.mail.slots import environment, house_context
from newsletter.mail.transport import Envelope, Verdict, make_transport
from newsletter.settings import Settings


def compose(
    settings: Settings,
    name: str,
    *,
    to_email: str,
    to_name: str | None,
    now: datetime,
    **values: Any,
) -> bytes:
    """The mail `name` for one reader: MJML HTML and plain text, multipart/alternative, 7-bit."""
    context = {**house_context(settings), **values}
    env = environment()
    subject = " ".join(env.get_template(f"email/{name}.subject.txt.j2").render(context).split())
    html = compile_mjml(env.get_template(f"email/{name}.mjml.j2").render(context), name)
    text = env.get_template(f"email/{name}.txt.j2").render(context)
    # Quoted-printable lines of at most 76 characters (RFC 2045 §6.7), headers folded to match.
    message = EmailMessage(policy=policy.SMTP.clone(cte_type="7bit", max_line_length=76))
    sender = settings.transactional_sender
    message["From"] = settings.transactional_from or settings.from_
    message["To"] = formataddr((to_name or "", to_email), charset="utf-8")
    message["Subject"] = subject
    message["Date"] = format_datetime(now.astimezone(settings.zone))
    message["Message-ID"] = make_msgid(idstring=name, domain=sender.domain)
    message["Feedback-ID"] = f"{name}:mail:{settings.feedback_sender_id}"
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "nl"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    data = message.as_bytes()
    signer = dkim.signer_for(settings)
    return data if signer is None else signer.sign_message(data)


def hand_over(settings: Settings, recipient: str, data: bytes) -> Verdict:
    """Send one mail through the configured relay (or the outbox) on a connection of its own,
    from NEWSLETTER_TRANSACTIONAL_FROM's address (default: NEWSLETTER_FROM's).

    Raises RelayUnavailable when the relay cannot be reached.
    """
    transport = make_transport(settings)
    try:
        return transport.send(Envelope(settings.transactional_sender.addr_spec, recipient), data)
    finally:
        transport.close()
