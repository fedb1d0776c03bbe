"""The web app served by uvicorn on a real loopback port, and the sign-up site that mails through
a test relay."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from sqlalchemy import Engine

from newsletter.settings import Settings
from tests.support.cli import Cli
from tests.support.databases import settings_from
from tests.support.relays import Received, SmtpServer, free_port


@dataclass
class LiveServer:
    """The app served by uvicorn in a thread of its own, at `url`."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and wait until uvicorn has closed its sockets."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "uvicorn did not stop"


def serve_app(app: Any, port: int | None = None) -> LiveServer:
    """Serve the app with uvicorn in a thread; `port` chosen beforehand lets the app know its URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@dataclass
class Site:
    """The web app serving its own base URL, mailing through the test SMTP server."""

    url: str
    env: dict[str, str]
    settings: Settings
    smtp: SmtpServer
    live: LiveServer

    @property
    def cli(self) -> Cli:
        return Cli(self.env)

    def wait_for_mail(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` messages the SMTP server received, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while len(self.smtp.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} mails, got {len(self.smtp.received)}")
            time.sleep(0.02)
        return self.smtp.received[:count]


def start_site(env: dict[str, str], engine: Engine, smtp: SmtpServer, **overrides: str) -> Site:
    """The sign-up site on a free port that is its own base URL, mailing through `smtp`."""
    from newsletter.web.app import create_app

    port = free_port()
    site_env = {
        **env,
        "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_SMTP_URL": smtp.url,
        # A trial on one machine: links to loopback are expected (a warning, not an error).
        "NEWSLETTER_DEMO": "on",
        **overrides,
    }
    settings = settings_from(site_env)
    live = serve_app(create_app(settings, engine), port)
    return Site(live.url, site_env, settings, smtp, live)
