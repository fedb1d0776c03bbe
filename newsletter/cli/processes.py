"""`newsletter serve` and `newsletter scheduler`: the long-running processes."""

from __future__ import annotations

import signal

import click

from newsletter.cli._i18n import command
from newsletter.cli._runtime import Runtime, log, pass_runtime
from newsletter.cli.check import refuse_to_send_wrong
from newsletter.storage.db import PendingMigrationsError

# The web stack and the scheduler are imported by their commands only: `send` and `worker`
# stay lean (peak memory is measured in benchmarks/).


@command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on; keep it on loopback, behind a TLS reverse proxy.",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The port to listen on.",
)
@pass_runtime
def serve(rt: Runtime, host: str, port: int) -> None:
    """Serve the unsubscribe pages (and the rest of the web endpoints) over HTTP."""
    import uvicorn

    from newsletter.web.app import create_app
    from newsletter.web.logs import install_access_log

    rt.require_secret_key()
    try:
        app = create_app(rt.settings, rt.engine)
    except PendingMigrationsError as exc:
        raise click.ClickException(str(exc)) from None
    log.info("serving on http://%s:%d (public address %s)", host, port, rt.settings.base_url)
    # No token and no whole client address in any line (newsletter/web/logs.py); the access
    # log only when NEWSLETTER_ACCESS_LOG is on.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
        access_log=rt.settings.access_log,
        server_header=False,
    )
    install_access_log()
    uvicorn.Server(config).run()


@command()
@pass_runtime
def scheduler(rt: Runtime) -> None:
    """Run the weekly job on NEWSLETTER_SCHEDULE in NEWSLETTER_TIMEZONE, until stopped.

    It also sends retries every minute and, every hour, the notes to you (the queue running
    dry, a skipped Sunday, a send the relay stopped, the report after each letter).
    """
    from newsletter.scheduler import Jobs, build_scheduler

    rt.require_secret_key()
    refuse_to_send_wrong(rt.settings)
    factory = rt.factory()
    settings = rt.settings
    runner = build_scheduler(Jobs(rt.engine, factory, settings), settings)
    log.info("scheduler started: %r in %s", settings.schedule, settings.timezone)

    def stop(signum: int, _frame: object) -> None:
        log.info("received %s: stopping after the running job", signal.Signals(signum).name)
        runner.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    try:
        runner.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("scheduler stopped")
