"""Mail.

Rendering (Jinja, Markdown, MJML), message bytes, one-off mails and the transport (SMTP relay or
outbox).
"""
