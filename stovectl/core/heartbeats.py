"""Heartbeats of the loops that keep the burners safe, for the watchdog to judge.

Each loop that must keep turning (the clock watch that keeps deadlines honest,
each device's poll loop) beats once per turn. A loop that has not beaten within
its allowance is named by ``overdue()``; the daemon then withholds its systemd
watchdog ping, so a wedged daemon gets restarted instead of sitting there.
A device that does not answer is not a problem here: its poll loop still turns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Beat:
    allowance: float
    last: float


class Heartbeats:
    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._beats: dict[str, _Beat] = {}

    def expect(self, name: str, allowance: float) -> None:
        """From now on, ``name`` must beat at least every ``allowance`` seconds."""
        self._beats[name] = _Beat(allowance, self._monotonic())

    def forget(self, name: str) -> None:
        self._beats.pop(name, None)

    def beat(self, name: str) -> None:
        if (beat := self._beats.get(name)) is not None:
            beat.last = self._monotonic()

    def overdue(self) -> list[str]:
        now = self._monotonic()
        return [
            f"{name} has not turned for {now - beat.last:.0f}s (allowed {beat.allowance:g}s)"
            for name, beat in self._beats.items()
            if now - beat.last > beat.allowance
        ]
