"""The composite setting values, parsed: SMTP and IMAP URLs, mailboxes, DKIM key files.

Plain functions from a string to a typed value or a ValueError that says what is wrong;
`settings.py` turns those into messages that name the variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from email_validator import EmailNotValidError, validate_email

from newsletter.i18n import N_, _
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
            _("scheme must be smtp://, smtp+starttls:// or smtps://, not {scheme}").format(
                scheme=parts.scheme or "none"
            )
        )
    if not parts.hostname:
        raise ValueError(_("the URL has no host"))
    security, default_port = schemes[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(_("bad port: {reason}").format(reason=exc)) from None
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
        raise ValueError(_("scheme must be imaps:// (or imap://, unencrypted, on loopback only)"))
    if not parts.hostname or not parts.username or parts.password is None:
        raise ValueError(_("give imaps://user:password@host[:port]/FOLDER"))
    security, default_port = schemes[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(_("bad port: {reason}").format(reason=exc)) from None
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
        raise ValueError(
            _("cannot read {path}: {reason}").format(path=path, reason=exc.strerror or exc)
        ) from None
    except (ValueError, TypeError) as exc:
        raise ValueError(
            _("{path} is not an unencrypted PEM private key ({reason})").format(
                path=path, reason=exc
            )
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ValueError(
                _("{path}: RSA key of {bits} bits; DKIM needs at least 2048").format(
                    path=path, bits=key.key_size
                )
            )
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(
        _("{path}: only RSA (at least 2048 bits) and Ed25519 keys sign DKIM").format(path=path)
    )


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
        raise ValueError(_("must look like 'Naam <adres@domein>'"))
    try:
        checked = validate_email(addr, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(_("not a usable address: {reason}").format(reason=exc)) from None
    try:
        return str(Address(display_name=name, addr_spec=checked.ascii_email or addr))
    except (ValueError, IndexError) as exc:
        raise ValueError(_("not a usable address: {reason}").format(reason=exc)) from None


def split_list(value: Any) -> Any:
    """A comma-separated variable as a list of its non-empty items (other values as given)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def check_bounce_address(value: str | None) -> str | None:
    """NEWSLETTER_BOUNCE_ADDRESS: a plain address with room for a VERP tag; None if unset."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    local, _at, domain = value.rpartition("@")
    if not local or not domain or not re.fullmatch(r"[A-Za-z0-9._=-]+@[A-Za-z0-9.-]+", value):
        raise ValueError(_("a plain address without '+', e.g. bounces@nieuws.example.nl"))
    if len(local) > 64 - 33:  # '+' and a 32-character tag follow the local part (<= 64)
        raise ValueError(
            _("the part before @ may have at most {count} characters").format(count=64 - 33)
        )
    return value


def check_feedback_sender_id(value: str) -> str:
    """NEWSLETTER_FEEDBACK_SENDER_ID: Gmail's SenderId in the Feedback-ID header."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{5,15}", value):
        raise ValueError(_("5 to 15 letters, digits, '.', '_' or '-' (Gmail's SenderId)"))
    return value


def check_dkim_key_files(value: str | None) -> str | None:
    """NEWSLETTER_DKIM_KEY_FILE: one key, or two of different kinds, each readable."""
    if value is None or not value.strip():
        return None
    paths = [Path(item) for item in split_list(value)]
    kinds = {type(read_dkim_key(path)).__name__ for path in paths}
    if len(paths) > 2 or len(kinds) != len(paths):
        raise ValueError(_("give one key, or two of different kinds (RSA,Ed25519)"))
    return value


def check_dns_names(value: str | None) -> str | None:
    """DKIM selectors (comma-separated, one per key file) or a domain: DNS names, lower-case."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    for name in value.split(","):
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[\w-]{1,63})*", name):
            raise ValueError(_("{name!r} is not a DNS name").format(name=name))
    return value.lower().replace(" ", "")


# What pydantic says about a value of the wrong type, in words of our own (and translated).
_TYPE_PROBLEMS = {
    "int_parsing": N_("must be a whole number"),
    "float_parsing": N_("must be a number"),
    "bool_parsing": N_("must be on or off (true/false, 1/0)"),
    "greater_than_equal": N_("must be at least {ge}"),
    "greater_than": N_("must be more than {gt}"),
    "less_than_equal": N_("must be at most {le}"),
    "literal_error": N_("must be one of {expected}"),
}


def describe_problem(error: Any) -> str:
    """What pydantic found wrong with a value, in words of our own where we have them."""
    said = _TYPE_PROBLEMS.get(error["type"])
    if said is not None:
        return _(said).format(**{k: v for k, v in (error.get("ctx") or {}).items()})
    return str(error["msg"]).removeprefix("Value error, ")
