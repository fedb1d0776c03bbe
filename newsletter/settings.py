"""The one settings object, read once at start-up from NEWSLETTER_* variables (or a .env)."""

from __future__ import annotations

import logging
import os
import re
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from newsletter import i18n
from newsletter.config_values import (
    SmtpConfig,
    check_bounce_address,
    check_dkim_key_files,
    check_dns_names,
    check_feedback_sender_id,
    check_mailbox,
    describe_problem,
    parse_imap_url,
    parse_smtp_url,
    split_list,
)
from newsletter.i18n import _
from newsletter.text import line_problem

PREFIX = "NEWSLETTER_"
MIN_KEY_LENGTH = 16
_LIST_ID = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
DEMO_SECRET_KEY = "demo-only-secret-key-do-not-use-in-production"  # noqa: S105 - public on purpose


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    """Every NEWSLETTER_* variable, typed and checked."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_file=".env", extra="ignore", frozen=True, populate_by_name=True
    )

    database_url: str = "sqlite:///newsletter.db"
    smtp_url: str | None = None
    outbox_dir: Path = Path("outbox")
    base_url: str = "http://localhost:8000"
    secret_key: SecretStr | None = None
    old_secret_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    from_: str = Field(
        "Wekelijks moment van rust <nieuwsbrief@example.org>", alias="NEWSLETTER_FROM"
    )
    list_name: str = "Wekelijks moment van rust"
    list_id: str | None = None
    postal_address: str = ""
    author_name: str = ""  # who signs the letter; empty: the sender's name
    # The author's own address: test mails go there, and the scheduler's notices to her.
    author_email: str | None = None
    # Remind her when the queue runs dry within this many weeks (0: never).
    remind_weeks: int = Field(2, ge=0, le=52)
    issues_dir: Path = Path("issues")
    themes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["loslaten", "vasthouden", "zachtheid"]
    )
    schedule: str = "0 7 * * sun"
    timezone: str = "Europe/Amsterdam"
    misfire_grace_hours: float = Field(12.0, gt=0)
    demo: bool = False
    # Delivery engine.
    smtp_connections: int = Field(2, ge=1, le=64)
    smtp_timeout: float = Field(30.0, gt=0)
    smtp_messages_per_connection: int = Field(1000, ge=1)
    smtp_rate: float = Field(0.0, ge=0)
    smtp_hourly_limit: int = Field(0, ge=0)
    smtp_daily_limit: int = Field(0, ge=0)
    inflight_window: int = Field(50, ge=1, le=10_000)
    # Sending processes, each with its share of the connections (docs/architecture.md).
    send_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    lease_seconds: int = Field(300, ge=10)
    database_patience_seconds: float = Field(60.0, ge=0, le=3600)
    retry_max_age_hours: float = Field(48.0, gt=0)
    # Sign-up, consent and the web pages (docs/subscribers.md).
    confirm_expiry_days: float = Field(7.0, gt=0, le=90)
    pending_retention_days: float = Field(30.0, gt=0)
    signup_resend_minutes: float = Field(15.0, ge=0)
    signup_client_hourly_limit: int = Field(5, ge=1)
    consent_log_ip: bool = False
    max_body_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    # The letter on the web (the archive and its feed) and the welcome after confirming.
    archive: bool = True
    welcome: bool = True
    # `serve`'s access log: off, as the consent text promises no click log; when on, paths
    # without tokens and client addresses shortened (newsletter/web/logs.py).
    access_log: bool = False
    # Bounces, complaints, signatures and the rest of the header set (issue 10).
    bounce_address: str | None = None
    bounce_imap_url: SecretStr | None = None
    soft_bounce_limit: int = Field(3, ge=1, le=100)
    dkim_selector: str | None = None
    dkim_key_file: str | None = None
    dkim_domain: str | None = None
    feedback_sender_id: str = "nieuwsbrief"
    transactional_from: str | None = None
    # The language of the command line's messages and help; unset: Dutch when the locale
    # (LC_ALL, LC_MESSAGES, LANG) is Dutch, English otherwise (`load_settings`).
    language: Literal["nl", "en"] = "en"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(_("not a database URL: {reason}").format(reason=exc)) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(_("only sqlite:/// and postgresql:// URLs are supported"))
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_smtp_url(value.strip())
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.isascii() or any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError(
                _(
                    "holds a space, a line break or a non-ASCII character; write the address as "
                    "plain ASCII (an internationalised domain in its xn-- form)"
                )
            )
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
            raise ValueError(
                _("must be an http:// or https:// address, e.g. https://nieuws.example.nl")
            )
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError(
                _("must not hold a '?' or '#': links are built by adding a path to it")
            )
        return value.rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(
                _("must be at least {count} characters long").format(count=MIN_KEY_LENGTH)
            )
        return value

    @field_validator("old_secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("old_secret_keys")
    @classmethod
    def _check_old_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for number, key in enumerate(value, start=1):
            if len(key.get_secret_value()) < MIN_KEY_LENGTH:
                raise ValueError(
                    _(
                        "key {number} is shorter than {count} characters; an old key must be "
                        "as strong as a new one (links signed with it stay valid)"
                    ).format(number=number, count=MIN_KEY_LENGTH)
                )
        return value

    @field_validator("list_name", "postal_address")
    @classmethod
    def _check_line(cls, value: str) -> str:
        problem = line_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return " ".join(value.split())

    @field_validator("list_id")
    @classmethod
    def _check_list_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if len(value) > 200 or not _LIST_ID.fullmatch(value):
            raise ValueError(_("must look like weekly.nieuws.example.nl (letters, digits, dots)"))
        return value

    @field_validator("from_")
    @classmethod
    def _check_from(cls, value: str) -> str:
        return check_mailbox(value)

    @field_validator("transactional_from")
    @classmethod
    def _check_transactional_from(cls, value: str | None) -> str | None:
        return check_mailbox(value) if value and value.strip() else None

    @field_validator("bounce_address")
    @classmethod
    def _check_bounce_address(cls, value: str | None) -> str | None:
        return check_bounce_address(value)

    @field_validator("bounce_imap_url")
    @classmethod
    def _check_imap_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_imap_url(value.get_secret_value().strip())
        return value

    @field_validator("feedback_sender_id")
    @classmethod
    def _check_feedback_sender_id(cls, value: str) -> str:
        return check_feedback_sender_id(value)

    @field_validator("dkim_key_file")
    @classmethod
    def _check_dkim_keys(cls, value: str | None) -> str | None:
        return check_dkim_key_files(value)

    @field_validator("dkim_selector", "dkim_domain")
    @classmethod
    def _check_dns_label(cls, value: str | None) -> str | None:
        return check_dns_names(value)

    @model_validator(mode="after")
    def _check_dkim_complete(self) -> Settings:
        selectors = len((self.dkim_selector or "").split(",")) if self.dkim_selector else 0
        keys = len(split_list(self.dkim_key_file or ""))
        if selectors != keys:
            raise ValueError(
                _(
                    "NEWSLETTER_DKIM_SELECTOR and NEWSLETTER_DKIM_KEY_FILE go together: one "
                    "selector per key file, in the same order (e.g. nl-rsa,nl-ed with "
                    "rsa.pem,ed25519.pem)"
                )
            )
        return self

    @field_validator("author_email")
    @classmethod
    def _check_author_email(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            checked = validate_email(
                value.strip(), check_deliverability=False, allow_smtputf8=False
            )
        except EmailNotValidError as exc:
            raise ValueError(_("not a usable address: {reason}").format(reason=exc)) from None
        return checked.ascii_email or checked.normalized

    @field_validator("themes", mode="before")
    @classmethod
    def _split_themes(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("themes")
    @classmethod
    def _check_themes(cls, value: list[str]) -> list[str]:
        for theme in value:
            problem = line_problem(theme)
            if problem is not None:
                raise ValueError(
                    _("the theme {theme!r} {problem}").format(theme=theme, problem=problem)
                )
        if not value:
            raise ValueError(_("give at least one theme, e.g. loslaten,vasthouden,zachtheid"))
        if len({theme.casefold() for theme in value}) != len(value):
            raise ValueError(_("a theme is listed twice"))
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                _("unknown time zone {zone!r}, e.g. Europe/Amsterdam").format(zone=value)
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(
                _("not a cron expression ({reason}); e.g. '0 7 * * sun'").format(reason=exc)
            ) from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _language_from_locale(cls, data: Any) -> Any:
        """NEWSLETTER_LANGUAGE unset: Dutch when the locale is Dutch, English otherwise."""
        if isinstance(data, dict) and not data.get("language"):
            return {**data, "language": i18n.from_locale(os.environ)}
        return data

    # Derived values.

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def smtp(self) -> SmtpConfig | None:
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None

    @property
    def sender(self) -> Address:
        name, addr = parseaddr(self.from_)
        return Address(display_name=name, addr_spec=addr)

    @property
    def sender_domain(self) -> str:
        return self.sender.domain

    @property
    def transactional_sender(self) -> Address:
        name, addr = parseaddr(self.transactional_from or self.from_)
        return Address(display_name=name, addr_spec=addr)

    @property
    def effective_list_id(self) -> str:
        return self.list_id or f"weekly.{self.sender_domain}"

    def secret_keys(self) -> list[bytes]:
        """The signing key first, then the older keys still accepted; raises without a key."""
        if self.secret_key is not None:
            current = self.secret_key.get_secret_value()
        elif self.demo:
            logging.getLogger(__name__).warning("NEWSLETTER_DEMO is on: using the public demo key")
            current = DEMO_SECRET_KEY
        else:
            raise SettingsError(
                _(
                    "NEWSLETTER_SECRET_KEY is not set: it signs the unsubscribe links. "
                    "Make one with\n  python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            )
        return [current.encode()] + [k.get_secret_value().encode() for k in self.old_secret_keys]


def env_name(field: str) -> str:
    """The environment variable that sets a settings field."""
    info = Settings.model_fields.get(field)
    if info is not None and info.alias:
        return info.alias
    return PREFIX + field.upper()


def messages_language(overrides: dict[str, Any] | None = None) -> str:
    """The language to speak before the settings are read (help, and their own errors)."""
    given = (overrides or {}).get("language") or os.environ.get(PREFIX + "LANGUAGE", "")
    return given if given in i18n.LANGUAGES else i18n.from_locale(os.environ)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; a bad value raises SettingsError naming the variable. The
    program's messages are in the settings' `language` from now on (`newsletter.i18n`)."""
    i18n.use(messages_language(overrides))
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            said = describe_problem(error)
            lines.append(f"{env_name(str(error['loc'][0]))}: {said}" if error["loc"] else said)
        raise SettingsError("\n".join(lines)) from None
    i18n.use(settings.language)
    return settings
