"""Render an issue into the edition's HTML and text once; fill in personal parts per recipient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import mjml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from newsletter.mail import markup, plaintext
from newsletter.mail.images import FOLDER, Images
from newsletter.resources import resource_dir
from newsletter.settings import Settings

_DAYS = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
_MONTHS = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)  # fmt: skip - twelve month names read best as a block, not one per line


class RenderError(RuntimeError):
    """A template could not be rendered or compiled."""


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


def images(settings: Settings) -> Images:
    """The images of this installation: `beelden/` in the issues folder, published at /beelden/."""
    return Images(settings.base_url, settings.issues_dir / FOLDER)


def compile_mjml(source: str, what: str) -> str:
    """MJML to HTML (mjml-python); RenderError names `what` did not compile."""
    try:
        return str(mjml.mjml2html(source))
    except Exception as exc:  # mjml-python raises its own Rust-side error types
        raise RenderError(f"the {what} MJML did not compile: {exc}") from exc


def dutch_date(moment: datetime) -> str:
    """'zondag 29 november 2026'."""
    return f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def markdown_to_html(body: str, settings: Settings) -> Markup:
    """The author's Markdown as HTML, images resolved; raw HTML in it is shown as text."""
    return markup.to_html(body, images(settings))


@dataclass(frozen=True)
class Markers:
    """Per-edition placeholders for the personal parts; unguessable, so no author text hits them."""

    greeting: str
    unsubscribe_url: str

    @classmethod
    def for_seed(cls, seed: str) -> Markers:
        return cls(greeting=f"NLP{seed}G", unsubscribe_url=f"NLP{seed}U")


@dataclass(frozen=True)
class IssueContent:
    """What the templates need from an issue, whether a draft file or a queued snapshot."""

    subject: str
    theme: str
    question: str
    preheader: str | None
    body: str


@dataclass(frozen=True)
class RenderedEdition:
    subject: str
    html: str
    text: str


def letter_context(content: IssueContent, settings: Settings, send_at: datetime) -> dict[str, Any]:
    """What the email and its web page both say about one letter."""
    return {
        **house_context(settings),
        "subject": content.subject,
        "preheader": content.preheader or content.question,
        "edition_date": dutch_date(send_at.astimezone(settings.zone)),
        "theme": content.theme,
        "theme_label": content.theme.capitalize(),
        "question": content.question,
    }


def render_edition(
    content: IssueContent,
    settings: Settings,
    *,
    seed: str,
    send_at: datetime,
    letter_url: str | None = None,
) -> RenderedEdition:
    """Render and compile the email once, with markers where each recipient's parts go.

    `letter_url` is the letter's page online ("Lees deze brief online"), None without archive.
    """
    markers = Markers.for_seed(seed)
    context = {
        **letter_context(content, settings, send_at),
        "greeting": markers.greeting,
        "unsubscribe_url": markers.unsubscribe_url,
        "letter_url": letter_url or "",
    }
    env = environment()
    mjml_source = env.get_template("email/newsletter.mjml.j2").render(
        body_html=markdown_to_html(content.body, settings), **context
    )
    html = compile_mjml(mjml_source, "newsletter")
    text_body = plaintext.to_text(content.body)
    text = env.get_template("email/newsletter.txt.j2").render(
        body_text=text_body.body,
        links=text_body.links,
        subject_lines=plaintext.wrap(content.subject),
        question_lines=plaintext.wrap(content.question, plaintext.WIDTH, "    "),
        **context,
    )
    return RenderedEdition(subject=content.subject, html=html, text=text)


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
