"""The production preflight: what in the configuration would make the messages wrong.

`newsletter check` prints every problem; `send`, `worker` and `scheduler` refuse to start on an
error (every message would be wrong). Each check is a small function from the settings to a
list of problems, so more can be added to `CHECKS` (e.g. DKIM).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from newsletter.i18n import _
from newsletter.mail import checks
from newsletter.settings import DEMO_SECRET_KEY, Settings, SettingsError

DEFAULT_FROM_ADDRESS = "nieuwsbrief@example.org"
# RFC 2606 (and RFC 6761): names reserved for examples; mail to or from them goes nowhere.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org", "example", "test", "invalid")
LOCAL_NAMES = ("localhost", "local", "localdomain", "internal")


class Level(enum.StrEnum):
    ERROR = "error"  # every message would be wrong: sending refuses to start
    WARNING = "warning"
    NOTE = "note"  # worth knowing (e.g. the DNS record to publish); not a problem


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, with the variable that sets it."""

    level: Level
    variable: str
    message: str

    def __str__(self) -> str:
        level = _("error") if self.level is Level.ERROR else _("warning")
        return f"{level}: {self.variable}: {self.message}"


def _in(domain: str, suffixes: tuple[str, ...]) -> bool:
    domain = domain.lower().rstrip(".")
    return any(domain == s or domain.endswith("." + s) for s in suffixes)


def _is_local(host: str) -> bool:
    if _in(host, LOCAL_NAMES) or "." not in host.strip("[]"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _trial(settings: Settings) -> Level:
    """NEWSLETTER_DEMO is a trial on one machine: local links and an example sender are expected
    there, so they are warnings; the demo key with a relay stays an error."""
    return Level.WARNING if settings.demo else Level.ERROR


def base_url_is_public(settings: Settings) -> list[Problem]:
    """With a relay, the links in every message must reach the web endpoints from outside."""
    if settings.smtp is None:
        return []
    parts = urlsplit(settings.base_url)
    problems = []
    if parts.scheme != "https":
        problems.append(_("must start with https:// (readers' mail programs open these links)"))
    if _is_local(parts.hostname or ""):
        problems.append(
            _(
                "{host} is a local address: every unsubscribe link would point at it; "
                "set the public address, e.g. https://nieuws.example.nl"
            ).format(host=parts.hostname)
        )
    return [Problem(_trial(settings), "NEWSLETTER_BASE_URL", p) for p in problems]


def sender_is_real(settings: Settings) -> list[Problem]:
    """With a relay, the From address must be the operator's own, not an example."""
    if settings.smtp is None:
        return []
    address = settings.sender.addr_spec.lower()
    if address == DEFAULT_FROM_ADDRESS:
        reason = _("is the built-in default; set your own, e.g. 'Naam <nieuws@jouwdomein.nl>'")
    elif _in(settings.sender_domain, RESERVED_DOMAINS):
        reason = _("{domain} is reserved for examples (RFC 2606); use your own").format(
            domain=settings.sender_domain
        )
    else:
        return []
    return [Problem(_trial(settings), "NEWSLETTER_FROM", reason)]


def key_is_secret(settings: Settings) -> list[Problem]:
    """A key must be set, and with a relay it must not be the public demo key."""
    try:
        keys = settings.secret_keys()
    except SettingsError:
        return [Problem(Level.ERROR, "NEWSLETTER_SECRET_KEY", _("is not set; it signs the links"))]
    if settings.smtp is not None and DEMO_SECRET_KEY.encode() in keys:
        where = (
            "NEWSLETTER_SECRET_KEY"
            if keys[0] == DEMO_SECRET_KEY.encode()
            else "NEWSLETTER_OLD_SECRET_KEYS"
        )
        return [
            Problem(
                Level.ERROR,
                where,
                _(
                    "is the public demo key: anyone could sign links; make one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                ),
            )
        ]
    return []


def postal_address_given(settings: Settings) -> list[Problem]:
    if settings.smtp is None or settings.postal_address:
        return []
    return [
        Problem(
            Level.WARNING,
            "NEWSLETTER_POSTAL_ADDRESS",
            _("is empty; a newsletter should say who sends it and where (shown in the footer)"),
        )
    ]


def _organisation(domain: str) -> str:
    # The last two labels: right for .nl, .com and the like (not for co.uk-style suffixes).
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


def domains_agree(settings: Settings) -> list[Problem]:
    """Mail from one domain with links to another looks like phishing to filters."""
    host = urlsplit(settings.base_url).hostname or ""
    if settings.smtp is None or _is_local(host):
        return []
    if _organisation(host) == _organisation(settings.sender_domain):
        return []
    return [
        Problem(
            Level.WARNING,
            "NEWSLETTER_FROM",
            _(
                "its domain {domain} differs from the base URL's domain {host}; "
                "spam filters trust mail whose links go to the sender's own domain"
            ).format(domain=settings.sender_domain, host=host),
        )
    ]


_LEVELS = {"problem": Level.ERROR, "warning": Level.WARNING, "note": Level.NOTE}


def messages_are_signed(settings: Settings) -> list[Problem]:
    """DKIM: a test message signed and verified, and the record to publish (mail/checks.py)."""
    variable = "NEWSLETTER_DKIM_KEY_FILE"
    return [Problem(_LEVELS[f.level], variable, f.text) for f in checks.dkim_checks(settings)]


def bounces_come_back(settings: Settings) -> list[Problem]:
    """The bounce address the VERP return paths are built on (mail/checks.py)."""
    variable = "NEWSLETTER_BOUNCE_ADDRESS"
    return [Problem(_LEVELS[f.level], variable, f.text) for f in checks.bounce_checks(settings)]


CHECKS: list[Callable[[Settings], list[Problem]]] = [
    base_url_is_public,
    sender_is_real,
    key_is_secret,
    postal_address_given,
    domains_agree,
    messages_are_signed,
    bounces_come_back,
]


def check(settings: Settings) -> list[Problem]:
    """Every problem every check finds, errors first."""
    problems = [problem for each in CHECKS for problem in each(settings)]
    order = {Level.ERROR: 0, Level.WARNING: 1, Level.NOTE: 2}
    return sorted(problems, key=lambda p: order[p.level])


def errors(settings: Settings) -> list[Problem]:
    """The problems that make every message wrong: sending refuses to start on them."""
    return [p for p in check(settings) if p.level is Level.ERROR]
