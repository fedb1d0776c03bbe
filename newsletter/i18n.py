"""The language of what the author and the operator read: gettext catalogs, Dutch or English.

Messages are written in English in the code, marked with `_()` (or `ngettext`, or `N_` for a
string translated later), and looked up in `newsletter/locale/<language>/LC_MESSAGES/
newsletter.mo` (compiled from the `.po` files at build time: `hatch_build.py`, `make catalogs`).
The language is set once per process, by `settings.load_settings` (NEWSLETTER_LANGUAGE, or the
locale); until then, and for a language without a catalog, messages stay English. Web pages and
mails are Dutch templates and do not pass through here; neither do log lines for the operator.
"""

from __future__ import annotations

import gettext as _gettext
import locale as _locale
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

DOMAIN = "newsletter"
LANGUAGES = ("nl", "en")
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX: the first one set wins

_current: _gettext.NullTranslations = _gettext.NullTranslations()
_language = DEFAULT


@lru_cache(maxsize=len(LANGUAGES))
def _catalog(language: str) -> _gettext.NullTranslations:
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def use(language: str) -> None:
    """Speak this language from now on ('nl' or 'en'; anything else is English)."""
    global _current, _language
    _language = language if language in LANGUAGES else DEFAULT
    _current = _catalog(_language)


def current() -> str:
    return _language


def from_locale(environ: Mapping[str, str]) -> str:
    """'nl' when the locale (LC_ALL, LC_MESSAGES or LANG, the first set) is Dutch, else 'en'."""
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "")
        if value:
            normalized = _locale.normalize(value)
            return "nl" if normalized.lower().startswith("nl") else DEFAULT
    return DEFAULT


def gettext(message: str) -> str:
    """The message in the current language."""
    return _current.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """The singular or plural message for `count`, in the current language."""
    return _current.ngettext(singular, plural, count)


def N_(message: str) -> str:
    """Mark a message for the catalogs without translating it now (it is translated later)."""
    return message


_ = gettext
