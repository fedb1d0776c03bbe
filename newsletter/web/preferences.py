"""The page behind the footer link: leave (RFC 8058 one-click), pause, resume, come back.

Every route here carries the reader's unsubscribe token. GET and HEAD only show the page (mail
scanners open links); only a POST changes anything.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from newsletter import links
from newsletter.readers import consent, subscriptions
from newsletter.storage.db import transaction
from newsletter.storage.models import Subscriber, SubscriberStatus
from newsletter.web.guards import read_form
from newsletter.web.pages import in_thread, ip_for_log, not_found, page, problem, site

log = logging.getLogger(__name__)

VIA_FIELD = "via"  # the footer page's form says "via=pagina"; a mail client's POST does not
VIA_PAGE = "pagina"
PAUSE_CHOICES = (2, 4, 8, 12)
WEEKS = re.compile(r"[0-9]{1,2}")
BAD_INPUT = object()  # what a change returns for a form it cannot use


def _token_id(request: Request) -> str | None:
    return links.read(site(request).keys, links.Purpose.UNSUBSCRIBE, request.path_params["token"])


def _urls(request: Request) -> dict[str, str]:
    token = request.path_params["token"]
    return {
        "action_url": links.path(links.UNSUBSCRIBE, token),
        "pause_url": links.path(links.PAUSE, token),
        "resume_url": links.path(links.RESUME, token),
        "come_back_url": links.path(links.COME_BACK, token),
    }


def _left_page(request: Request) -> Response:
    return page(
        request, "web/left.html", consent=consent.current(site(request).settings), **_urls(request)
    )


async def preferences_page(request: Request) -> Response:
    """GET/HEAD of any route here: the page with the buttons; nothing changes."""
    found = _token_id(request)
    if found is None:
        return not_found(request)
    here = site(request)

    def look() -> Subscriber | None:
        with here.factory() as session:
            return subscriptions.find_by_token_id(session, found)

    subscriber = await in_thread(look)
    if subscriber is None:
        return not_found(request)
    if subscriber.status is SubscriberStatus.UNSUBSCRIBED:
        return _left_page(request)
    until = subscriber.paused_until
    return page(
        request,
        "web/preferences.html",
        subscribed=subscriber.status is SubscriberStatus.SUBSCRIBED,
        paused_until=here.local_date(until) if until and until > here.now() else None,
        pause_weeks=PAUSE_CHOICES,
        via_field=VIA_FIELD,
        via_page=VIA_PAGE,
        pause_first="pauzeren" in request.query_params,  # the letter's pause link
        **_urls(request),
    )


def _via_page(content_type: str, body: bytes) -> bool:
    """Whether the footer page's form sent this POST (it says so in a hidden field)."""
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return False
    try:
        fields = parse_qs(body.decode("latin-1"), max_num_fields=20)
    except ValueError:  # more fields than any form of ours sends: not the page
        return False
    return fields.get(VIA_FIELD) == [VIA_PAGE]


async def unsubscribe(request: Request) -> Response:
    """RFC 8058: no cookie, no CSRF token; any body (one-click, a form or nothing) will do."""
    body = await request.body()
    found = _token_id(request)
    if found is None:
        return not_found(request)
    via = consent.Source.ONE_CLICK
    if _via_page(request.headers.get("content-type", ""), body):
        via = consent.Source.FOOTER_LINK
    here = site(request)
    client_ip = ip_for_log(request)

    def act() -> int | None:
        with transaction(here.factory) as session:
            subscriber = subscriptions.find_by_token_id(session, found)
            if subscriber is None:
                return None
            subscriptions.unsubscribe(
                session, subscriber, here.now(), source=via, client_ip=client_ip
            )
            return subscriber.id

    subscriber_id = await in_thread(act)
    if subscriber_id is None:
        return not_found(request)
    log.info("unsubscribe (%s) for subscriber %s", via, subscriber_id)
    return _left_page(request)


Change = Callable[[Session, Subscriber, Any, str | None], Any]


async def _change(request: Request, template: str, change: Change) -> Response:
    """A POST behind the token that changes one thing and shows what it did."""
    form = await read_form(request)
    found = _token_id(request)
    if found is None:
        return not_found(request)
    here = site(request)
    client_ip = ip_for_log(request)

    def act() -> tuple[bool, Any]:
        with transaction(here.factory) as session:
            subscriber = subscriptions.find_by_token_id(session, found)
            if subscriber is None:
                return False, None
            return True, change(session, subscriber, form, client_ip)

    exists, result = await in_thread(act)
    if not exists:
        return not_found(request)
    if result is BAD_INPUT:
        return problem(request, "bad_request", 400)
    return page(request, template, result=result, next_letter=here.next_letter(), **_urls(request))


async def pause(request: Request) -> Response:
    here = site(request)

    def change(session: Session, subscriber: Subscriber, form: Any, ip: str | None) -> Any:
        weeks = form.get("weken")
        if not isinstance(weeks, str) or not WEEKS.fullmatch(weeks):
            return BAD_INPUT  # ASCII digits only: '²' is a digit to Python, not a number
        if subscriber.status is not SubscriberStatus.SUBSCRIBED:
            return None
        until = subscriptions.pause(session, subscriber, int(weeks), here.now(), client_ip=ip)
        return BAD_INPUT if until is None else here.local_date(until)

    return await _change(request, "web/paused.html", change)


async def resume(request: Request) -> Response:
    here = site(request)

    def change(session: Session, subscriber: Subscriber, _form: Any, ip: str | None) -> Any:
        subscriptions.resume(session, subscriber, here.now(), client_ip=ip)
        return subscriber.status is SubscriberStatus.SUBSCRIBED

    return await _change(request, "web/resumed.html", change)


async def come_back(request: Request) -> Response:
    here = site(request)

    def change(session: Session, subscriber: Subscriber, _form: Any, ip: str | None) -> Any:
        text = consent.current(here.settings)
        consent.remember(session, text, here.now())
        subscriptions.resubscribe(session, subscriber, here.now(), text.version, client_ip=ip)
        return subscriber.status is SubscriberStatus.SUBSCRIBED

    return await _change(request, "web/resubscribed.html", change)
