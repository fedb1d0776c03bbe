"""Addresses and names as the list keeps them: checked once, when they enter.

An address is stored and sent in its ASCII form: an internationalised domain (`bücher.de`) as
IDNA (`xn--bcher-kva.de`), so both spellings are one reader; people see the Unicode form
(`for_people`). A local part that needs SMTPUTF8 is refused: no relay can be assumed to carry it.
"""

from __future__ import annotations

import contextlib

import idna
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.i18n import N_, _
from newsletter.storage.models import Subscriber
from newsletter.text import line_problem

MAX_NAME = 100
# What the log says when the operator adds or imports a reader without giving a basis.
NO_BASIS = "added by the operator; no basis given"
MAX_BASIS = 500


class AddressError(ValueError):
    """An address or name that cannot be used, with the reason."""


class NameProblem(AddressError):
    """The name, not the address, is what cannot be used."""


# email-validator's own words for the usual mistakes, so they can be translated (its messages
# are English); a message with a detail after ': ' is matched by what comes before it.
VALIDATOR_WORDS = (
    N_("An email address must have an @-sign."),
    N_("There must be something after the @-sign."),
    N_("There must be something before the @-sign."),
    N_("The part after the @-sign is not valid. It should have a period."),
    N_("The email address contains invalid characters before the @-sign"),
    N_("The part after the @-sign contains invalid characters"),
    N_("An email address cannot have two periods in a row."),
    N_("An email address cannot start with a period."),
    N_("An email address cannot have a period immediately before the @-sign."),
    N_("An email address cannot have a period and a hyphen next to each other."),
    N_("A display name and angle brackets around the email address are not permitted here."),
    N_("A bracketed IP address after the @-sign is not allowed here."),
    N_("Quoting the part before the @-sign is not allowed here."),
    N_("There can't be anything after the email address."),
    N_("The email address contains an invalid character."),
    N_("The email address contains invalid characters before the @-sign."),
    N_("The email address contains unsafe characters"),
    N_("The part after the @-sign is not valid. It is not within a valid top-level domain."),
    N_(
        "The part after the @-sign is a special-use or reserved name that cannot be used with "
        "email."
    ),
)


def _validator_reason(exc: EmailNotValidError) -> str:
    text = str(exc)
    head, colon, tail = text.partition(": ")
    if colon and head in VALIDATOR_WORDS:
        return f"{_(head)}: {tail}"
    return _(text) if text in VALIDATOR_WORDS else text


def normalise_address(email: str) -> str:
    """The address as it will be stored and sent (ASCII, IDNA domain); raises AddressError."""
    given = email.strip()
    try:
        result = validate_email(given, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        if not given.partition("@")[0].isascii():
            reason = _(
                "the part before the @ holds non-ASCII characters (it would need SMTPUTF8, "
                "which a relay cannot be assumed to carry)"
            )
            raise AddressError(f"{given or _('(empty)')}: {reason}") from None
        raise AddressError(f"{given or _('(empty)')}: {_validator_reason(exc)}") from None
    return result.ascii_email or result.normalized


def for_people(email: str) -> str:
    """The address as people read it: an IDNA domain shown in Unicode."""
    local, _at, domain = email.rpartition("@")
    if "xn--" not in domain.lower():
        return email
    try:
        return f"{local}@{idna.decode(domain)}"
    except (idna.IDNAError, UnicodeError):
        return email


def clean_name(name: str | None) -> str | None:
    """A display name on one line, or None; raises NameProblem saying what is wrong with it."""
    if name is None:
        return None
    stripped = name.strip()
    problem = line_problem(stripped)
    if problem is not None:
        raise NameProblem(_("the name {problem}").format(problem=problem))
    cleaned = " ".join(stripped.split())
    if len(cleaned) > MAX_NAME:
        raise NameProblem(_("the name is longer than {count} characters").format(count=MAX_NAME))
    return cleaned or None


def address_key(email: str) -> str:
    """The key that makes one reader of every spelling of an address: ASCII, lower case."""
    local, at, domain = email.strip().rpartition("@")
    if at and not domain.isascii():
        with contextlib.suppress(idna.IDNAError, UnicodeError):
            domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local}{at}{domain}".lower()


def find_by_address(session: Session, email: str) -> Subscriber | None:
    """The reader with this address, whichever spelling of the domain either side used."""
    keys = {address_key(email), email.strip().lower(), for_people(email.strip()).lower()}
    return session.scalars(
        select(Subscriber).where(Subscriber.email_key.in_(sorted(keys))).order_by(Subscriber.id)
    ).first()


def clean_basis(basis: str | None) -> str:
    """The operator's basis for consent, on one line; NO_BASIS when none is given."""
    text = " ".join((basis or "").split())
    if len(text) > MAX_BASIS:
        raise AddressError(
            _("the consent basis is longer than {count} characters").format(count=MAX_BASIS)
        )
    return text or NO_BASIS
