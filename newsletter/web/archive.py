"""The public side: the home page, the archive of sent letters, one letter, a theme, the feed.

Nothing personal is on these pages: a letter is rendered from its issue's snapshot with the
greeting a reader without a name gets and no token anywhere, and its footer offers the sign-up
instead of the unsubscribe. The pages are the same for everyone, so a proxy may keep them for a
few minutes (`Cache-Control`); with NEWSLETTER_ARCHIVE off they answer 404.
"""

from __future__ import annotations

import os
from typing import Any

from feedgen.feed import FeedGenerator
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from newsletter import links
from newsletter.mail.rendering import letter_context, markdown_to_html
from newsletter.mail.slots import greeting
from newsletter.publishing import archive
from newsletter.publishing.archive import Letter
from newsletter.web import signup
from newsletter.web.guards import SECURITY_HEADERS
from newsletter.web.pages import Site, in_thread, not_found, page, site

PAGE_SIZE = 10
FEED_SIZE = 20
PUBLIC_CACHE = "public, max-age=300"  # five minutes: a new letter shows up soon enough
IMAGE_CACHE = "public, max-age=86400"
# A letter may show https:// images from elsewhere; everything else stays as strict as the site.
LETTER_CSP = SECURITY_HEADERS["content-security-policy"].replace(
    "img-src 'self'", "img-src 'self' https:"
)


def _public(response: Response, *, csp: str | None = None) -> Response:
    response.headers["cache-control"] = PUBLIC_CACHE
    if csp:
        response.headers["content-security-policy"] = csp
    return response


def _summary(here: Site, letter: Letter) -> dict[str, Any]:
    """What a list of letters shows of one."""
    content = letter.content
    return {
        "url": links.letter_path(letter.slug),
        "subject": content.subject,
        "question": content.question,
        "date": here.local_date(letter.sent_at),
        "iso_date": letter.sent_at.astimezone(here.settings.zone).date().isoformat(),
        "theme": content.theme,
        "theme_label": content.theme.capitalize(),
        "theme_url": links.theme_path(content.theme),
    }


def _shared(here: Site, path: str) -> dict[str, Any]:
    """What every public page says: its canonical address and the archive's."""
    return {
        "canonical": here.settings.base_url + path,
        "feed_url": here.settings.base_url + links.ARCHIVE_FEED,
        "archive_path": links.ARCHIVE,
        "signup_path": links.SIGNUP,
    }


async def home(request: Request) -> Response:
    """The bare domain: the sign-up form, with the latest letter's title under it."""
    here = site(request)
    latest = None
    if here.settings.archive:

        def look() -> Letter | None:
            with here.factory() as session:
                return archive.latest(session, here.now())

        found = await in_thread(look)
        latest = _summary(here, found) if found else None
    return await signup.show_form(request, latest=latest, archive_path=links.ARCHIVE)


def _page_number(request: Request) -> int | None:
    value = request.query_params.get("pagina", "1")
    return int(value) if value.isdigit() and 0 < int(value) < 100_000 else None


async def _listing(request: Request, theme: str | None) -> Response:
    here = site(request)
    number = _page_number(request)
    if not here.settings.archive or number is None:
        return not_found(request)
    if theme is not None and theme not in here.settings.themes:
        return not_found(request)

    def look() -> tuple[list[Letter], int]:
        with here.factory() as session:
            now = here.now()
            found = archive.letters(
                session, now, theme=theme, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE
            )
            return found, archive.count(session, now, theme=theme)

    found, total = await in_thread(look)
    pages = max(1, -(-total // PAGE_SIZE))
    if number > pages:
        return not_found(request)
    path = links.ARCHIVE if theme is None else links.theme_path(theme)
    response = page(
        request,
        "web/archive.html",
        letters=[_summary(here, letter) for letter in found],
        theme=theme,
        themes=[(t, t.capitalize(), links.theme_path(t)) for t in here.settings.themes],
        page_number=number,
        newer_url=f"{path}?pagina={number - 1}" if number > 2 else (path if number == 2 else None),
        older_url=f"{path}?pagina={number + 1}" if number < pages else None,
        next_letter=here.next_letter(),
        **_shared(here, path if number == 1 else f"{path}?pagina={number}"),
    )
    return _public(response)


async def index(request: Request) -> Response:
    """/archief: every sent letter, newest first, ten a page."""
    return await _listing(request, None)


async def theme_page(request: Request) -> Response:
    """/archief/thema/<theme>: one theme's letters."""
    return await _listing(request, request.path_params["theme"])


async def letter_page(request: Request) -> Response:
    """/archief/<slug>: one letter as a web page, as it was sent but without anything personal."""
    here = site(request)
    if not here.settings.archive:
        return not_found(request)
    slug = request.path_params["slug"]

    def look() -> tuple[Letter | None, tuple[Letter | None, ...]]:
        with here.factory() as session:
            now = here.now()
            found = archive.find(session, slug, now)
            return found, (archive.neighbours(session, found, now) if found else (None, None))

    letter, (older, newer) = await in_thread(look)
    if letter is None:
        return not_found(request)
    context = letter_context(letter.content, here.settings, letter.sent_at)
    response = page(
        request,
        "web/letter.html",
        **context,
        greeting=greeting(None),
        body_html=markdown_to_html(letter.content.body, here.settings),
        letter=_summary(here, letter),
        older=_summary(here, older) if older else None,
        newer=_summary(here, newer) if newer else None,
        **_shared(here, links.letter_path(letter.slug)),
    )
    return _public(response, csp=LETTER_CSP)


def _feed(here: Site, letters: list[Letter]) -> bytes:
    """An Atom feed of these letters (newest first), every link absolute."""
    base = here.settings.base_url
    context = here.context
    feed = FeedGenerator()
    feed.id(base + links.ARCHIVE)
    feed.title(context["list_name"])
    feed.subtitle(f"De brieven van {context['author_name']}, elke week één.")
    feed.author({"name": context["author_name"]})
    feed.language("nl")
    feed.link(href=base + links.ARCHIVE, rel="alternate", type="text/html")
    feed.link(href=base + links.ARCHIVE_FEED, rel="self", type="application/atom+xml")
    feed.updated(letters[0].sent_at if letters else here.now())
    for letter in letters:
        url = links.letter_url(base, letter.slug)
        content = letter.content
        entry = feed.add_entry(order="append")
        entry.id(url)
        entry.title(content.subject)
        entry.link(href=url, rel="alternate", type="text/html")
        entry.published(letter.sent_at)
        entry.updated(letter.sent_at)
        entry.category(term=content.theme, label=content.theme.capitalize())
        entry.summary(content.preheader or content.question)
        entry.content(_feed_html(here, letter), type="html")
    data: bytes = feed.atom_str(pretty=True)
    return data


def _feed_html(here: Site, letter: Letter) -> str:
    body = markdown_to_html(letter.content.body, here.settings)
    question = here.templates.env.from_string(
        "<h2>Vraag voor deze week</h2>\n<p><em>{{ question }}</em></p>"
    ).render(question=letter.content.question)
    return f"{body}{question}"


async def feed(request: Request) -> Response:
    """/archief/feed.xml: the latest letters as Atom (feedgen)."""
    here = site(request)
    if not here.settings.archive:
        return not_found(request)

    def look() -> list[Letter]:
        with here.factory() as session:
            return archive.letters(session, here.now(), limit=FEED_SIZE)

    data = _feed(here, await in_thread(look))
    return _public(Response(data, media_type="application/atom+xml; charset=utf-8"))


class Images(StaticFiles):
    """/beelden/: the issues folder's beelden/, the letters' images, cacheable for a day."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = IMAGE_CACHE
        return response
