"""Every link the project builds and verifies: route paths and token purposes in one place.

A link carries a signed token (`newsletter.tokens`) whose purpose says what it may do; a token
signed for one purpose never verifies for another.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from newsletter.tokens import InvalidToken, sign, verify


class Purpose(enum.StrEnum):
    """What a signed token is for."""

    UNSUBSCRIBE = "unsubscribe"  # the footer and List-Unsubscribe link: leave, pause, come back
    CONFIRM = "confirm"  # the double opt-in link (expires)
    CSRF = "csrf"  # the sign-up form's double-submit token (expires)
    PROOF = "proof"  # a test mail's unsubscribe and pause links: a page that changes nothing


# Route paths. `{token}` is a token of the purpose named beside it.
SIGNUP = "/aanmelden"
CONFIRM = "/bevestig/{token}"  # Purpose.CONFIRM
UNSUBSCRIBE = "/afmelden/{token}"  # Purpose.UNSUBSCRIBE; POST is the RFC 8058 one-click
PAUSE = "/pauzeren/{token}"  # Purpose.UNSUBSCRIBE
RESUME = "/hervatten/{token}"  # Purpose.UNSUBSCRIBE
COME_BACK = "/terugkomen/{token}"  # Purpose.UNSUBSCRIBE
PROOF_MAIL = "/proefmail/{token}"  # Purpose.PROOF; GET, HEAD and POST only say it was a test
HEALTH = "/healthz"
STATIC = "/static"
IMAGES = "/beelden"  # the issues folder's beelden/, published for the letters' images
# The archive: public, and nothing personal in it (no token).
HOME = "/"
ARCHIVE = "/archief"
ARCHIVE_FEED = "/archief/feed.xml"
ARCHIVE_THEME = "/archief/thema/{theme}"
ARCHIVE_LETTER = "/archief/{slug}"  # the slug (its file name without .md)


def path(route: str, token: str) -> str:
    """A route with its token filled in, e.g. path(PAUSE, t) == '/pauzeren/<t>'."""
    return route.replace("{token}", token)


def letter_path(slug: str) -> str:
    """The archive page of the letter made from issue `slug`."""
    return ARCHIVE_LETTER.replace("{slug}", quote(slug, safe=""))


def theme_path(theme: str) -> str:
    """The archive page of one theme's letters."""
    return ARCHIVE_THEME.replace("{theme}", quote(theme, safe=""))


def letter_url(base_url: str, slug: str) -> str:
    """The absolute address of a letter online ("Lees deze brief online")."""
    return base_url + letter_path(slug)


def archive_url(base_url: str) -> str:
    """The absolute address of the archive (the List-Archive header)."""
    return base_url + ARCHIVE


def unsubscribe_url(base_url: str, keys: Sequence[bytes], token_id: str) -> str:
    """The absolute unsubscribe (and preferences) link of a reader."""
    return base_url + path(UNSUBSCRIBE, sign(list(keys), Purpose.UNSUBSCRIBE, token_id))


def confirm_url(base_url: str, keys: Sequence[bytes], token_id: str, expires: datetime) -> str:
    """The absolute confirmation link of a sign-up, valid until `expires`."""
    return base_url + path(CONFIRM, sign(list(keys), Purpose.CONFIRM, token_id, expires))


def proof_url(base_url: str, keys: Sequence[bytes], token_id: str) -> str:
    """The absolute link a test mail carries where a reader's unsubscribe link would be."""
    return base_url + path(PROOF_MAIL, sign(list(keys), Purpose.PROOF, token_id))


def read(
    keys: Sequence[bytes], purpose: Purpose, token: str, now: datetime | None = None
) -> str | None:
    """The id inside a valid token of this purpose, or None (forged, other purpose, expired)."""
    try:
        return verify(list(keys), purpose, token, now)
    except InvalidToken:
        return None


def csrf_token(keys: Sequence[bytes], nonce: str, expires: datetime) -> str:
    """The sign-up form's token over this browser's nonce."""
    return sign(list(keys), Purpose.CSRF, nonce, expires)
