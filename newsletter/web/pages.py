"""What every page shares: the site's state on `app.state`, templates, error pages, time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from newsletter.mail.rendering import dutch_date
from newsletter.mail.slots import house_context
from newsletter.publishing import planning
from newsletter.readers import consent
from newsletter.settings import Settings

T = TypeVar("T")


class Site:
    """The settings, keys, database and templates the pages are made of (on `app.state.site`)."""

    def __init__(
        self, settings: Settings, factory: sessionmaker[Session], templates: Jinja2Templates
    ) -> None:
        self.settings = settings
        self.keys = settings.secret_keys()
        self.factory = factory
        self.templates = templates
        self.context = house_context(settings)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def local_date(self, moment: datetime) -> str:
        """'zondag 29 november 2026' in the list's time zone."""
        return dutch_date(moment.astimezone(self.settings.zone))

    def next_letter(self) -> str | None:
        """When the next letter goes out, as a Dutch date."""
        times = planning.next_times(self.settings, self.now(), 1)
        return self.local_date(times[0]) if times else None


def site(request: Request) -> Site:
    """The running site, from the app's state."""
    found: Site = request.app.state.site
    return found


def page(request: Request, template: str, status: int = 200, /, **context: Any) -> Response:
    here = site(request)
    return here.templates.TemplateResponse(
        request, template, {**here.context, **context}, status_code=status
    )


def problem(request: Request, kind: str, status: int) -> Response:
    """One of the error pages in web/problem.html."""
    return page(request, "web/problem.html", status, problem=kind)


def not_found(request: Request) -> Response:
    return problem(request, "not_found", 404)


def ip_for_log(request: Request) -> str | None:
    """The client's network for the consent log, only when the operator turned that on."""
    if not site(request).settings.consent_log_ip or request.client is None:
        return None
    return consent.shorten_ip(request.client.host)


async def in_thread(work: Callable[[], T]) -> T:
    """Run blocking database work off the event loop."""
    return await run_in_threadpool(work)
