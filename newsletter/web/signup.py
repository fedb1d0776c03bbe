"""The sign-up pages: the form (/aanmelden) and the confirmation button (/bevestig/<token>)."""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.readers import consent, signup, subscriptions
from newsletter.storage.db import transaction
from newsletter.storage.models import SubscriberStatus
from newsletter.web.pages import CSRF_FIELD, Site

log = logging.getLogger(__name__)

SIGNUP_PATH = "/aanmelden"
HONEYPOT = "website"
MAX_FIELD = 400  # longer than any address (320) or name (100) may be


def _field(value: object) -> str:
    return value[:MAX_FIELD] if isinstance(value, str) else ""


def routes(site: Site) -> list[Route]:
    """The routes, bound to this site."""

    def form_page(
        request: Request, *, email: str = "", name: str = "", error: str | None = None,
        status: int = 200,
    ) -> Response:  # fmt: skip
        nonce = site.csrf_nonce(request)
        response = site.page(
            request,
            "web/signup.html",
            status,
            email=email,
            name=name,
            error=error,
            consent=consent.current(site.settings),
            csrf_field=CSRF_FIELD,
            csrf_token=site.csrf_token(nonce),
            honeypot=HONEYPOT,
            action_url=SIGNUP_PATH,
        )
        site.set_csrf_cookie(response, nonce, SIGNUP_PATH)
        return response

    async def show_form(request: Request) -> Response:
        # The embeddable snippet sends its visitors here with ?email=…, to see the whole text.
        query = request.query_params
        return form_page(request, email=_field(query.get("email")), name=_field(query.get("name")))

    async def sign_up(request: Request) -> Response:
        form = await site.form(request)
        email = _field(form.get("email")).strip()
        name = _field(form.get("name")).strip()
        if not site.csrf_ok(request, form):
            # An old tab, cookies off, or a post from another site: show the form once more.
            return form_page(request, email=email, name=name, error="expired", status=400)
        sent_page = site.page(request, "web/signup_sent.html", email=email)
        if _field(form.get(HONEYPOT)):
            log.info("sign-up with the hidden field filled in: ignored")
            return sent_page
        host = request.client.host if request.client else None

        def store() -> signup.Mail | None:
            with transaction(site.factory) as session:
                return signup.request(
                    session, site.settings, site.keys, email=email, name=name or None,
                    client_host=host, now=site.now(),
                )  # fmt: skip

        try:
            mail = await site.db(store)
        except subscriptions.AddressError:
            return form_page(request, email=email, name=name, error="address", status=400)
        except signup.TooManySignups:
            return site.problem(request, "too_many", 429)
        if mail is not None:
            # After the answer has gone out: a slow or absent relay changes nothing on the page.
            sent_page.background = BackgroundTask(signup.send_mail, site.settings, mail, site.now())
        return sent_page

    async def confirm_page(request: Request) -> Response:
        token = request.path_params["token"]

        def look() -> SubscriberStatus | None:
            with site.factory() as session:
                found = signup.find_for_confirmation(session, site.keys, token, site.now())
                return found.status if found else None

        status = await site.db(look)
        if status is None:
            return site.problem(request, "confirm_link", 404)
        return site.page(
            request,
            "web/confirm.html",
            already=status is SubscriberStatus.SUBSCRIBED,
            action_url=request.url.path,
            next_letter=site.next_letter(),
        )

    async def confirm(request: Request) -> Response:
        await site.form(request)  # read (and cap) the body; nothing in it is needed
        token = request.path_params["token"]

        def act() -> bool | None:
            with transaction(site.factory) as session:
                now = site.now()
                found = signup.find_for_confirmation(session, site.keys, token, now)
                if found is None:
                    return None
                return signup.confirm(
                    session, site.keys, found, now, client_ip=site.ip_for_log(request)
                )

        changed = await site.db(act)
        if changed is None:
            return site.problem(request, "confirm_link", 404)
        return site.page(request, "web/confirmed.html", next_letter=site.next_letter())

    return [
        Route(SIGNUP_PATH, show_form, methods=["GET", "HEAD"]),
        Route(SIGNUP_PATH, sign_up, methods=["POST"]),
        Route("/bevestig/{token}", confirm_page, methods=["GET", "HEAD"]),
        Route("/bevestig/{token}", confirm, methods=["POST"]),
    ]
