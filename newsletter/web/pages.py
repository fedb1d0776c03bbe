"""What every page shares: templates, error pages, the client's address, forms and their guards.

The guards: request bodies capped (413 beyond), and a signed double-submit token against
cross-site form posts (the sign-up form; the one-click unsubscribe stays exempt, RFC 8058).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.mail.rendering import dutch_date
from newsletter.publishing import planning
from newsletter.readers import consent
from newsletter.settings import Settings
from newsletter.tokens import InvalidToken, new_token_id, sign, verify

T = TypeVar("T")

CSRF = "csrf"  # token purpose
CSRF_COOKIE = "nl_formulier"
CSRF_FIELD = "csrf_token"
CSRF_LIFETIME = timedelta(hours=12)
_NONCE = re.compile(r"[0-9a-f]{32}")


class Site:
    """The settings, keys, database and templates that the pages are made of."""

    def __init__(
        self, settings: Settings, factory: sessionmaker[Session], templates: Jinja2Templates
    ) -> None:
        self.settings = settings
        self.keys = settings.secret_keys()
        self.factory = factory
        self.templates = templates
        sender = settings.sender
        self.context = {
            "list_name": settings.list_name,
            "sender_name": sender.display_name,
            "sender_email": sender.addr_spec,
        }

    def page(
        self, request: Request, template: str, status: int = 200, /, **context: Any
    ) -> Response:
        return self.templates.TemplateResponse(
            request, template, {**self.context, **context}, status_code=status
        )

    def problem(self, request: Request, problem: str, status: int) -> Response:
        """One of the error pages in web/problem.html."""
        return self.page(request, "web/problem.html", status, problem=problem)

    def not_found(self, request: Request) -> Response:
        return self.problem(request, "not_found", 404)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def ip_for_log(self, request: Request) -> str | None:
        """The client's network for the consent log, only when the operator turned that on."""
        if not self.settings.consent_log_ip or request.client is None:
            return None
        return consent.shorten_ip(request.client.host)

    def next_letter(self) -> str | None:
        """'zondag 29 november 2026': when the next letter goes out."""
        times = planning.next_times(self.settings, self.now(), 1)
        return dutch_date(times[0].astimezone(self.settings.zone)) if times else None

    async def db(self, work: Callable[[], T]) -> T:
        """Run blocking database work off the event loop."""
        return await run_in_threadpool(work)

    # --- forms ----------------------------------------------------------------------------

    async def form(self, request: Request) -> FormData:
        """The posted form; 400 for a body that cannot be read as one (413 passes through)."""
        try:
            return await request.form(max_files=0, max_fields=20)
        except HTTPException:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(400, "unreadable form") from exc

    def csrf_nonce(self, request: Request) -> str:
        """The browser's form nonce from its cookie, or a new one."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        return nonce if _NONCE.fullmatch(nonce) else new_token_id()

    def csrf_token(self, nonce: str) -> str:
        return sign(self.keys, CSRF, nonce, self.now() + CSRF_LIFETIME)

    def set_csrf_cookie(self, response: Response, nonce: str, path: str) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            max_age=int(CSRF_LIFETIME.total_seconds()),
            path=path,
            secure=self.settings.base_url.startswith("https://"),
            httponly=True,
            samesite="strict",
        )

    def csrf_ok(self, request: Request, form: FormData) -> bool:
        """The form's signed token matches this browser's cookie, under any current key."""
        token = form.get(CSRF_FIELD)
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not isinstance(token, str) or not _NONCE.fullmatch(nonce):
            return False
        try:
            signed = verify(self.keys, CSRF, token, self.now())
        except InvalidToken:
            return False
        return hmac.compare_digest(signed, nonce)


class BodyLimit:
    """Caps request bodies: 413 when Content-Length says too much or the stream runs past it."""

    def __init__(self, app: ASGIApp, max_bytes: int, too_large: Callable[[Scope], Response]):
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self.too_large(scope)(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, limited, send)
