"""One-off mails (a sign-up's confirmation, and the like): rendered, built and handed over.

Each mail has three templates in templates/email/: `<name>.subject.txt.j2`, `<name>.mjml.j2`
and `<name>.txt.j2`, rendered with the house context and the mail's own values.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from newsletter.mail.rendering import compile_mjml, environment, house_context
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
    message = EmailMessage(policy=policy.SMTP.clone(cte_type="7bit"))
    message["From"] = settings.from_
    message["To"] = formataddr((to_name or "", to_email), charset="utf-8")
    message["Subject"] = subject
    message["Date"] = format_datetime(now.astimezone(settings.zone))
    message["Message-ID"] = make_msgid(idstring=name, domain=settings.sender_domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message.as_bytes()


def hand_over(settings: Settings, recipient: str, data: bytes) -> Verdict:
    """Send one mail through the configured relay (or the outbox) on a connection of its own.

    Raises RelayUnavailable when the relay cannot be reached.
    """
    transport = make_transport(settings)
    try:
        return transport.send(Envelope(settings.sender.addr_spec, recipient), data)
    finally:
        transport.close()
