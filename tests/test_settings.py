"""Settings: read once from NEWSLETTER_*; a bad value stops the program naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config_values import parse_smtp_url
from newsletter.settings import SettingsError, load_settings
from tests.support.cli import Cli


def test_defaults_match_the_documentation() -> None:
    settings = load_settings(_env_file=None)
    assert settings.database_url == "sqlite:///newsletter.db"
    assert settings.outbox_dir == Path("outbox")
    assert settings.issues_dir == Path("issues")
    assert settings.themes == ["loslaten", "vasthouden", "zachtheid"]
    assert settings.schedule == "0 7 * * sun"
    assert settings.timezone == "Europe/Amsterdam"
    assert settings.smtp is None
    assert settings.misfire_grace_hours == 12


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("NEWSLETTER_SMTP_URL", "http://relay:25", "NEWSLETTER_SMTP_URL: scheme must be"),
        ("NEWSLETTER_SCHEDULE", "elke zondag", "NEWSLETTER_SCHEDULE: not a cron expression"),
        ("NEWSLETTER_TIMEZONE", "Europe/Nergens", "NEWSLETTER_TIMEZONE: unknown time zone"),
        ("NEWSLETTER_FROM", "geen adres", "NEWSLETTER_FROM: must look like"),
        ("NEWSLETTER_BASE_URL", "nieuws.example.nl", "NEWSLETTER_BASE_URL: must be an http"),
        ("NEWSLETTER_DATABASE_URL", "mysql://x/y", "NEWSLETTER_DATABASE_URL: only sqlite"),
        ("NEWSLETTER_THEMES", "a,a", "NEWSLETTER_THEMES: a theme is listed twice"),
        ("NEWSLETTER_SECRET_KEY", "kort", "NEWSLETTER_SECRET_KEY: must be at least 16"),
        ("NEWSLETTER_SMTP_CONNECTIONS", "veel", "NEWSLETTER_SMTP_CONNECTIONS:"),
    ],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    assert fragment in str(caught.value)


def test_the_cli_stops_with_the_variable_named(cli: Cli) -> None:
    result = cli("subscribers", "list", code=1, NEWSLETTER_TIMEZONE="Mars/Olympus")
    assert "NEWSLETTER_TIMEZONE: unknown time zone" in result.stderr


def test_smtp_urls_ask_for_starttls_or_implicit_tls() -> None:
    plain = parse_smtp_url("smtp://relay.example.nl:2525")
    assert (plain.host, plain.port, plain.security) == ("relay.example.nl", 2525, "none")
    starttls = parse_smtp_url("smtp+starttls://user%40x:p%3Ass@relay.example.nl")
    assert (starttls.port, starttls.security) == (587, "starttls")
    assert (starttls.username, starttls.password) == ("user@x", "p:ss")
    implicit = parse_smtp_url("smtps://relay.example.nl")
    assert (implicit.port, implicit.security) == (465, "tls")


def test_themes_and_old_keys_are_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_THEMES", "stilte, adem")
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "nieuwe-sleutel-0123456789")
    monkeypatch.setenv("NEWSLETTER_OLD_SECRET_KEYS", "oude-sleutel-0123456789,nog-ouder-0123456789")
    settings = load_settings(_env_file=None)
    assert settings.themes == ["stilte", "adem"]
    assert settings.secret_keys() == [
        b"nieuwe-sleutel-0123456789",
        b"oude-sleutel-0123456789",
        b"nog-ouder-0123456789",
    ]


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NEWSLETTER_TIMEZONE=Europe/Brussels\n", encoding="utf-8")
    assert load_settings().timezone == "Europe/Brussels"
