"""The author's Markdown, parsed once by markdown-it: as HTML for the letter and its web page.

CommonMark with raw HTML off (shown as text, never run) and `breaks` on: a line break the author
types is kept, so a poem keeps its lines. The letter's subject is its `h1`, so the author's
headings move down below it. Images go through `images.Images`: absolute links, at most the
column's width, with width and height for Outlook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup, escape

from newsletter.mail.images import STYLE, Images

parser = MarkdownIt(
    "commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True}
)


def _heading(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    level = min(int(token.tag[1]) + env.get("heading_shift", 1), 6)
    return f"<h{level}>" if token.nesting == 1 else f"</h{level}>\n"


def _image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    images: Images | None = env.get("images")
    shown = images.show(str(token.attrGet("src") or "")) if images else None
    if shown is None:  # refused by the checks; never sent, but never shown either
        return f"[{escape(alt)}]"
    size = f' width="{shown.width}"' + (f' height="{shown.height}"' if shown.height else "")
    return f'<img src="{escape(shown.url)}" alt="{escape(alt)}"{size} style="{STYLE}">'


parser.add_render_rule("heading_open", _heading)
parser.add_render_rule("heading_close", _heading)
parser.add_render_rule("image", _image)


def to_html(body: str, images: Images | None) -> Markup:
    """The author's Markdown as HTML; raw HTML in it is shown as text, never run.

    The author's highest heading becomes an `h2` (under the subject's `h1`), the rest follow it,
    so a screen reader finds no level skipped whether the author started at `#` or at `##`.
    """
    env: dict[str, Any] = {"images": images}
    tokens = parser.parse(body, env)
    levels = [int(t.tag[1]) for t in tokens if t.type == "heading_open"]
    env["heading_shift"] = 2 - min(levels, default=1)
    html = parser.renderer.render(tokens, parser.options, env)
    return Markup(html)  # noqa: S704 - markdown-it escapes, html is off


@dataclass(frozen=True)
class ImageRef:
    """One image in the body: the lines of its block (counted from 0), its src and description."""

    lines: tuple[int, int] | None
    src: str
    alt: str


def image_refs(body: str) -> list[ImageRef]:
    """Every image in the body, in order."""
    found: list[ImageRef] = []
    for block in parser.parse(body):
        lines = (block.map[0], block.map[1]) if block.map else None
        for token in block.children or []:
            for inner in _walk(token):
                if inner.type == "image":
                    alt = "".join(t.content for t in _walk(inner) if t.type != "image")
                    found.append(ImageRef(lines, str(inner.attrGet("src") or ""), alt))
    return found


def _walk(token: Token) -> list[Token]:
    out = [token]
    for child in token.children or []:
        out.extend(_walk(child))
    return out
