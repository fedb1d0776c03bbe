"""The command line in the author's language: help texts translated when help is shown.

Click reads help texts (docstrings, `help=`) when the commands are defined, at import, before
the settings say which language to speak; so the texts stay English in the code (they are the
catalog's message ids) and `Command` and `Group` translate them when help is rendered. Click's
own words ("Usage:", "Options", "Error: …", "Missing argument …") are looked up in the same
catalog: `speak_click` points the `_` and `ngettext` of Click's modules at ours.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import click
import click.core
import click.decorators
import click.exceptions
import click.formatting
import click.parser
import click.termui
import click.types
import click.utils

from newsletter import i18n

CLICK_MODULES = (
    click.core,
    click.decorators,
    click.exceptions,
    click.formatting,
    click.parser,
    click.termui,
    click.types,
    click.utils,
)


class _Helped(Protocol):
    help: str | None


def help_id(text: str) -> str:
    """A help text as the catalog knows it: dedented, up to a form feed."""
    return inspect.cleandoc(text).partition("\f")[0]


def translate_help(text: str | None) -> str | None:
    return i18n.gettext(help_id(text)) if text else text


@contextmanager
def translated(items: Iterable[_Helped]) -> Iterator[None]:
    """The items' help texts in the current language while help is rendered."""
    saved = [(item, item.help) for item in items]
    for item, text in saved:
        item.help = translate_help(text)
    try:
        yield
    finally:
        for item, text in saved:
            item.help = text


class _Translated:
    """Help (the command's own and its options') translated while it is rendered."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with translated([self]):  # type: ignore[list-item]
            super().format_help_text(ctx, formatter)  # type: ignore[misc]

    def get_short_help_str(self, limit: int = 45) -> str:
        with translated([self]):  # type: ignore[list-item]
            text: str = super().get_short_help_str(limit)  # type: ignore[misc]
            return text

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        params = self.get_params(ctx)  # type: ignore[attr-defined]
        with translated([p for p in params if isinstance(p, click.Option)]):
            super().format_options(ctx, formatter)  # type: ignore[misc]


class Command(_Translated, click.Command):
    """A command whose help (its own and its options') is translated when shown."""


class Group(_Translated, click.Group):
    """A group of commands, translated like `Command`; its subcommands are `Command`s."""

    command_class = Command


Group.group_class = Group


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Command]:
    """`click.command`, with help in the author's language."""
    kwargs.setdefault("cls", Command)
    made: Callable[[Callable[..., Any]], Command] = click.command(*args, **kwargs)
    return made


def group(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Group]:
    """`click.group`, with help in the author's language."""
    kwargs.setdefault("cls", Group)
    made: Callable[[Callable[..., Any]], Group] = click.group(*args, **kwargs)
    return made


def speak_click() -> None:
    """Let Click's own messages come from our catalog (its modules call `_` when they speak)."""
    for module in CLICK_MODULES:
        if hasattr(module, "_"):
            module._ = i18n.gettext  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = i18n.ngettext  # type: ignore[attr-defined]
