"""The sign-up limits hold under concurrent requests, and the answer is the same work for everyone.

Many sign-ups at once from one client network (an IPv6 /64 behind a trusted proxy) over real
HTTP: exactly the hourly limit gets through, on SQLite and on PostgreSQL, and each of those
gets exactly one mail.
"""

from __future__ import annotations

import threading

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import SignupAttempt, Subscriber
from tests.support.readers import form_token
from tests.support.relays import SmtpServer
from tests.support.servers import start_site

CONCURRENT = 48
LIMIT = 5


def test_the_client_limit_is_exact_under_many_concurrent_sign_ups(
    env: dict[str, str], engine: Engine, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    site = start_site(env, engine, smtp_server, NEWSLETTER_SIGNUP_CLIENT_HOURLY_LIMIT=str(LIMIT))
    browsers = [httpx.Client(timeout=60) for _ in range(CONCURRENT)]
    try:
        tokens = [form_token(b.get(f"{site.url}/aanmelden").text) for b in browsers]
        start = threading.Barrier(CONCURRENT)
        answers: list[int] = []
        lock = threading.Lock()

        def post(index: int) -> None:
            start.wait()
            response = browsers[index].post(
                f"{site.url}/aanmelden",
                data={"csrf_token": tokens[index], "email": f"lezer{index}@example.com"},
                # One client network: addresses of one IPv6 /64, through the trusted proxy.
                headers={"X-Forwarded-For": f"2001:db8:7:9::{index + 1:x}"},
            )
            with lock:
                answers.append(response.status_code)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(CONCURRENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [200] * LIMIT + [429] * (CONCURRENT - LIMIT)
        mails = site.wait_for_mail(LIMIT)
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(SignupAttempt)) == LIMIT
            stored = set(session.scalars(select(Subscriber.email)))
        assert {m.rcpt_tos[0] for m in mails} == stored and len(stored) == LIMIT
        # Another network is not held back by this one.
        with httpx.Client() as other:
            token = form_token(other.get(f"{site.url}/aanmelden").text)
            answer = other.post(
                f"{site.url}/aanmelden",
                data={"csrf_token": token, "email": "ander@example.com"},
                headers={"X-Forwarded-For": "2001:db8:7:a::1"},
            )
        assert answer.status_code == 200
    finally:
        for browser in browsers:
            browser.close()
        site.live.server.should_exit = True
        site.live.thread.join(timeout=10)
