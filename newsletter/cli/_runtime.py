"""What every command shares: settings read once, the database, time parsing, output."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.i18n import N_, _
from newsletter.settings import Settings, SettingsError, load_settings
from newsletter.storage.db import (
    PendingMigrationsError,
    check_migrations,
    make_engine,
    retrying,
    session_factory,
)

F = TypeVar("F", bound=Callable[..., Any])
console = Console(highlight=False, soft_wrap=True)
log = logging.getLogger("newsletter")


class Runtime:
    """What every command shares: the settings, read once, and the database."""

    def __init__(self) -> None:
        try:
            self.settings: Settings = load_settings()
        except SettingsError as exc:
            raise click.ClickException(
                _("bad configuration:\n{problems}").format(problems=exc)
            ) from None

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.settings.database_url)
        # Close the pooled connections when the command ends, not whenever the GC gets to them.
        context = click.get_current_context(silent=True)
        if context is not None:
            context.call_on_close(engine.dispose)
        return engine

    def factory(self, *, check: bool = True) -> sessionmaker[Session]:
        if check:
            try:
                retrying(
                    lambda: check_migrations(self.engine),
                    patience=self.settings.database_patience_seconds,
                )
            except PendingMigrationsError as exc:
                raise click.ClickException(str(exc)) from None
        return session_factory(self.engine)

    def require_secret_key(self) -> None:
        try:
            self.settings.secret_keys()
        except SettingsError as exc:
            raise click.ClickException(str(exc)) from None


pass_runtime = click.make_pass_decorator(Runtime, ensure=True)


def parse_now(value: str | None, settings: Settings) -> datetime:
    """--now as an aware datetime; a time without zone is read in NEWSLETTER_TIMEZONE."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            _("{value!r} is not an ISO-8601 time, e.g. 2026-11-29T07:00").format(value=value),
            param_hint="--now",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=settings.zone)
    return moment.astimezone(UTC)


WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def day(moment: datetime, settings: Settings) -> str:
    """'Sun 2026-11-29' in NEWSLETTER_TIMEZONE ('zo 2026-11-29' in Dutch)."""
    there = moment.astimezone(settings.zone)
    return f"{_(WEEKDAYS[there.weekday()])} {there:%Y-%m-%d}"


def local(moment: datetime, settings: Settings) -> str:
    """'Sun 2026-11-29 07:00 CET' in NEWSLETTER_TIMEZONE."""
    there = moment.astimezone(settings.zone)
    return f"{day(there, settings)} {there:%H:%M %Z}"
