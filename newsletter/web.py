"""The web endpoints: one-click unsubscribe (RFC 8058) and a health check."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import subscriptions
from newsletter.db import check_migrations, make_engine, session_factory, transaction
from newsletter.resources import resource_dir
from newsletter.settings import Settings
from newsletter.tokens import InvalidToken, verify

log = logging.getLogger(__name__)

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
    keys = settings.secret_keys()
    factory = session_factory(engine)
    templates = Jinja2Templates(directory=str(resource_dir("templates")))
    page_context = {"list_name": settings.list_name, "sender_name": settings.sender.display_name}

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(
            request, name, {**page_context, **context}, status_code=status
        )

    def not_found(request: Request) -> Response:
        return page(
            request,
            "web/error.html",
            404,
            title="Deze link werkt niet",
            message="De link is niet (meer) geldig. Kopieer hem in zijn geheel uit de e-mail, "
            "of gebruik de link in de onderkant van de nieuwste e-mail.",
        )

    def _subscriber_id(token: str) -> str | None:
        try:
            return verify(keys, subscriptions.UNSUBSCRIBE, token)
        except InvalidToken:
            return None

    def unsubscribe_page(request: Request) -> Response:
        token_id = _subscriber_id(request.path_params["token"])
        if token_id is None:
            return not_found(request)
        with factory() as session:
            subscriber = subscriptions.find_by_token_id(session, token_id)
            if subscriber is None:
                return not_found(request)
        return page(request, "web/unsubscribe.html", action_url=request.url.path)

    def unsubscribe(request: Request) -> Response:
        # RFC 8058: no cookie, no CSRF token; the body (one-click, a form or nothing) is not needed.
        token_id = _subscriber_id(request.path_params["token"])
        if token_id is None:
            return not_found(request)
        with transaction(factory) as session:
            subscriber = subscriptions.find_by_token_id(session, token_id)
            if subscriber is None:
                return not_found(request)
            changed = subscriptions.unsubscribe(session, subscriber, datetime.now(UTC))
        if changed:
            log.info("unsubscribed subscriber %s", subscriber.id)
        return page(request, "web/unsubscribed.html")

    def healthz(_request: Request) -> Response:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return PlainTextResponse("ok")

    routes = [
        Route("/afmelden/{token}", unsubscribe_page, methods=["GET", "HEAD"]),
        Route("/afmelden/{token}", unsubscribe, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=str(resource_dir("static"))), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
