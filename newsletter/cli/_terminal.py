"""Stored text on a terminal: control characters are shown as escapes, never obeyed.

Names and addresses come from forms and files. A C0 or C1 control character (C1 `\\x9b` is a
CSI, the start of a terminal command), a bidirectional override or a line separator in them
must not reach a terminal raw, and rich must not read `[...]` in them as markup.
"""

from __future__ import annotations

import re
from typing import IO

from rich.text import Text

_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
# What JSON leaves raw in strings that a terminal (or JavaScript) would act on.
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_BIDI_AND_SEPARATORS}]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def printable(text: str, *, lines: bool = False) -> str:
    """The text with control characters written as escapes (`\\x9b`); with `lines`, keep LF."""
    return (_UNSAFE_KEEP_LINES if lines else _UNSAFE).sub(_escape, text)


def cell(text: str | None, *, lines: bool = False) -> Text:
    """A table cell that shows the text as it is: escaped controls, no markup (LF kept: lines)."""
    return Text(printable(text or "", lines=lines))


def json_text(text: str) -> str:
    """JSON text (from json.dumps, ensure_ascii=False) with C1 and bidi controls as \\u escapes.

    The same JSON value: these characters only occur inside strings, where \\uXXXX means them.
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class TerminalWriter:
    """A text stream for a terminal: what is written shows its control characters escaped."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(printable(text.replace("\r\n", "\n"), lines=True))
        return len(text)

    def flush(self) -> None:
        self.out.flush()
