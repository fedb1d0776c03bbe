"""Text that may go into a mail header or onto one line: one checker for every door.

Settings, issue files, names and addresses, and the sign-up form all ask `line_problem` before
they accept a value; the message builder then never meets a value it would refuse or, worse,
one that the `email` package would decode into extra header lines.
"""

from __future__ import annotations

import re
import unicodedata
from email import policy
from email.errors import HeaderParseError
from email.message import EmailMessage

from newsletter.i18n import N_, _

# Bidirectional embeddings, overrides and isolates (Trojan Source), and the marks: they reorder
# what a reader sees without being seen themselves.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Line and paragraph separators of every kind: Python's str.splitlines() splits on them.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# An RFC 2047 encoded word, or the start of one: the email package decodes it, CR/LF included.
ENCODED_WORD = re.compile(r"=\?")
_NAMES = {
    "\t": N_("a tab"),
    "\u2028": N_("a line separator (U+2028)"),
    "\u2029": N_("a paragraph separator (U+2029)"),
    "\x85": N_("a next-line character (U+0085)"),
}


def _describe(char: str) -> str:
    named = _NAMES.get(char)
    if named is not None:
        return _(named)
    if char in "\r\n":
        return _("a line break")
    name = unicodedata.name(char, "")
    label = f"U+{ord(char):04X}" + (f" {name}" if name else "")
    if char in BIDI_CONTROLS:
        return _("an invisible direction mark ({character})").format(character=label)
    return _("an invisible control character ({character})").format(character=label)


def bad_character(value: str) -> str | None:
    """The first character that may not stand in a one-line text, described; None if none.

    Refused: control characters (Unicode category Cc: C0, DEL, C1 incl. U+0085), line and
    paragraph separators (Zl, Zp), bidirectional controls and lone surrogates. Characters newer
    than Python's Unicode tables (a new emoji) are allowed: UTF-8 carries them.
    """
    for char in value:
        if char in LINE_BREAKS or char in BIDI_CONTROLS:
            return _describe(char)
        if unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs"):
            return _describe(char)
    return None


def line_problem(value: str, *, encoded_words: bool = False) -> str | None:
    """Why `value` cannot be one line of text in a header or on a page; None when it can.

    `encoded_words=True` allows '=?' (for text that never goes into a header).
    """
    found = bad_character(value)
    if found is not None:
        return _("holds {what}").format(what=found)
    if not encoded_words and ENCODED_WORD.search(value):
        return _("holds '=?', which mail programs read as an encoded word; leave it out")
    return None


def header_problem(name: str, value: str) -> str | None:
    """Why the email package would refuse or change `value` as header `name`; None if it won't.

    Checks `line_problem` first, then builds the header as the message builder does (RFC 2047,
    folded, 7-bit) and parses it back: the text must survive unchanged, on lines of at most 998
    octets.
    """
    problem = line_problem(value)
    if problem is not None:
        return problem
    message = EmailMessage(policy=policy.SMTP)
    try:
        message[name] = value
        raw = message.as_bytes()
    except (ValueError, HeaderParseError, IndexError, UnicodeError) as exc:
        return _("cannot be written as a mail header ({reason})").format(reason=exc)
    if not raw.isascii() or any(len(line) > 998 for line in raw.split(b"\r\n")):
        return _("does not fit a mail header")
    return None
