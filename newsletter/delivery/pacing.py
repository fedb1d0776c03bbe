"""Sending pace: a token bucket that follows the relay, slowing on throttling replies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# After a throttling reply (421, 450, 451, 454) the rate is halved; each calm second it grows
# by a tenth again, until it is back at the configured rate (or unlimited).
SLOWDOWN = 0.5
RECOVERY_PER_SECOND = 1.1
MIN_RATE = 0.2  # messages per second: never stop entirely, or a send could never finish


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
