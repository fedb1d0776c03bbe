"""Her language: every message in both catalogs, compiled as shipped; Dutch when she asks for it
or her locale is Dutch, English otherwise; help, errors and issue-file problems alike."""

from __future__ import annotations

import gettext
import importlib.util
import io
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from newsletter import i18n
from newsletter.settings import SettingsError, load_settings
from tests.support.cli import Cli
from tests.support.issue_files import write_issue

ROOT = Path(__file__).resolve().parent.parent


def catalogs_tool() -> ModuleType:
    """scripts/catalogs.py, the tool that extracts, updates and compiles the catalogs."""
    spec = importlib.util.spec_from_file_location("catalogs", ROOT / "scripts" / "catalogs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("language", ["nl", "en"])
def test_every_message_is_in_the_catalog(language: str) -> None:
    """Fails listing each message without a translation: add it to the catalog and translate it
    (`make messages`, then edit newsletter/locale/nl/LC_MESSAGES/newsletter.po)."""
    lacking = catalogs_tool().missing(language)
    assert lacking == [], "\n" + "\n".join(lacking)


def _messages(data: bytes) -> dict[object, str]:
    translations = gettext.GNUTranslations(io.BytesIO(data))
    catalog: dict[object, str] = translations._catalog  # type: ignore[attr-defined]
    return {key: text for key, text in catalog.items() if key != ""}  # "" is the header


@pytest.mark.parametrize("language", ["nl", "en"])
def test_the_compiled_catalogs_are_those_of_the_po_files(language: str) -> None:
    source = i18n.LOCALE_DIR / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    compiled = source.with_suffix(".mo")
    assert compiled.exists(), "run `make catalogs` (pip install compiles them too)"
    with source.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    for message in catalog:
        if isinstance(message.string, tuple) and not all(message.string):
            message.string = ""
    expected = io.BytesIO()
    write_mo(expected, catalog)
    assert _messages(compiled.read_bytes()) == _messages(expected.getvalue()), (
        "stale .mo: run `make catalogs`"
    )


def test_dutch_when_asked_english_by_default(cli: Cli, tmp_path: Path) -> None:
    path = write_issue(tmp_path / "issues", "typo", extra="subjet: Rust")
    english = cli("issues", "check", str(path), code=1).stderr
    assert "subjet: unknown field; did you mean `subject`?" in english
    assert "1 of 1 issue file has errors" in english
    dutch = cli("issues", "check", str(path), code=1, NEWSLETTER_LANGUAGE="nl").stderr
    assert "subjet: onbekend veld; bedoel je `subject`?" in dutch
    assert "Fout: 1 van 1 briefbestand heeft fouten" in dutch
    by_locale = cli("issues", "check", str(path), code=1, LANG="nl_NL.UTF-8").stderr
    assert "bedoel je `subject`?" in by_locale
    all_set = cli("issues", "check", str(path), code=1, LC_ALL="en_GB.UTF-8", LANG="nl_NL.UTF-8")
    assert "did you mean" in all_set.stderr, "LC_ALL goes before LANG"


def test_help_is_translated_when_shown(cli: Cli) -> None:
    out = cli("issues", "test", "--help", NEWSLETTER_LANGUAGE="nl").stdout
    assert out.startswith("Gebruik: ") and "issues test [OPTIONS] PATH" in out
    assert "Mail jezelf de brief precies zoals een lezer hem krijgt" in out
    assert "Begroet de lezer met deze naam." in out
    assert "Toon deze hulp en stop." in out
    assert "Mail yourself the issue" in cli("issues", "test", "--help").stdout
    wrong = cli("issues", "tset", code=2, NEWSLETTER_LANGUAGE="nl").stderr
    assert "Er is geen opdracht 'tset'. Bedoel je 'test'?" in wrong


def test_dutch_output_of_the_queue_and_the_list(cli: Cli, tmp_path: Path) -> None:
    issue = write_issue(tmp_path / "issues", "los")
    dutch = {"NEWSLETTER_LANGUAGE": "nl"}
    assert "klaargezet" in cli("issues", "queue", str(issue), env=dutch).stdout
    plan = cli("issues", "plan", "--weeks", "2", "--now", "2026-11-24T10:00", env=dutch).stdout
    assert "zo 2026-11-29 07:00" in plan and "De wachtrij raakt leeg op zo 2026-12-06" in plan
    cli("subscribers", "add", "anna@example.com")
    listed = cli("subscribers", "list", env=dutch).stdout
    assert "1 lezer getoond." in listed and "ingeschreven" in listed


def test_settings_say_what_is_wrong_in_her_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_LANGUAGE", "nl")
    monkeypatch.setenv("NEWSLETTER_SMTP_CONNECTIONS", "veel")
    with pytest.raises(SettingsError, match="NEWSLETTER_SMTP_CONNECTIONS: moet een geheel getal"):
        load_settings(_env_file=None)
    monkeypatch.setenv("NEWSLETTER_LANGUAGE", "de")
    monkeypatch.delenv("NEWSLETTER_SMTP_CONNECTIONS")
    with pytest.raises(SettingsError, match="NEWSLETTER_LANGUAGE: must be one of 'nl' or 'en'"):
        load_settings(_env_file=None)


def test_the_language_follows_the_locale_when_unset() -> None:
    assert i18n.from_locale({"LANG": "nl_NL.UTF-8"}) == "nl"
    assert i18n.from_locale({"LANG": "nl_BE"}) == "nl"
    assert i18n.from_locale({"LC_MESSAGES": "en_US.UTF-8", "LANG": "nl_NL.UTF-8"}) == "en"
    assert i18n.from_locale({"LANG": "C.UTF-8"}) == "en"
    assert i18n.from_locale({}) == "en"


def test_the_wheel_carries_the_compiled_catalogs(tmp_path: Path) -> None:
    """`pip install .` speaks Dutch: the build hook compiles the catalogs into the wheel."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("newsletter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        dutch = archive.read("newsletter/locale/nl/LC_MESSAGES/newsletter.mo")
        assert "newsletter/locale/en/LC_MESSAGES/newsletter.mo" in archive.namelist()
    assert gettext.GNUTranslations(io.BytesIO(dutch)).gettext("Usage:") == "Gebruik:"


def test_refusals_and_states_from_below_the_command_line_are_dutch(
    cli: Cli, tmp_path: Path
) -> None:
    """Words that come from the address checker and the readers' side, not from a command."""
    dutch = {"NEWSLETTER_LANGUAGE": "nl"}
    named = cli("subscribers", "add", "Anna <anna@example.nl>", code=1, env=dutch).stderr
    assert "Een naam en punthaken rond het e-mailadres zijn hier niet toegestaan" in named
    cli("subscribers", "add", "anna@bücher.example", "--consent", "op papier")
    again = cli("subscribers", "add", "anna@bücher.example", code=1, env=dutch).stderr
    assert "anna@bücher.example staat al op de lijst (ingeschreven)" in again
    listed = tmp_path / "lijst.csv"
    listed.write_text("e-mailadres;naam\nanna@bücher.example;Anna\n", encoding="utf-8")
    imported = cli("subscribers", "import", str(listed), env=dutch).stdout
    assert "blijft zoals het is: anna@bücher.example (ingeschreven)" in imported
