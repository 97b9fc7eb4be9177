"""Safety deadlines: countdowns, max-on, unattended timers, re-arms (DESIGN §2 rule 9).

While the daemon runs, each deadline fires on the event loop's monotonic clock,
so a wall-clock jump (NTP on a Pi without a real-time clock) moves it neither
earlier nor later. What must outlive the process is written to the store with
two readings of the same moment: the wall-clock due time, and the due time on
the system's monotonic clock together with the boot it belongs to. A daemon
restarted on the same boot takes the earlier of the two; after a reboot only
the wall clock is left. A wall-clock jump seen while running rewrites the wall
readings, so a restart after a reboot is not misled by the jump either.
APScheduler never sees these; it drives calendar schedules only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stovectl.core.store import Store, StoredTimer

log = logging.getLogger(__name__)

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
WALL_JUMP_SECONDS = 2.0
"""A change of the wall clock against the monotonic one beyond this is a jump."""

SAME_CLOCK_SECONDS = 0.5
Key = tuple[str, str]
"""(burner, purpose)"""


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on the event loop's clock, which never jumps."""

    def wall(self) -> float:
        """Seconds since the epoch; may jump."""

    def boot(self) -> str | None:
        """The boot the monotonic clock counts from; None if it cannot be trusted later."""


class SystemClock:
    """The event loop's monotonic clock and the system's wall clock."""

    def __init__(self) -> None:
        self._boot: str | None = None

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    def boot(self) -> str | None:
        # The default loop's clock is time.monotonic(): CLOCK_MONOTONIC, shared by every
        # process of this boot. A loop with another clock is not, so it is not trusted.
        if abs(asyncio.get_running_loop().time() - time.monotonic()) > SAME_CLOCK_SECONDS:
            return None
        if self._boot is None:
            try:
                self._boot = BOOT_ID.read_text(encoding="ascii").strip()
            except OSError:
                return None
        return self._boot


@dataclass
class Deadline:
    key: Key
    monotonic_due: float
    wall_due: float
    handle: asyncio.TimerHandle
    source: str | None
    """Set for deadlines kept in the store."""
    started: float
    grace: float = 0.0
    """How long after the stored due the timer fires here (see Deadlines.set)."""

    def remaining(self, clock: Clock) -> float:
        return max(0.0, self.monotonic_due - clock.monotonic())


class Deadlines:
    """Named one-shot timers keyed by (burner, purpose), some of them durable."""

    def __init__(self, clock: Clock, store: Store | None = None) -> None:
        self._clock = clock
        self._store = store
        self._deadlines: dict[Key, Deadline] = {}
        self._wall_offset: float | None = None

    def set(
        self,
        key: Key,
        delay_seconds: float,
        callback: Callable[[], None],
        *,
        durable_source: str | None = None,
        grace_seconds: float = 0.0,
    ) -> Deadline:
        """(Re)start the timer ``key`` to call ``callback`` after ``delay_seconds``.

        With ``durable_source`` the deadline is written to the store first, and
        deleted only once ``callback`` has returned: the callback makes its effect
        durable (an intent, the next timer) before that, so a crash anywhere loses
        nothing. ``grace_seconds`` of the delay are a wait for someone else to act
        (a device ending its own pulse): the store keeps the due time without them,
        since a restarted daemon has no one left to wait for.
        """
        self.cancel(key)
        delay_seconds = max(0.0, delay_seconds)
        loop = asyncio.get_running_loop()
        monotonic_due = self._clock.monotonic() + delay_seconds
        wall_now = self._clock.wall()

        def fire() -> None:
            if self._deadlines.get(key) is not deadline:
                return
            del self._deadlines[key]
            try:
                callback()
            finally:
                if deadline.source is not None and key not in self._deadlines:
                    self._forget(key)

        handle = loop.call_at(monotonic_due, fire)
        deadline = Deadline(key, monotonic_due, wall_now + delay_seconds, handle,
                            durable_source, wall_now, min(grace_seconds, delay_seconds))
        self._deadlines[key] = deadline
        if durable_source is not None:
            self._save(deadline)
        return deadline

    def cancel(self, key: Key) -> bool:
        deadline = self._deadlines.pop(key, None)
        if deadline is None:
            return False
        deadline.handle.cancel()
        if deadline.source is not None:
            self._forget(key)
        return True

    def get(self, key: Key) -> Deadline | None:
        return self._deadlines.get(key)

    def remaining(self, key: Key) -> float | None:
        deadline = self._deadlines.get(key)
        return None if deadline is None else deadline.remaining(self._clock)

    def cancel_all(self) -> None:
        """Stop every timer in memory; durable ones stay in the store for the next start."""
        for deadline in self._deadlines.values():
            deadline.handle.cancel()
        self._deadlines.clear()

    # -- across restarts --------------------------------------------------------------

    def stored(self) -> dict[Key, StoredTimer]:
        return {} if self._store is None else self._store.timers()

    def remaining_of(self, timer: StoredTimer, *, relaxing: bool = False) -> float:
        """Seconds left of a stored deadline: the earlier of its two readings (rule 9).

        A ``relaxing`` deadline (a re-arm) must not come early, and an unseen jump
        would make the wall reading early or late: on the same boot it keeps to the
        monotonic reading alone, which cannot have jumped.
        """
        remaining = timer.due - self._clock.wall()
        boot = self._clock.boot()
        if timer.monotonic_due is not None and boot is not None and timer.boot == boot:
            monotonic = timer.monotonic_due - self._clock.monotonic()
            remaining = monotonic if relaxing else min(remaining, monotonic)
        return remaining

    def discard(self, key: Key) -> None:
        """Delete a stored deadline that will not be restarted."""
        self._forget(key)

    def check_wall(self) -> float:
        """Seconds the wall clock jumped since the last check (0 if it did not).

        After a jump the stored wall readings are rewritten from the monotonic
        ones, which did not jump.
        """
        offset = self._clock.wall() - self._clock.monotonic()
        previous, self._wall_offset = self._wall_offset, offset
        if previous is None or abs(offset - previous) < WALL_JUMP_SECONDS:
            return 0.0
        for deadline in self._deadlines.values():
            deadline.wall_due = deadline.monotonic_due + offset
            if deadline.source is not None:
                self._save(deadline)
        return offset - previous

    def _save(self, deadline: Deadline) -> None:
        if self._store is None or deadline.source is None:
            return
        burner, purpose = deadline.key
        # The loop's clock is the system's monotonic clock when boot() says so.
        boot = self._clock.boot()
        self._store.save_timer(StoredTimer(
            burner, purpose, deadline.wall_due - deadline.grace,
            deadline.monotonic_due - deadline.grace if boot is not None else None, boot,
            deadline.source, deadline.started,
        ))

    def _forget(self, key: Key) -> None:
        if self._store is not None:
            self._store.delete_timer(*key)
