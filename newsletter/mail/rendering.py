"""Render an issue into the edition's HTML and text once; fill in personal parts per recipient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import mjml
from markupsafe import Markup

from newsletter.mail import markup, plaintext
from newsletter.mail.images import FOLDER, Images
from newsletter.mail.slots import Markers, environment, house_context
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
