"""The sign-up answer is the same for every address: new, waiting, on the list, gone or erased.

Over real HTTP on SQLite and PostgreSQL: the same status, headers and page (with the address
typed in it replaced), and the difference (stored, mailed or not) only after the answer. The
time the answer takes is measured in benchmarks/signup_timing.py, not here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import privacy, subscriptions
from newsletter.storage.models import Subscriber, SubscriberStatus
from tests.support.readers import form_token
from tests.support.relays import SmtpServer
from tests.support.servers import Site, start_site

STATES = ("new", "pending", "subscribed", "unsubscribed", "bounced", "erased")


def prepare(site: Site, factory: sessionmaker[Session]) -> None:
    keys = site.settings.secret_keys()
    now = datetime.now(UTC)
    with factory() as session, session.begin():
        for state in ("subscribed", "unsubscribed", "bounced"):
            reader = subscriptions.add(session, f"{state}@example.com", None, now, basis="x")
            if state == "unsubscribed":
                subscriptions.unsubscribe(session, reader, now)
            if state == "bounced":
                subscriptions.mark_bounced(session, [reader.id], now, source="relay", detail="550")
        privacy.forget(session, keys, "erased@example.com", now)


def answer(site: Site, email: str) -> tuple[int, list[tuple[str, str]], str]:
    with httpx.Client() as browser:
        token = form_token(browser.get(f"{site.url}/aanmelden").text)
        response = browser.post(
            f"{site.url}/aanmelden", data={"csrf_token": token, "email": email, "name": ""}
        )
    # The length follows the address typed (shown on the page); the date follows the clock.
    headers = sorted(
        (k, v) for k, v in response.headers.items() if k not in ("date", "content-length")
    )
    return response.status_code, headers, response.text.replace(email, "ADRES")


@pytest.fixture
def site(env: dict[str, str], engine: Engine, smtp_server: SmtpServer) -> Iterator[Site]:
    """The sign-up site, with room for more than five sign-ups from this test's one client."""
    running = start_site(env, engine, smtp_server, NEWSLETTER_SIGNUP_CLIENT_HOURLY_LIMIT="50")
    try:
        yield running
    finally:
        running.live.server.should_exit = True
        running.live.thread.join(timeout=10)


def test_every_address_gets_the_same_answer_and_only_the_mail_differs(
    site: Site, factory: sessionmaker[Session]
) -> None:
    prepare(site, factory)
    answer(site, "pending@example.com")
    site.wait_for_mail(1)
    answers = {state: answer(site, f"{state}@example.com") for state in STATES}
    for state in STATES:
        assert answers[state] == answers["new"], state
    status, _, page = answers["new"]
    assert status == 200 and "Kijk in je mailbox" in page
    # After the answer: a link to confirm for all but the reader on the list (who hears that),
    # and nothing for `pending` (mailed a moment ago).
    mails = {m.rcpt_tos[0]: m.message["Subject"] for m in site.wait_for_mail(6)[1:]}
    assert set(mails) == {f"{s}@example.com" for s in STATES if s != "pending"}
    assert mails["subscribed@example.com"].startswith("Je staat al op de lijst")
    with factory() as session:
        statuses = {s.email: s.status for s in session.scalars(select(Subscriber))}
    assert statuses["erased@example.com"] is SubscriberStatus.PENDING  # a sign-up of its own
    assert statuses["unsubscribed@example.com"] is SubscriberStatus.UNSUBSCRIBED
    assert statuses["bounced@example.com"] is SubscriberStatus.BOUNCED
