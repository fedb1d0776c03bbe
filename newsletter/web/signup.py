"""The sign-up pages: the form (/aanmelden) and the confirmation button (/bevestig/<token>)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from newsletter import links
from newsletter.readers import addresses, consent, signup
from newsletter.storage.db import transaction
from newsletter.web import guards, welcome
from newsletter.web.pages import in_thread, ip_for_log, page, problem, site

log = logging.getLogger(__name__)

HONEYPOT = "website"
MAX_FIELD = 400  # longer than any address (320) or name (100) may be


def _field(value: object) -> str:
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def _form_page(
    request: Request,
    *,
    email: str = "",
    name: str = "",
    error: str | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    here = site(request)
    nonce = guards.csrf_nonce(request)
    response = page(
        request,
        "web/signup.html",
        status,
        email=email,
        name=name,
        error=error,
        consent=consent.current(here.settings),
        csrf_field=guards.CSRF_FIELD,
        csrf_token=guards.csrf_token(here.keys, nonce, here.now()),
        honeypot=HONEYPOT,
        action_url=links.SIGNUP,
        **extra,
    )
    secure = here.settings.base_url.startswith("https://")
    guards.set_csrf_cookie(response, nonce, links.SIGNUP, secure=secure)
    return response


async def show_form(request: Request, **extra: Any) -> Response:
    """The form; the embeddable snippet sends its visitors here with ?email=…; `extra` for /."""
    query = request.query_params
    email, name = _field(query.get("email")), _field(query.get("name"))
    return _form_page(request, email=email, name=name, **extra)


def _checked(email: str, name: str) -> tuple[str, str | None] | str:
    """The address and name as they will be stored, or which of the two is wrong."""
    try:
        address = addresses.normalise_address(email)
    except addresses.AddressError:
        return "address"
    try:
        return address, addresses.clean_name(name or None)
    except addresses.AddressError:
        return "name"


async def sign_up(request: Request) -> Response:
    """The form was sent: the same answer, in the same time, whoever owns the address.

    Before the answer only what does not depend on the address happens (the form, the client's
    limit); the sign-up is stored and its mail sent after the answer has gone out.
    """
    here = site(request)
    form = await guards.read_form(request)
    email = _field(form.get("email")).strip()
    name = _field(form.get("name")).strip()
    if not guards.csrf_ok(here.keys, request, form, here.now()):
        # An old tab, cookies off, or a post from another site: show the form once more.
        return _form_page(request, email=email, name=name, error="expired", status=400)
    sent_page = page(request, "web/signup_sent.html", email=email)
    if _field(form.get(HONEYPOT)):
        log.info("sign-up with the hidden field filled in: ignored")
        return sent_page
    checked = _checked(email, name)
    if isinstance(checked, str):
        return _form_page(request, email=email, name=name, error=checked, status=400)
    address, cleaned = checked
    host = request.client.host if request.client else None
    now = here.now()

    def admit() -> None:
        with transaction(here.factory) as session:
            signup.admit(session, here.keys, here.settings, host, now)

    try:
        await in_thread(admit)
    except signup.TooManySignups:
        return problem(request, "too_many", 429)
    sent_page.background = BackgroundTask(
        signup.record_and_mail,
        here.factory,
        here.settings,
        here.keys,
        address=address,
        name=cleaned,
        client_ip=ip_for_log(request),
        now=now,
    )
    return sent_page


async def confirm_page(request: Request) -> Response:
    """GET/HEAD of the confirmation link: a page with the button; nothing changes."""
    here = site(request)
    token = request.path_params["token"]

    def look() -> str:
        with here.factory() as session:
            try:
                signup.find_for_confirmation(session, here.keys, token, here.now())
            except signup.InvalidLink:
                return "invalid"
            except signup.LinkUsed:
                return "used"
            return "open"

    state = await in_thread(look)
    if state == "invalid":
        return problem(request, "confirm_link", 404)
    if state == "used":
        return page(request, "web/link_used.html")
    return page(
        request, "web/confirm.html", action_url=request.url.path, next_letter=here.next_letter()
    )


async def confirm(request: Request) -> Response:
    """The confirmation button: on the list from now on, once; a used link changes nothing."""
    await guards.read_form(request)  # read (and cap) the body; nothing in it is needed
    here = site(request)
    token = request.path_params["token"]
    client_ip = ip_for_log(request)

    def act() -> tuple[str, welcome.Welcome | None]:
        with transaction(here.factory) as session:
            now = here.now()
            try:
                found = signup.find_for_confirmation(session, here.keys, token, now, lock=True)
            except signup.InvalidLink:
                return "invalid", None
            except signup.LinkUsed:
                return "used", None
            changed = signup.confirm(session, here.keys, found, now, client_ip=client_ip)
            return "confirmed", welcome.claim(session, here, found, now) if changed else None

    state, due = await in_thread(act)
    if state == "invalid":
        return problem(request, "confirm_link", 404)
    if state == "used":
        return page(request, "web/link_used.html")
    response = page(request, "web/confirmed.html", next_letter=here.next_letter())
    return welcome.send_after(response, here, due)
