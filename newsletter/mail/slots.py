"""The personal parts of a letter, kept apart from rendering so that sending needs no Markdown,
MJML or image library: the Jinja environment, what every template may say about the house, the
per-edition markers, the greeting, and how a rendered document is split on its markers and
filled in per recipient."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import escape

from newsletter.resources import resource_dir
from newsletter.settings import Settings


@lru_cache(maxsize=4)
def environment(templates: Path | None = None) -> Environment:
    """The Jinja environment over templates/: HTML and MJML escaped, text not."""
    return Environment(
        loader=FileSystemLoader(templates or resource_dir("templates")),
        autoescape=select_autoescape(enabled_extensions=("html", "mjml", "mjml.j2", "html.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class Markers:
    """Per-edition placeholders for the personal parts; unguessable, so no author text hits them."""

    greeting: str
    unsubscribe_url: str

    @classmethod
    def for_seed(cls, seed: str) -> Markers:
        return cls(greeting=f"NLP{seed}G", unsubscribe_url=f"NLP{seed}U")


@lru_cache(maxsize=1)
def _greeting_template() -> Template:
    return environment().get_template("email/greeting.txt.j2")


@lru_cache(maxsize=4096)
def greeting(name: str | None) -> str:
    """The personal greeting line, from templates/email/greeting.txt.j2."""
    return _greeting_template().render(name=name or "").strip()


def split_on_markers(document: str, markers: Markers) -> list[str | int]:
    """The document as static pieces and slots: 0 for the greeting, 1 for the unsubscribe URL."""
    pieces: list[str | int] = []
    rest = document
    slots = {markers.greeting: 0, markers.unsubscribe_url: 1}
    while True:
        found = [(rest.find(marker), marker) for marker in slots if marker in rest]
        if not found:
            pieces.append(rest)
            return pieces
        index, marker = min(found)
        pieces.append(rest[:index])
        pieces.append(slots[marker])
        rest = rest[index + len(marker) :]


def slot_values(greeting_text: str, url: str, *, html: bool) -> tuple[str, str]:
    """What goes in the slots (0: greeting, 1: URL), escaped where the document is HTML."""
    return (str(escape(greeting_text)), str(escape(url))) if html else (greeting_text, url)


def personalise(
    document: str, markers: Markers, *, greeting_text: str, url: str, html: bool
) -> str:
    """Fill in one recipient's parts."""
    values = slot_values(greeting_text, url, html=html)
    return "".join(
        piece if isinstance(piece, str) else values[piece]
        for piece in split_on_markers(document, markers)
    )


def house_context(settings: Settings) -> dict[str, str]:
    """What every template may say about the list, its sender and its author.

    `sender_is_list` is "yes" when the sender's name is the list's name, so a text can say it
    once instead of twice.
    """
    sender = settings.sender
    sender_name = sender.display_name or settings.list_name
    return {
        "list_name": settings.list_name,
        "sender_name": sender_name,
        "sender_is_list": "yes" if sender_name == settings.list_name else "",
        "author_name": settings.author_name or sender_name,
        "sender_email": sender.addr_spec,
        "postal_address": settings.postal_address,
    }
