"""Addresses and names as the list keeps them: checked once, when they enter."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.storage.models import Subscriber

MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the log says when the operator adds or imports a reader without giving a basis.
NO_BASIS = "added by the operator; no basis given"
MAX_BASIS = 500


class AddressError(ValueError):
    """An address or name that cannot be used, with the reason."""


def normalise_address(email: str) -> str:
    """The address as it will be stored; raises AddressError saying why it is refused."""
    try:
        result = validate_email(email.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(f"{email.strip() or '(empty)'}: {exc}") from None
    return result.normalized


def clean_name(name: str | None) -> str | None:
    """A display name on one line, or None; names with control characters are refused."""
    if name is None:
        return None
    if _CONTROL.search(name.strip()):
        raise AddressError("the name holds control characters")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise AddressError(f"the name is longer than {MAX_NAME} characters")
    return name or None


def address_key(email: str) -> str:
    return email.lower()


def find_by_address(session: Session, email: str) -> Subscriber | None:
    return session.scalars(
        select(Subscriber).where(Subscriber.email_key == address_key(email))
    ).one_or_none()


def clean_basis(basis: str | None) -> str:
    """The operator's basis for consent, on one line; NO_BASIS when none is given."""
    text = " ".join((basis or "").split())
    if len(text) > MAX_BASIS:
        raise AddressError(f"the consent basis is longer than {MAX_BASIS} characters")
    return text or NO_BASIS
