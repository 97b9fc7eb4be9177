"""Safety deadlines: countdowns and pending re-arms (DESIGN §2 rule 9).

Each deadline runs on the event loop's monotonic clock, so a wall-clock jump
(NTP on a Pi without a real-time clock) neither fires it early nor late. Its
wall-clock due time is kept beside it for the store: after a restart the
monotonic clock means nothing, and the wall deadline is what survives.
APScheduler never sees these; it only drives calendar schedules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on the event loop's clock, which never jumps."""

    def wall(self) -> float:
        """Seconds since the epoch; may jump."""


class SystemClock:
    """The event loop's monotonic clock and the system's wall clock."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()


@dataclass
class Deadline:
    key: tuple[str, str]
    monotonic_due: float
    wall_due: float
    handle: asyncio.TimerHandle

    def remaining(self, clock: Clock) -> float:
        return max(0.0, self.monotonic_due - clock.monotonic())


class Deadlines:
    """Named one-shot timers keyed by (burner, purpose)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._deadlines: dict[tuple[str, str], Deadline] = {}

    def set(
        self, key: tuple[str, str], delay_seconds: float, callback: Callable[[], None]
    ) -> Deadline:
        """(Re)start the timer ``key`` to call ``callback`` after ``delay_seconds``."""
        self.cancel(key)
        delay_seconds = max(0.0, delay_seconds)
        loop = asyncio.get_running_loop()
        monotonic_due = self._clock.monotonic() + delay_seconds

        def fire() -> None:
            if self._deadlines.get(key) is deadline:
                del self._deadlines[key]
            callback()

        handle = loop.call_at(monotonic_due, fire)
        deadline = Deadline(key, monotonic_due, self._clock.wall() + delay_seconds, handle)
        self._deadlines[key] = deadline
        return deadline

    def cancel(self, key: tuple[str, str]) -> bool:
        deadline = self._deadlines.pop(key, None)
        if deadline is None:
            return False
        deadline.handle.cancel()
        return True

    def get(self, key: tuple[str, str]) -> Deadline | None:
        return self._deadlines.get(key)

    def cancel_all(self) -> None:
        for key in list(self._deadlines):
            self.cancel(key)
