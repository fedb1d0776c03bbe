"""What the author is told when an issue file is not right: what to do, not only what is wrong.

She knows Markdown, not YAML: a colon in a subject, a tab, a field name with a typo or a file
saved in another encoding get a sentence that says how to put it right. A theme may be written
with capitals; a question mark inside quotes is not a second question.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import yaml

from newsletter.i18n import N_, _
from newsletter.text import bad_character

# A quoted stretch: an opening quote at the start or after a space or bracket, the closing one
# before the end, a space or punctuation. An apostrophe inside a word ("zo'n") opens nothing.
_QUOTED = re.compile(
    r"""(?:^|(?<=[\s(\[]))(?:"[^"]*"|“[^”“]*[”“]|„[^”“]*[”“]|«[^»]*»|‘[^’]*’|'[^']*')"""
    r"""(?=$|[\s,.;:!?)\]])"""
)
_FIELD_LINE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*:\s*(.*)$")

NOT_UTF8 = N_(
    "is not UTF-8 text: save it as UTF-8 (Kladblok/Notepad: 'Opslaan als', Codering 'UTF-8'; "
    "TextEdit: 'Opslaan', Tekstcodering 'Unicode (UTF-8)')"
)


_OUTER_QUOTES = {'"': '"', "“": "”", "„": "”", "‘": "’", "'": "'", "«": "»", "»": "«"}


def without_outer_quotes(text: str) -> str:
    """The question inside, when the whole question stands between quotes (as a word
    processor writes “Waar mag het zachter?”); otherwise the text as it is."""
    text = text.strip()
    closing = _OUTER_QUOTES.get(text[:1])
    if closing is not None and len(text) > 2 and text.endswith(closing):
        inner = text[1:-1].strip()
        if closing not in inner and text[0] not in inner:
            return inner
    return text


def questions(text: str) -> int:
    """How many question marks the text holds outside quotes."""
    return _QUOTED.sub("", text).count("?")


def theme_of(value: str, themes: Sequence[str]) -> str | None:
    """The configured theme this value names, whatever its case; None if none."""
    wanted = value.strip().casefold()
    return next((theme for theme in themes if theme.casefold() == wanted), None)


def unknown_field(name: str, allowed: Sequence[str]) -> str:
    """An unknown field, with the field it most likely meant."""
    near = difflib.get_close_matches(name.lower(), allowed, n=1, cutoff=0.6)
    if near:
        return _("unknown field; did you mean `{field}`?").format(field=near[0])
    return _("unknown field; allowed: {fields}").format(fields=", ".join(allowed))


def _quoted(value: str) -> str:
    if '"' not in value:
        return f'"{value}"'
    return "'" + value.replace("'", "''") + "'"


def invisible_character(front: str) -> tuple[int, str] | None:
    """The file line and description of a character YAML would misread (a line separator
    pasted from a word processor breaks a line where she sees none), or None. Tabs are left to
    `yaml_problem`, which says what to use instead."""
    for index, line in enumerate(front.split("\n")):
        found = bad_character(line.replace("\t", " "))
        if found is not None:
            return index + 1, _(
                "holds {character}, which cannot be seen but may not stand here; delete it "
                "and type that part again (it comes along with text pasted from a word processor)"
            ).format(character=found)
    return None


def yaml_problem(front: str, error: yaml.YAMLError) -> tuple[int | None, str]:
    """The file line of a front-matter error and what to do about it.

    `front` is the front matter as split off, its first line the rest of the opening '---'.
    """
    mark = getattr(error, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    lines = front.split("\n")
    text = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
    reason = str(getattr(error, "problem", None) or "malformed")
    if "\t" in text or "'\\t'" in reason:
        return line, _("holds a tab: use spaces instead of a tab")
    field = _FIELD_LINE.match(text)
    if reason.startswith("mapping values are not allowed") and field is not None:
        key, value = field.group(1), field.group(2).strip()
        return line, _(
            "the value of {field} holds a colon (:); put the value between quotes, like this: "
            "{field}: {quoted}"
        ).format(field=key, quoted=_quoted(value))
    return line, _(
        "is not valid YAML ({reason}); write each field as 'name: value' on a line of its own, "
        "and put a value with a colon or quote marks between double quotes"
    ).format(reason=reason)
