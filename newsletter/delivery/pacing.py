"""Sending pace and volume: a token bucket that follows the relay, and the relay's caps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.context import BaseContext

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.settings import Settings
from newsletter.storage.models import Delivery, DeliveryStatus

# After a throttling reply (421, 450, 451, 454) the rate is halved; each calm second it grows
# by a tenth again, until it is back at the configured rate (or unlimited).
SLOWDOWN = 0.5
RECOVERY_PER_SECOND = 1.1
MIN_RATE = 0.2  # messages per second: never stop entirely, or a send could never finish
# How often the hourly and daily caps are re-counted from the ledger.
CAP_REFRESH_SECONDS = 10.0


@dataclass
class PaceState:
    current: float | None  # None: no limit in force
    throttles: int = 0


class Pacer:
    """Thread-safe pace for all connections of one process."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.configured = rate if rate else None
        self.state = PaceState(current=self.configured)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = clock()
        self._last_change = clock()
        self._window_start = clock()
        self._window_count = 0
        self._observed = 0.0

    @property
    def current(self) -> float | None:
        return self.state.current

    def _recover(self, now: float) -> None:
        current = self.state.current
        if current is None:
            return
        calm = now - self._last_change
        if calm < 1.0:
            return
        grown = current * RECOVERY_PER_SECOND ** int(calm)
        self._last_change = now
        if self.configured is not None:
            self.state.current = min(grown, self.configured)
        elif grown > 2 * max(self._observed, 1.0):
            self.state.current = None  # back to no limit
        else:
            self.state.current = grown

    def wait(self) -> None:
        """Block until the next message may go."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= 1.0:
                self._observed = self._window_count / (now - self._window_start)
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            self._recover(now)
            rate = self.state.current
            if rate is None:
                return
            slot = max(self._next_slot, now)
            self._next_slot = slot + 1.0 / rate
            delay = slot - now
        if delay > 0:
            self._sleep(delay)

    def throttled(self) -> None:
        """The relay asked us to slow down."""
        with self._lock:
            now = self._clock()
            base = self.state.current
            if base is None:
                elapsed = max(now - self._window_start, 1e-3)
                base = max(self._observed, self._window_count / elapsed, MIN_RATE)
            self.state.current = max(base * SLOWDOWN, MIN_RATE)
            self.state.throttles += 1
            self._last_change = now
            self._next_slot = max(self._next_slot, now + 1.0 / self.state.current)


class CapsShare:
    """What is left of the caps, shared by the processes of one send: counted by whichever
    finds the count stale, taken under one lock, so N processes never take it N times."""

    def __init__(self, context: BaseContext) -> None:
        self.lock = context.Lock()
        self.left = context.Value("q", -1, lock=False)  # -1: no cap in force
        self.counted = context.Value("d", -1.0, lock=False)  # time.monotonic(): system-wide


class Caps:
    """The relay's hourly and daily limits, counted from the ledger across all senders."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        now: Callable[[], datetime],
        share: CapsShare | None = None,
    ) -> None:
        self.factory = factory
        self.hourly = settings.smtp_hourly_limit
        self.daily = settings.smtp_daily_limit
        self.now = now
        self.share = share
        self._lock: AbstractContextManager[object] = share.lock if share else threading.Lock()
        self._left: int | None = None
        self._counted = 0.0

    def _count(self) -> int | None:
        if not self.hourly and not self.daily:
            return None
        now = self.now()
        left: list[int] = []
        with self.factory() as session:
            for cap, window in ((self.hourly, timedelta(hours=1)), (self.daily, timedelta(days=1))):
                if cap:
                    used = session.scalar(
                        select(func.count()).where(
                            Delivery.status.in_([DeliveryStatus.SENT, DeliveryStatus.SENDING]),
                            func.coalesce(Delivery.finished_at, now) >= now - window,
                        )
                    )
                    left.append(cap - int(used or 0))
        return max(min(left), 0)

    def take(self, wanted: int) -> int:
        """How many of `wanted` messages may be claimed now (0: the cap is reached)."""
        if not self.hourly and not self.daily:
            return wanted
        with self._lock:
            if self.share is not None and self.share.counted.value >= 0:
                self._left, self._counted = self.share.left.value, self.share.counted.value
            if self._left is None or time.monotonic() - self._counted > CAP_REFRESH_SECONDS:
                self._left = self._count()
                self._counted = time.monotonic()
            granted = min(wanted, self._left or 0)
            self._left = (self._left or 0) - granted
            if self.share is not None:
                self.share.left.value, self.share.counted.value = self._left, self._counted
            return granted
