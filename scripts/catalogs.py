"""The message catalogs (Babel): extract every message, update the Dutch and English catalogs,
compile them, and list the messages that have no Dutch translation yet.

    .venv/bin/python scripts/catalogs.py update    # newsletter.pot, nl and en .po files
    .venv/bin/python scripts/catalogs.py missing   # what lacks Dutch; exit status 1 if any
    .venv/bin/python scripts/catalogs.py compile   # .mo files (the build does this too)

Messages are the strings in `_()`, `ngettext()` and `N_()` in newsletter/, the help texts of
every command and option (read from the command tree: Click keeps them as written), and Click's
own words from the Click modules the command line uses.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter import i18n  # noqa: E402 - the checkout's package, found through the path above
from newsletter.cli import main  # noqa: E402
from newsletter.cli._i18n import CLICK_MODULES, help_id  # noqa: E402

KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
POT = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot"
PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")


def po_path(language: str) -> Path:
    return i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"


def _help_texts(command: click.Command, path: str) -> Iterator[tuple[str, str]]:
    if command.help:
        yield help_id(command.help), path
    if command.short_help:
        yield help_id(command.short_help), path
    for param in command.params:
        text = getattr(param, "help", None)
        if isinstance(param, click.Option) and text:
            yield help_id(text), f"{path}.{param.opts[-1]}"
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _help_texts(sub, f"{path}.{name}")


def _inside_f_strings(package: Path) -> Iterator[tuple[str, int, str | tuple[str, str]]]:
    """Messages marked inside f-strings, which Babel's extractor does not see on Python 3.11
    (the tokenizer hands it the whole f-string as one token): read from the syntax tree."""
    for source in sorted(package.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.JoinedStr):
                continue
            for call in ast.walk(node):
                if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                    continue
                texts = [
                    a.value
                    for a in call.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)
                ]
                if call.func.id in ("_", "N_", "gettext") and texts:
                    yield str(source.relative_to(package)), call.lineno, texts[0]
                elif call.func.id == "ngettext" and len(texts) >= 2:
                    yield str(source.relative_to(package)), call.lineno, (texts[0], texts[1])


def extract() -> Catalog:
    """Every message the program can show, with where it comes from."""
    catalog = Catalog(domain=i18n.DOMAIN, project="newsletter", fuzzy=False)
    package = ROOT / "newsletter"
    for filename, line, message, comments, _context in extract_from_dir(
        package, [("**.py", "python")], keywords=KEYWORDS
    ):
        catalog.add(message, locations=[(f"newsletter/{filename}", line)], auto_comments=comments)
    for path, line, message in _inside_f_strings(package):
        if message not in catalog:
            catalog.add(message, locations=[(f"newsletter/{path}", line)])
    for text, where in _help_texts(main, "newsletter"):
        catalog.add(text, locations=[(f"help:{where}", 1)])
    for module in CLICK_MODULES:
        source = Path(str(module.__file__))
        for line, message, comments, _context in extract_from_file(
            "python", source, keywords=KEYWORDS
        ):
            catalog.add(message, locations=[(f"click/{source.name}", line)], auto_comments=comments)
    return catalog


def _read(path: Path, language: str) -> Catalog:
    if not path.exists():
        return Catalog(locale=language, domain=i18n.DOMAIN, project="newsletter")
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=i18n.DOMAIN)


def update() -> None:
    """Write the template and bring both catalogs up to date with it (new ids, old ones gone)."""
    template = extract()
    POT.parent.mkdir(parents=True, exist_ok=True)
    with POT.open("wb") as handle:
        write_po(handle, template, width=100, sort_output=True, omit_header=True)
    for language in i18n.LANGUAGES:
        path = po_path(language)
        catalog = _read(path, language)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        if language == i18n.DEFAULT:  # English is the source: each message is itself
            for message in catalog:
                if message.id:
                    message.string = message.id
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, catalog, width=100, sort_output=True, omit_header=True)


def compile_all() -> list[Path]:
    """A .mo file beside every .po file."""
    written = []
    for language in i18n.LANGUAGES:
        source = po_path(language)
        catalog = _read(source, language)
        for message in catalog:  # a plural half translated would show an empty line: leave out
            if isinstance(message.string, tuple) and not all(message.string):
                message.string = ""
        target = source.with_suffix(".mo")
        with target.open("wb") as handle:
            write_mo(handle, catalog)
        written.append(target)
    return written


def _ids(message_id: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return (message_id,) if isinstance(message_id, str) else tuple(message_id)


def _placeholders(texts: tuple[str, ...]) -> set[str]:
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def missing(language: str = "nl") -> list[str]:
    """Messages the program shows that the catalog does not translate (or mistranslates)."""
    catalog = _read(po_path(language), language)
    problems = []
    for message in extract():
        if not message.id:
            continue
        found = catalog.get(message.id)
        first = _ids(message.id)[0]
        if found is None:
            problems.append(f"not in the {language} catalog: {first!r}")
            continue
        if language == i18n.DEFAULT:
            continue  # English is the source: an empty msgstr is the message itself
        strings = _ids(found.string) if found.string else ()
        if not strings or not all(strings) or found.fuzzy:
            problems.append(f"no {language} translation: {first!r}")
        elif _placeholders(_ids(message.id)) != _placeholders(strings):
            problems.append(f"the {language} translation has other placeholders: {first!r}")
    return problems


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "missing"
    if action == "update":
        update()
    elif action == "compile":
        for path in compile_all():
            sys.stdout.write(f"{path.relative_to(ROOT)}\n")
    else:
        lacking = missing("nl") + missing("en")
        sys.stdout.write("\n".join(lacking) or "Every message has its Dutch and English entry.")
        sys.stdout.write("\n")
        sys.exit(1 if lacking else 0)
