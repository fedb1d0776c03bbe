"""The composite setting values, parsed: SMTP and IMAP URLs, mailboxes, DKIM key files.

Plain functions from a string to a typed value or a ValueError that says what is wrong;
`settings.py` turns those into messages that name the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from email_validator import EmailNotValidError, validate_email

from newsletter.text import line_problem


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP relay."""

    host: str
    port: int
    security: Literal["none", "starttls", "tls"]
    username: str | None
    password: str | None


def parse_smtp_url(value: str) -> SmtpConfig:
    """Parse smtp://, smtp+starttls:// or smtps:// URLs with optional user:password@."""
    parts = urlsplit(value)
    schemes: dict[str, tuple[Literal["none", "starttls", "tls"], int]] = {
        "smtp": ("none", 25),
        "smtp+starttls": ("starttls", 587),
        "smtps": ("tls", 465),
    }
    if parts.scheme not in schemes:
        raise ValueError(
            f"scheme must be smtp://, smtp+starttls:// or smtps://, not {parts.scheme or 'none'}"
        )
    if not parts.hostname:
        raise ValueError("the URL has no host")
    security, default_port = schemes[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return SmtpConfig(parts.hostname, port, security, user, password)


@dataclass(frozen=True)
class ImapConfig:
    """Where the bounce mailbox is: host, security, login and the folder to read."""

    host: str
    port: int
    security: Literal["none", "starttls", "tls"]
    username: str
    password: str
    folder: str


def parse_imap_url(value: str) -> ImapConfig:
    """Parse imaps://user:password@host[:port]/FOLDER (or imap://, unencrypted, on loopback)."""
    parts = urlsplit(value)
    schemes: dict[str, tuple[Literal["none", "starttls", "tls"], int]] = {
        "imap": ("none", 143),
        "imaps": ("tls", 993),
    }
    if parts.scheme not in schemes:
        raise ValueError("scheme must be imaps:// (or imap://, unencrypted, on loopback only)")
    if not parts.hostname or not parts.username or parts.password is None:
        raise ValueError("give imaps://user:password@host[:port]/FOLDER")
    security, default_port = schemes[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapConfig(
        parts.hostname, port, security, unquote(parts.username), unquote(parts.password), folder
    )


def read_dkim_key(path: Path) -> Any:
    """A DKIM private key from a PEM file: RSA of at least 2048 bits, or Ed25519."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ValueError(f"{path}: RSA key of {key.key_size} bits; DKIM needs at least 2048")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(f"{path}: only RSA (at least 2048 bits) and Ed25519 keys sign DKIM")


def check_mailbox(value: str) -> str:
    """'Naam <adres@domein>' as it goes on the wire; raises ValueError saying what is wrong.

    One line without controls or encoded words, runs of spaces in the name made one, and an
    internationalised domain in its xn-- form.
    """
    problem = line_problem(value)
    if problem is not None:
        raise ValueError(problem)
    name, addr = parseaddr(value)
    name = " ".join(name.split())  # as a header shows it: runs of spaces are one
    if not addr or "@" not in addr:
        raise ValueError("must look like 'Naam <adres@domein>'")
    try:
        checked = validate_email(addr, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a usable address: {exc}") from None
    try:
        return str(Address(display_name=name, addr_spec=checked.ascii_email or addr))
    except (ValueError, IndexError) as exc:
        raise ValueError(f"not a usable address: {exc}") from None
