"""RFC 2047 encoded words of at most 75 characters, folded, for names and subjects per recipient.

`email.utils.formataddr(..., charset="utf-8")` writes a whole display name as one encoded word,
however long (a 150-character name gives a word of several hundred characters; RFC 2047 §2
allows 75). Here a non-ASCII phrase becomes as many base64 words as it needs, each at most 75
characters, split between characters (never inside a UTF-8 sequence) and folded onto lines of
their own, so no header line passes 78 characters.

Python's own parser (policy.default, CPython 3.11) keeps the folding space between two adjacent
encoded words of a display name, which RFC 2047 §6.2 says to drop; RFC-conforming readers, and
`email.header.decode_header`, join them as written here.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache

MAX_WORD = 75
_PREFIX, _SUFFIX = "=?utf-8?b?", "?="
# base64 of 45 bytes is 60 characters: 10 + 60 + 2 = 72 <= 75.
_CHUNK_BYTES = (MAX_WORD - len(_PREFIX) - len(_SUFFIX)) // 4 * 3
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
FOLD = "\r\n "


def _chunks(text: str, first_bytes: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > (_CHUNK_BYTES if chunks else first_bytes) and current:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        chunks.append("".join(current))
    return chunks


def words(text: str, first: int = MAX_WORD) -> list[str]:
    """`text` as encoded words of at most 75 characters (the first at most `first`, to leave
    room for the header's name); decoded and joined they give it back."""
    first_bytes = max((min(first, MAX_WORD) - len(_PREFIX) - len(_SUFFIX)) // 4 * 3, 4)
    return [
        _PREFIX + base64.b64encode(chunk.encode("utf-8")).decode("ascii") + _SUFFIX
        for chunk in _chunks(text, first_bytes)
    ]


def _fold_ascii(text: str, room: int) -> str:
    """Plain ASCII text folded at spaces into lines of at most `room` characters where possible."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > room:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return FOLD.join(lines)


@lru_cache(maxsize=4096)
def phrase(text: str) -> str:
    """A display name as a header phrase: as it is, quoted, or as folded encoded words."""
    if text.isascii() and text.isprintable():
        if _ATOM.fullmatch(text) and "  " not in text and text == text.strip():
            return text if len(text) <= 60 else _fold_ascii(text, 72)
        if len(text) <= 60:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return FOLD.join(words(text))


def address(name: str | None, email: str) -> str:
    """`Name <email>` for a header, the name encoded where it must be; the address on its own
    folded line when the name took more than one."""
    if not name:
        return email
    shown = phrase(name)
    separator = FOLD if FOLD in shown or len(shown) + len(email) > 60 else " "
    return f"{shown}{separator}<{email}>"


def unstructured(name: str, text: str) -> str:
    """A header line `Name: text` (without CRLF) with `text` folded or encoded as needed."""
    if text.isascii() and text.isprintable() and "=?" not in text:
        return f"{name}: " + _fold_ascii(text, 76 - len(name))
    return f"{name}: " + FOLD.join(words(text, first=78 - len(name) - 2))
