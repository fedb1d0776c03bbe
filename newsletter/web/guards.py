"""The guards every request passes: security headers, a body cap, and the form's CSRF token.

CSRF is a signed double-submit token (the sign-up form only; the one-click unsubscribe stays
exempt, RFC 8058).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import links
from newsletter.tokens import new_token_id
from newsletter.web import logs

log = logging.getLogger(__name__)

CSRF_COOKIE = "nl_formulier"
CSRF_FIELD = "csrf_token"
CSRF_LIFETIME = timedelta(hours=12)
_NONCE = re.compile(r"[0-9a-f]{32}")

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


class CatchAll:
    """Any error below becomes the calm 500 page (inside SecurityHeaders, so it has them too),
    logged as one line with the route and the error's kind: no traceback, no token, no data."""

    def __init__(self, app: ASGIApp, error_page: Callable[[Scope], Response]) -> None:
        self.app = app
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # the last line of defence: nothing may escape to uvicorn
            route = logs.path_for_log(str(scope.get("path", "")))
            log.error("%s %s failed: %s", scope.get("method"), route, type(exc).__name__)
            if not started:  # after the answer began (a background task), it stands
                await self.error_page(scope)(scope, receive, send)


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
                digits = re.fullmatch(rb"[0-9]{1,19}", value)
                declared = int(value) if digits else self.max_bytes + 1
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


async def read_form(request: Request) -> FormData:
    """The posted form; 400 for a body that cannot be read as one (413 passes through)."""
    try:
        return await request.form(max_files=0, max_fields=20)
    except HTTPException:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, "unreadable form") from exc


def csrf_nonce(request: Request) -> str:
    """The browser's form nonce from its cookie, or a new one."""
    nonce = request.cookies.get(CSRF_COOKIE, "")
    return nonce if _NONCE.fullmatch(nonce) else new_token_id()


def csrf_token(keys: list[bytes], nonce: str, now: datetime) -> str:
    return links.csrf_token(keys, nonce, now + CSRF_LIFETIME)


def set_csrf_cookie(response: Response, nonce: str, path: str, *, secure: bool) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        nonce,
        max_age=int(CSRF_LIFETIME.total_seconds()),
        path=path,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def csrf_ok(keys: list[bytes], request: Request, form: FormData, now: datetime) -> bool:
    """The form's signed token matches this browser's cookie, under any current key."""
    token = form.get(CSRF_FIELD)
    nonce = request.cookies.get(CSRF_COOKIE, "")
    if not isinstance(token, str) or not _NONCE.fullmatch(nonce):
        return False
    signed = links.read(keys, links.Purpose.CSRF, token, now)
    return signed is not None and hmac.compare_digest(signed, nonce)
