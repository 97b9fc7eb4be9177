"""An asyncio event loop whose clock jumps instead of waiting.

When the loop has nothing ready and would block until its next timer, it moves
its clock to that timer instead: a ten-minute countdown runs in microseconds,
deterministically, and safety deadlines are tested on the same monotonic clock
(``loop.time()``) the daemon uses. Real I/O still works (it is polled without
blocking); a loop with nothing scheduled and nothing ready is a deadlock, and
says so instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]  # an alias of the platform's class
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual time: nothing is scheduled and nothing is ready (deadlock)")
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop on a virtual monotonic clock, starting at 1000.0 s."""

    def __init__(self) -> None:
        self._now = 1000.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


class VirtualClock:
    """The daemon's Clock on a virtual loop, with a wall clock that tests can jump."""

    def __init__(
        self, loop: VirtualTimeLoop, wall_start: float | None = None, boot: str | None = None
    ) -> None:
        self._loop = loop
        self._boot = boot
        self._wall_offset = (time.time() if wall_start is None else wall_start) - loop.time()

    def monotonic(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        return self._loop.time() + self._wall_offset

    def boot(self) -> str | None:
        """A boot id for tests of a restart on the same boot; None: trust only the wall."""
        return self._boot

    def jump_wall(self, seconds: float) -> None:
        """Move the wall clock only, as NTP does to a Pi without a real-time clock."""
        self._wall_offset += seconds
