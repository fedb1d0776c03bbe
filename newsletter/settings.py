"""The one settings object, read once at start-up from NEWSLETTER_* variables (or a .env)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from newsletter.text import line_problem

PREFIX = "NEWSLETTER_"
MIN_KEY_LENGTH = 16
_LIST_ID = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
DEMO_SECRET_KEY = "demo-only-secret-key-do-not-use-in-production"  # noqa: S105 - public on purpose


class SettingsError(ValueError):
    """A configuration value is missing or wrong; the message names the variable."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP relay."""

    host: str
    port: int
    security: Literal["none", "starttls", "tls"]
    username: str | None
    password: str | None


def parse_smtp_url(value: str) -> SmtpConfig:
    """Parse smtp://, smtp+starttls:// or smtps:// URLs with optional user:password@."""
    parts = urlsplit(value)
    schemes: dict[str, tuple[Literal["none", "starttls", "tls"], int]] = {
        "smtp": ("none", 25),
        "smtp+starttls": ("starttls", 587),
        "smtps": ("tls", 465),
    }
    if parts.scheme not in schemes:
        raise ValueError(
            f"scheme must be smtp://, smtp+starttls:// or smtps://, not {parts.scheme or 'none'}"
        )
    if not parts.hostname:
        raise ValueError("the URL has no host")
    security, default_port = schemes[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return SmtpConfig(parts.hostname, port, security, user, password)


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


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

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL: {exc}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("only sqlite:/// and postgresql:// URLs are supported")
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
                "holds a space, a line break or a non-ASCII character; write the address as "
                "plain ASCII (an internationalised domain in its xn-- form)"
            )
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
            raise ValueError(
                "must be an http:// or https:// address, e.g. https://nieuws.example.nl"
            )
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("must not hold a '?' or '#': links are built by adding a path to it")
        return value.rstrip("/")

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_KEY_LENGTH} characters long")
        return value

    @field_validator("old_secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("old_secret_keys")
    @classmethod
    def _check_old_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for number, key in enumerate(value, start=1):
            if len(key.get_secret_value()) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"key {number} is shorter than {MIN_KEY_LENGTH} characters; an old key "
                    "must be as strong as a new one (links signed with it stay valid)"
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
            raise ValueError("must look like weekly.nieuws.example.nl (letters, digits, dots)")
        return value

    @field_validator("from_")
    @classmethod
    def _check_from(cls, value: str) -> str:
        problem = line_problem(value)
        if problem is not None:
            raise ValueError(problem)
        name, addr = parseaddr(value)
        name = " ".join(name.split())  # as a header shows it: runs of spaces are one
        if not addr or "@" not in addr:
            raise ValueError("must look like 'Naam <adres@domein>'")
        try:
            checked = validate_email(addr, check_deliverability=False, allow_smtputf8=False)
        except EmailNotValidError as exc:
            raise ValueError(f"not a usable address: {exc}") from None
        try:
            # The address as it goes on the wire: an internationalised domain in its xn-- form.
            return str(Address(display_name=name, addr_spec=checked.ascii_email or addr))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"not a usable address: {exc}") from None

    @field_validator("themes", mode="before")
    @classmethod
    def _split_themes(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("themes")
    @classmethod
    def _check_themes(cls, value: list[str]) -> list[str]:
        for theme in value:
            problem = line_problem(theme)
            if problem is not None:
                raise ValueError(f"the theme {theme!r} {problem}")
        if not value:
            raise ValueError("give at least one theme, e.g. loslaten,vasthouden,zachtheid")
        if len(set(value)) != len(value):
            raise ValueError("a theme is listed twice")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Europe/Amsterdam") from None
        return value

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"not a cron expression ({exc}); e.g. '0 7 * * sun'") from None
        return value

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
                "NEWSLETTER_SECRET_KEY is not set: it signs the unsubscribe links. Make one with\n"
                "  python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return [current.encode()] + [k.get_secret_value().encode() for k in self.old_secret_keys]


def env_name(field: str) -> str:
    """The environment variable that sets a settings field."""
    info = Settings.model_fields.get(field)
    if info is not None and info.alias:
        return info.alias
    return PREFIX + field.upper()


def load_settings(**overrides: Any) -> Settings:
    """Read the settings once; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{env_name(field)}: {message}")
        raise SettingsError("\n".join(lines)) from None
