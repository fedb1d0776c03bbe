"""What spreadsheets write: column names in Dutch and English, and the encoding of the file.

Excel in the Netherlands saves "CSV (gescheiden door lijstscheidingsteken)" with semicolons in
Windows-1252, and "CSV UTF-8" with a byte order mark; a list typed by hand says `e-mailadres`
and `naam`, an export says `email` and `name`. The columns are matched without regard to case,
spaces, dashes or underscores; the address column becomes `email`, and the best name column
(a first name before a full name, for the greeting) becomes `name`.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import BinaryIO

from newsletter.i18n import _, ngettext

ADDRESS_COLUMNS = ("email", "emailadres", "emailaddress", "mail", "mailadres", "epost")
# A first name first: the letter greets by it ("Hallo Anna,").
NAME_COLUMNS = (
    "name",
    "voornaam",
    "firstname",
    "givenname",
    "roepnaam",
    "naam",
    "fullname",
    "volledigenaam",
)
ASCII_TEST = b'\n\r,;\t"'
BOM = b"\xef\xbb\xbf"
MAX_NAMED = 5  # lines named in a refusal


class ColumnError(ValueError):
    """The header cannot be read as a list of subscribers."""


class EncodingError(ValueError):
    """The file is not in the encoding asked for; the message says how to read it."""


def _plain(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in " -_.")


def columns(header: Sequence[str]) -> list[str]:
    """The header with the address column named `email` and the name column `name`.

    Other columns keep their name (lower case, trimmed): an export's `status` and the rest.
    """
    names = [cell.strip().lower() for cell in header]
    plain = [_plain(cell) for cell in header]
    addresses = [i for i, p in enumerate(plain) if p in ADDRESS_COLUMNS]
    if not addresses:
        found = ", ".join(repr(n) for n in names if n) or _("nothing")
        raise ColumnError(
            _(
                "the first line must name the columns, with one for the address "
                "(email, e-mail or e-mailadres); it names {found}"
            ).format(found=found)
        )
    if len(addresses) > 1:
        both = _(" and ").join(repr(names[i]) for i in addresses)
        raise ColumnError(_("two columns hold the address ({both}); keep one").format(both=both))
    names[addresses[0]] = "email"
    ranked = [i for column in NAME_COLUMNS for i, p in enumerate(plain) if p == column]
    if ranked and "name" not in names:
        names[ranked[0]] = "name"
    return names


def usable(encoding: str) -> str:
    """The codec's name; EncodingError for one that is unknown or not ASCII-compatible."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise EncodingError(
            _("--encoding: unknown encoding {encoding!r}, e.g. cp1252").format(encoding=encoding)
        ) from None
    try:
        compatible = ASCII_TEST.decode(info.name) == ASCII_TEST.decode("ascii")
    except UnicodeDecodeError:
        compatible = False
    if not compatible:
        raise EncodingError(
            _("--encoding {encoding}: not supported; save the file as UTF-8").format(
                encoding=encoding
            )
        )
    return info.name


def check(raw: BinaryIO, encoding: str, max_line: int) -> None:
    """Read the file once; refuse it when it is in another encoding than the one asked for.

    With UTF-8: lines that are not UTF-8 in a file where no line holds UTF-8 beyond ASCII mean
    the file was saved in another encoding (Excel's Windows-1252): refused, naming
    `--encoding cp1252`. In a file that does hold UTF-8, such lines are single bad rows,
    reported by line when the rows are read. The file is left at its start.
    """
    first = raw.read(len(BOM))
    raw.seek(0)
    if encoding != "utf-8":
        if first == BOM:
            raise EncodingError(
                _("the file is UTF-8 (it starts with a byte order mark): leave out --encoding")
            )
        return
    bad: list[int] = []
    beyond_ascii = False
    number = 0
    while chunk := raw.readline(max_line + 1):
        number += 1
        if len(chunk) > max_line and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):  # a line too long: reported later
                chunk = raw.readline(max_line)
            continue
        if chunk.isascii():
            continue
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(number)
        else:
            beyond_ascii = True
    raw.seek(0)
    if bad and not beyond_ascii:
        named = ", ".join(str(n) for n in bad[:MAX_NAMED]) + (" …" if len(bad) > MAX_NAMED else "")
        where = ngettext("line {lines}", "lines {lines}", len(bad)).format(lines=named)
        raise EncodingError(
            _(
                "the file is not UTF-8 ({where}); it was probably saved by Excel as "
                "Windows-1252. Read it as such with --encoding cp1252, or save it again as "
                "'CSV UTF-8 (door komma's gescheiden)'"
            ).format(where=where)
        )
