"""The web app: routes (paths from `newsletter.links`), guards, error pages and health."""

from __future__ import annotations

import logging
from urllib.parse import quote

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Scope

from newsletter import links
from newsletter.mail.images import FOLDER
from newsletter.resources import resource_dir
from newsletter.settings import Settings
from newsletter.storage.db import (
    DatabaseUnavailable,
    check_migrations,
    describe_error,
    make_engine,
    session_factory,
)
from newsletter.web import archive, preferences, proof, signup
from newsletter.web.guards import BodyLimit, CatchAll, SecurityHeaders
from newsletter.web.pages import Site, in_thread, problem, site

log = logging.getLogger(__name__)
PROBLEMS = {400: "bad_request", 404: "not_found", 405: "method", 413: "too_large"}
READ = ["GET", "HEAD"]
WRITE = ["POST"]


async def healthz(request: Request) -> Response:
    """200 'ok' when the database can be written; 503 when it cannot (down, read-only, full)."""
    engine: Engine = request.app.state.engine

    def write_check() -> None:
        # A write that changes nothing, rolled back: a replica, a read-only file or a database
        # that is away all refuse it.
        with engine.connect() as connection, connection.begin() as tx:
            connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
            tx.rollback()

    try:
        await in_thread(write_check)
    except SQLAlchemyError as exc:
        log.warning("health check: the database cannot be written: %s", describe_error(exc))
        return PlainTextResponse("database unavailable", status_code=503)
    return PlainTextResponse("ok")


def _route_without_slash(request: Request) -> str | None:
    """`/aanmelden/` → `/aanmelden`, when that is a route; None otherwise."""
    path = request.url.path
    if len(path) < 2 or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": path.rstrip("/") or "/"}
    for route in request.app.router.routes:
        matched, _ = route.matches(scope)
        if matched is not Match.NONE:
            return str(scope["path"])
    return None


async def database_away(request: Request, exc: Exception) -> Response:
    """A page when the database is away: 503, one log line, no traceback, no SQL."""
    log.warning("%s %s: the database: %s", request.method, request.url.path, describe_error(exc))
    return problem(request, "error", 503)


async def http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    stripped = _route_without_slash(request) if code == 404 else None
    if stripped is not None:
        # To the public address from the settings: never a host the request named.
        query = request.url.query
        location = (
            site(request).settings.base_url + quote(stripped) + (f"?{query}" if query else "")
        )
        return RedirectResponse(location, status_code=308)
    response = problem(request, PROBLEMS.get(code, "error"), code)
    if code == 405 and isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


def server_error(scope: Scope) -> Response:
    """The 500 page; it passes the security headers like every other page."""
    return problem(Request(scope), "error", 500)


def too_large(scope: Scope) -> Response:
    response = problem(Request(scope), "too_large", 413)
    response.headers["connection"] = "close"
    return response


ROUTES = [
    Route(links.UNSUBSCRIBE, preferences.preferences_page, methods=READ),
    Route(links.UNSUBSCRIBE, preferences.unsubscribe, methods=WRITE),
    # A GET on the others (a pasted link, a scanner) shows the page behind the footer link.
    Route(links.PAUSE, preferences.preferences_page, methods=READ),
    Route(links.PAUSE, preferences.pause, methods=WRITE),
    Route(links.RESUME, preferences.preferences_page, methods=READ),
    Route(links.RESUME, preferences.resume, methods=WRITE),
    Route(links.COME_BACK, preferences.preferences_page, methods=READ),
    Route(links.COME_BACK, preferences.come_back, methods=WRITE),
    # A test mail's links: one page, whatever the method; it changes nothing.
    Route(links.PROOF_MAIL, proof.proof_page, methods=[*READ, *WRITE]),
    Route(links.SIGNUP, signup.show_form, methods=READ),
    Route(links.SIGNUP, signup.sign_up, methods=WRITE),
    Route(links.CONFIRM, signup.confirm_page, methods=READ),
    Route(links.CONFIRM, signup.confirm, methods=WRITE),
    Route(links.HEALTH, healthz, methods=READ),
    # The public side (web/archive.py); the feed before the letters, whose slug could be anything.
    Route(links.HOME, archive.home, methods=READ),
    Route(links.ARCHIVE, archive.index, methods=READ),
    Route(links.ARCHIVE_FEED, archive.feed, methods=READ),
    Route(links.ARCHIVE_THEME, archive.theme_page, methods=READ),
    Route(links.ARCHIVE_LETTER, archive.letter_page, methods=READ),
]


def create_app(settings: Settings, engine: Engine | None = None) -> Starlette:
    """The Starlette app; refuses to start on a database with pending migrations."""
    engine = engine or make_engine(settings.database_url)
    check_migrations(engine)
    templates = Jinja2Templates(directory=str(resource_dir("templates")))
    images = settings.issues_dir / FOLDER  # published even without the archive: letters use them
    app = Starlette(
        routes=[
            *ROUTES,
            Mount(links.STATIC, StaticFiles(directory=str(resource_dir("static"))), name="static"),
            Mount(links.IMAGES, archive.Images(directory=images, check_dir=False), name="images"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(CatchAll, error_page=server_error),
            Middleware(BodyLimit, max_bytes=settings.max_body_bytes, too_large=too_large),
        ],
        exception_handlers={
            HTTPException: http_error,
            OperationalError: database_away,
            DatabaseUnavailable: database_away,
        },
    )
    app.router.redirect_slashes = False  # Starlette's would take the host from the request
    app.state.site = Site(settings, session_factory(engine), templates)
    app.state.engine = engine
    return app
