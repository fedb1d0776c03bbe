"""The web endpoints: sign-up, one-click unsubscribe (RFC 8058), pause, come back, health."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.mail.rendering import dutch_date
from newsletter.readers import consent, subscriptions
from newsletter.resources import resource_dir
from newsletter.settings import Settings
from newsletter.storage.db import check_migrations, make_engine, session_factory, transaction
from newsletter.storage.models import Subscriber, SubscriberStatus
from newsletter.tokens import InvalidToken, verify
from newsletter.web.pages import BodyLimit, Site
from newsletter.web.signup import routes as signup_routes

log = logging.getLogger(__name__)

PROBLEMS = {400: "bad_request", 404: "not_found", 405: "method", 413: "too_large"}
VIA_FIELD = "via"  # the footer page's form says "via=pagina"; a mail client's POST does not
VIA_PAGE = "pagina"
PAUSE_CHOICES = (2, 4, 8, 12)
BAD_INPUT = object()  # what a change returns for a form it cannot use

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """Adds the security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    """The Starlette app; refuses to start on a database with pending migrations."""
    engine = engine or make_engine(settings.database_url)
    check_migrations(engine)
    templates = Jinja2Templates(directory=str(resource_dir("templates")))
    site = Site(settings, session_factory(engine), templates)

    async def healthz(_request: Request) -> Response:
        def ping() -> None:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        await site.db(ping)
        return PlainTextResponse("ok")

    async def http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        problem = PROBLEMS.get(code, "error")
        response = site.problem(request, problem, code)
        if code == 405 and isinstance(exc, HTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response

    def too_large(scope: Scope) -> Response:
        response = site.problem(Request(scope), "too_large", 413)
        response.headers["connection"] = "close"
        return response

    routes = [
        *preference_routes(site),
        *signup_routes(site),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=str(resource_dir("static"))), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes, too_large=too_large),
        ],
        exception_handlers={HTTPException: http_error, 500: http_error},
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


def preference_routes(site: Site) -> list[Route]:
    """Leaving (RFC 8058 one-click), pausing and coming back, all behind the footer's token."""

    def token_id(request: Request) -> str | None:
        try:
            return verify(site.keys, subscriptions.UNSUBSCRIBE, request.path_params["token"])
        except InvalidToken:
            return None

    def urls(request: Request) -> dict[str, str]:
        token = request.path_params["token"]
        return {
            "action_url": f"/afmelden/{token}",
            "pause_url": f"/pauzeren/{token}",
            "resume_url": f"/hervatten/{token}",
            "come_back_url": f"/terugkomen/{token}",
        }

    def paused_date(subscriber: Subscriber) -> str | None:
        until = subscriber.paused_until
        if until is None or until <= site.now():
            return None
        return dutch_date(until.astimezone(site.settings.zone))

    async def preferences_page(request: Request) -> Response:
        found = token_id(request)
        if found is None:
            return site.not_found(request)

        def look() -> Subscriber | None:
            with site.factory() as session:
                return subscriptions.find_by_token_id(session, found)

        subscriber = await site.db(look)
        if subscriber is None:
            return site.not_found(request)
        if subscriber.status is SubscriberStatus.UNSUBSCRIBED:
            return site.page(
                request, "web/left.html", consent=consent.current(site.settings),
                **urls(request),
            )  # fmt: skip
        return site.page(
            request,
            "web/preferences.html",
            subscribed=subscriber.status is SubscriberStatus.SUBSCRIBED,
            paused_until=paused_date(subscriber),
            pause_weeks=PAUSE_CHOICES,
            via_field=VIA_FIELD,
            via_page=VIA_PAGE,
            **urls(request),
        )

    async def unsubscribe(request: Request) -> Response:
        # RFC 8058: no cookie, no CSRF token, any body (one-click, a form or nothing) will do.
        body = await request.body()
        found = token_id(request)
        if found is None:
            return site.not_found(request)
        via = consent.Source.ONE_CLICK
        if _via_page(request.headers.get("content-type", ""), body):
            via = consent.Source.FOOTER_LINK

        def act() -> int | None:
            with transaction(site.factory) as session:
                subscriber = subscriptions.find_by_token_id(session, found)
                if subscriber is None:
                    return None
                subscriptions.unsubscribe(
                    session, subscriber, site.now(), source=via,
                    client_ip=site.ip_for_log(request),
                )  # fmt: skip
                return subscriber.id

        subscriber_id = await site.db(act)
        if subscriber_id is None:
            return site.not_found(request)
        log.info("unsubscribe (%s) for subscriber %s", via, subscriber_id)
        return site.page(
            request, "web/left.html", consent=consent.current(site.settings), **urls(request)
        )

    def changer(
        template: str, change: Callable[[Session, Subscriber, FormData, str | None], Any]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A POST behind the token that changes one thing and shows what it did."""

        async def endpoint(request: Request) -> Response:
            form = await site.form(request)
            found = token_id(request)
            if found is None:
                return site.not_found(request)
            client_ip = site.ip_for_log(request)

            def act() -> tuple[bool, Any]:
                with transaction(site.factory) as session:
                    subscriber = subscriptions.find_by_token_id(session, found)
                    if subscriber is None:
                        return False, None
                    return True, change(session, subscriber, form, client_ip)

            exists, result = await site.db(act)
            if not exists:
                return site.not_found(request)
            if result is BAD_INPUT:
                return site.problem(request, "bad_request", 400)
            return site.page(
                request, template, result=result, next_letter=site.next_letter(),
                **urls(request),
            )  # fmt: skip

        return endpoint

    def pause(session: Session, subscriber: Subscriber, form: FormData, ip: str | None) -> Any:
        weeks = form.get("weken")
        if not isinstance(weeks, str) or not weeks.isdigit():
            return BAD_INPUT
        if subscriber.status is not SubscriberStatus.SUBSCRIBED:
            return None
        until = subscriptions.pause(session, subscriber, int(weeks), site.now(), client_ip=ip)
        if until is None:
            return BAD_INPUT
        return dutch_date(until.astimezone(site.settings.zone))

    def resume(session: Session, subscriber: Subscriber, _form: FormData, ip: str | None) -> Any:
        subscriptions.resume(session, subscriber, site.now(), client_ip=ip)
        return subscriber.status is SubscriberStatus.SUBSCRIBED

    def come_back(session: Session, subscriber: Subscriber, _form: FormData, ip: str | None) -> Any:
        text = consent.current(site.settings)
        consent.remember(session, text, site.now())
        subscriptions.resubscribe(session, subscriber, site.now(), text.version, client_ip=ip)
        return subscriber.status is SubscriberStatus.SUBSCRIBED

    routes = [
        Route("/afmelden/{token}", preferences_page, methods=["GET", "HEAD"]),
        Route("/afmelden/{token}", unsubscribe, methods=["POST"]),
    ]
    for path, template, change in (
        ("/pauzeren/{token}", "web/paused.html", pause),
        ("/hervatten/{token}", "web/resumed.html", resume),
        ("/terugkomen/{token}", "web/resubscribed.html", come_back),
    ):
        # A GET here (a pasted link, a scanner) only shows the page behind the footer link.
        routes.append(Route(path, preferences_page, methods=["GET", "HEAD"]))
        routes.append(Route(path, changer(template, change), methods=["POST"]))
    return routes
