"""The worker loop: send whatever falls due until stopped, backing off when the relay or the
database is away, and never spinning."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.delivery.engine import CapReached, SendingProcess
from newsletter.delivery.pacing import CapsShare
from newsletter.delivery.run import Clock, Progress
from newsletter.delivery.senders import Senders, senders_for
from newsletter.i18n import _
from newsletter.mail.transport import RelayUnavailable
from newsletter.settings import Settings
from newsletter.storage.db import (
    DatabaseUnavailable,
    describe_error,
    is_connection_fault,
)

log = logging.getLogger(__name__)

# The longest wait between tries when the relay refuses or is away; waits double up to it.
MAX_PAUSE_SECONDS = 15 * 60.0


class Backoff:
    """Growing waits while something stays wrong: base, 2×base … at most `ceiling`."""

    def __init__(self, base: float, ceiling: float = MAX_PAUSE_SECONDS) -> None:
        self.base = base
        self.ceiling = max(ceiling, base)
        self.failures = 0

    def next_wait(self) -> float:
        wait: float = min(self.base * 2.0**self.failures, self.ceiling)
        self.failures += 1
        return wait

    def reset(self) -> None:
        self.failures = 0


def work(
    engine: Engine,
    factory: sessionmaker[Session],
    settings: Settings,
    stop: threading.Event,
    *,
    clock: Clock | None = None,
    idle_seconds: float = 5.0,
    pause_seconds: float = 30.0,
    on_batch: Callable[[Progress], None] | None = None,
    patience: float | None = None,
    senders: Senders | None = None,
    family: str | None = None,
    caps_share: CapsShare | None = None,
) -> Progress:
    """Send whatever falls due until `stop` is set. A relay outage or refusal waits, longer each
    time; a lost database connection reconnects under a new identity; a database away for
    longer than `patience` raises DatabaseUnavailable."""
    clock = clock or Clock()
    progress = Progress()
    patience = settings.database_patience_seconds if patience is None else patience
    senders = senders or senders_for(engine)
    relay = Backoff(pause_seconds)
    away_since: float | None = None
    with senders.exclusive():
        while not stop.is_set():
            run = SendingProcess(
                senders,
                factory,
                settings,
                clock,
                stop=stop,
                progress=progress,
                family=family,
                caps_share=caps_share,
            )
            try:
                with senders.alive(run.shared.owner) as proof:
                    run.shared.alive_check = proof.check
                    away_since = None
                    _work_while_alive(run, senders, relay, idle_seconds, on_batch)
            except DBAPIError as exc:
                if not is_connection_fault(exc):
                    raise
                away_since = away_since or time.monotonic()
                if time.monotonic() - away_since > patience:
                    raise DatabaseUnavailable(
                        _("the database is unreachable: {reason}").format(
                            reason=describe_error(exc)
                        )
                    ) from None
                log.warning("lost the database connection (%s); reconnecting", describe_error(exc))
                engine.dispose()
                stop.wait(min(idle_seconds, 2.0))
    return progress


def _work_while_alive(
    run: SendingProcess,
    senders: Senders,
    relay: Backoff,
    idle_seconds: float,
    on_batch: Callable[[Progress], None] | None = None,
) -> None:
    stop = run.shared.stop
    while not stop.is_set():
        run.shared.still_alive()
        recovered = senders.recover(run.shared.factory, run.shared.owner)
        if recovered:
            log.info("took back %d deliveries of a sender that stopped", recovered)
        try:
            run.run_once(on_batch)
        except RelayUnavailable as exc:
            wait = relay.next_wait()
            log.warning("%s; trying again in %.0f s", exc, wait)
            stop.wait(wait)
            continue
        except CapReached as exc:
            log.info("%s; waiting %.0f s", exc, relay.base)
            stop.wait(relay.base)
            continue
        relay.reset()
        stop.wait(idle_seconds)
