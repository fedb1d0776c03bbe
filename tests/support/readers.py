"""What a reader does from the outside: fill in the sign-up form, follow a link from a mail."""

from __future__ import annotations

import re
from typing import Protocol

import httpx

from newsletter import links
from newsletter.settings import Settings
from newsletter.storage.models import Subscriber
from tests.support.relays import Received, body_of


def form_token(page: str) -> str:
    """The CSRF token in a sign-up form's HTML."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF token on the form"
    return match.group(1)


class Served(Protocol):
    """Anything the app is served at: a LiveServer, a Site."""

    @property
    def url(self) -> str: ...


def sign_up(
    site: Served,
    email: str,
    name: str = "",
    *,
    client: httpx.Client | None = None,
    **extra: str,
) -> httpx.Response:
    """Fill in the form as a browser would: GET it (cookie and token), then POST it."""
    browser = client or httpx.Client()
    try:
        page = browser.get(f"{site.url}/aanmelden")
        assert page.status_code == 200
        data = {"csrf_token": form_token(page.text), "email": email, "name": name, **extra}
        return browser.post(f"{site.url}/aanmelden", data=data)
    finally:
        if client is None:
            browser.close()


def link_in(mail: Received, prefix: str) -> str:
    """The first link in the mail's text part that starts with `prefix`."""
    text = body_of(mail.message, "plain")
    match = re.search(re.escape(prefix) + r"[A-Za-z0-9_\-]+", text)
    assert match, text
    return match.group(0)


def path_for(settings: Settings, subscriber: Subscriber) -> str:
    """The path of the reader's unsubscribe page, without the base URL."""
    url = links.unsubscribe_url(settings.base_url, settings.secret_keys(), subscriber.token_id)
    return url.removeprefix(settings.base_url)
