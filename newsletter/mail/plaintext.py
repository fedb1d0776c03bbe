"""The letter's plain-text part, rendered from the Markdown's syntax tree, not copied from it.

No `*`, `_` or `#` reach the reader: emphasis is the words themselves, a heading stands on its
own line, lists get dashes (or numbers), a block quote is indented, and a link becomes
`tekst [1]` with its address listed under the letter. The author's line breaks are kept, and
every line is wrapped at 72 characters, never inside a word, so an address is never broken
(a longer one gets a line of its own).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from markdown_it.tree import SyntaxTreeNode

from newsletter.mail.markup import parser

WIDTH = 72
MIN_WIDTH = 24  # nested lists and quotes never squeeze the text narrower than this
QUOTE_INDENT = "    "
RULE = "· · ·"


def wrap(text: str, width: int = WIDTH, indent: str = "") -> list[str]:
    """Each line of `text` wrapped at `width` (with `indent` before every line), words whole."""
    wrapper = textwrap.TextWrapper(
        width=max(width, MIN_WIDTH),
        initial_indent=indent,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(wrapper.wrap(line) or [""])
    return lines


@dataclass
class _Letter:
    """One rendering: the addresses of the links, numbered in the order they first appear."""

    links: list[str] = field(default_factory=list)

    def number(self, href: str) -> int:
        if href not in self.links:
            self.links.append(href)
        return self.links.index(href) + 1

    def inline(self, node: SyntaxTreeNode) -> str:
        """A paragraph's words, with '\\n' where the author broke the line."""
        return "".join(self._inline_piece(child) for child in node.children)

    def _inline_piece(self, node: SyntaxTreeNode) -> str:
        kind = node.type
        if kind in ("text", "code_inline", "html_inline"):
            return node.content
        if kind in ("softbreak", "hardbreak"):
            return "\n"
        if kind == "image":
            return f"[Afbeelding: {self.inline(node)}]"
        words = self.inline(node)
        if kind != "link":
            return words  # em, strong and the like: the words, without their markers
        href = str(node.attrs.get("href", ""))
        if words in (href, href.removeprefix("mailto:")):
            return words  # <https://…> or <iemand@voorbeeld.nl>: the address is the text
        return f"{words} [{self.number(href)}]"

    def blocks(self, nodes: list[SyntaxTreeNode], width: int, *, tight: bool = False) -> list[str]:
        """Block nodes as lines, a blank line between blocks (none in a tight list item)."""
        lines: list[str] = []
        for node in nodes:
            rendered = self.block(node, width)
            if lines and not tight:
                lines.append("")
            lines.extend(rendered)
        return lines

    def block(self, node: SyntaxTreeNode, width: int) -> list[str]:
        render = _BLOCKS.get(node.type)
        if render is not None:
            return render(self, node, width)
        if node.children:  # anything else with content: its blocks or its words
            inline = node.children[0].type == "inline"
            return (
                wrap(self.inline(node.children[0]), width)
                if inline
                else self.blocks(node.children, width)
            )
        return wrap(node.content.rstrip("\n"), width)

    def paragraph(self, node: SyntaxTreeNode, width: int) -> list[str]:
        return wrap(self.inline(node.children[0]), width)

    def code(self, node: SyntaxTreeNode, width: int) -> list[str]:
        return wrap(node.content.rstrip("\n"), width, QUOTE_INDENT)

    def quote(self, node: SyntaxTreeNode, width: int) -> list[str]:
        inner = self.blocks(node.children, width - len(QUOTE_INDENT))
        return [QUOTE_INDENT + line if line else "" for line in inner]

    def items(self, node: SyntaxTreeNode, width: int) -> list[str]:
        ordered = node.type == "ordered_list"
        start = int(str(node.attrs.get("start", 1))) if ordered else 1
        last = start + len(node.children) - 1
        hang = len(f"{last}. ") if ordered else 2
        tight = all(
            child.hidden
            for item in node.children
            for child in item.children
            if child.type == "paragraph"
        )
        lines: list[str] = []
        for number, item in enumerate(node.children, start):
            marker = f"{number}. ".ljust(hang) if ordered else "- "
            inner = self.blocks(item.children, width - hang, tight=tight) or [""]
            if lines and not tight:
                lines.append("")
            lines.append(marker + inner[0])
            lines.extend(" " * hang + line if line else "" for line in inner[1:])
        return lines

    def rule(self, node: SyntaxTreeNode, width: int) -> list[str]:
        return [RULE]


_BLOCKS: dict[str, Callable[[_Letter, SyntaxTreeNode, int], list[str]]] = {
    "paragraph": _Letter.paragraph,
    "heading": _Letter.paragraph,  # on its own line, a blank line before and after
    "fence": _Letter.code,
    "code_block": _Letter.code,
    "blockquote": _Letter.quote,
    "bullet_list": _Letter.items,
    "ordered_list": _Letter.items,
    "hr": _Letter.rule,
}


@dataclass(frozen=True)
class PlainText:
    """The body as plain text, and the addresses its `[n]` marks point at, in order."""

    body: str
    links: list[str]


def to_text(body: str) -> PlainText:
    """The author's Markdown as plain text for the letter's text part."""
    letter = _Letter()
    root = SyntaxTreeNode(parser.parse(body))
    lines = letter.blocks(root.children, WIDTH)
    return PlainText("\n".join(line.rstrip() for line in lines), letter.links)
