"""The sign-up pages: the form (/aanmelden) and the confirmation button (/bevestig/<token>)."""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from newsletter import links
from newsletter.readers import addresses, consent, signup
from newsletter.storage.db import transaction
from newsletter.storage.models import SubscriberStatus
from newsletter.web import guards
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
    )
    secure = here.settings.base_url.startswith("https://")
    guards.set_csrf_cookie(response, nonce, links.SIGNUP, secure=secure)
    return response


async def show_form(request: Request) -> Response:
    """The form; the embeddable snippet sends its visitors here with ?email=…."""
    query = request.query_params
    return _form_page(request, email=_field(query.get("email")), name=_field(query.get("name")))


async def sign_up(request: Request) -> Response:
    """The form was sent: the same answer whoever owns the address; the mail goes out after."""
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
    host = request.client.host if request.client else None

    def store() -> signup.Mail | None:
        with transaction(here.factory) as session:
            return signup.request(
                session,
                here.settings,
                here.keys,
                email=email,
                name=name or None,
                client_host=host,
                now=here.now(),
            )

    try:
        mail = await in_thread(store)
    except addresses.NameProblem:
        return _form_page(request, email=email, name=name, error="name", status=400)
    except addresses.AddressError:
        return _form_page(request, email=email, name=name, error="address", status=400)
    except signup.TooManySignups:
        return problem(request, "too_many", 429)
    if mail is not None:
        # After the answer has gone out: a slow or absent relay changes nothing on the page.
        sent_page.background = BackgroundTask(signup.send_mail, here.settings, mail, here.now())
    return sent_page


async def confirm_page(request: Request) -> Response:
    """GET/HEAD of the confirmation link: a page with the button; nothing changes."""
    here = site(request)
    token = request.path_params["token"]

    def look() -> SubscriberStatus | None:
        with here.factory() as session:
            found = signup.find_for_confirmation(session, here.keys, token, here.now())
            return found.status if found else None

    status = await in_thread(look)
    if status is None:
        return problem(request, "confirm_link", 404)
    return page(
        request,
        "web/confirm.html",
        already=status is SubscriberStatus.SUBSCRIBED,
        action_url=request.url.path,
        next_letter=here.next_letter(),
    )


async def confirm(request: Request) -> Response:
    """The confirmation button: on the list from now on."""
    await guards.read_form(request)  # read (and cap) the body; nothing in it is needed
    here = site(request)
    token = request.path_params["token"]
    client_ip = ip_for_log(request)

    def act() -> bool | None:
        with transaction(here.factory) as session:
            now = here.now()
            found = signup.find_for_confirmation(session, here.keys, token, now)
            if found is None:
                return None
            return signup.confirm(session, here.keys, found, now, client_ip=client_ip)

    changed = await in_thread(act)
    if changed is None:
        return problem(request, "confirm_link", 404)
    return page(request, "web/confirmed.html", next_letter=here.next_letter())
