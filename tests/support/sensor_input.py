"""A SensorInput that records what sensor adapters tell it, for tests to read and await.

The adapters call it on the event loop; a test awaits ``until`` a condition on
the record holds, with a deadline, instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

WAIT_SECONDS = 5.0

Call = tuple[str, str, bool]
"""("reading" or "available", sensor id, value)."""


class RecordingInput:
    """Every ``sensor_reading`` and ``sensor_available`` call, in order."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._news: asyncio.Event | None = None

    def sensor_reading(self, sensor_id: str, reading: bool) -> None:
        self._record(("reading", sensor_id, reading))

    def sensor_available(self, sensor_id: str, available: bool) -> None:
        self._record(("available", sensor_id, available))

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        if self._news is not None:
            self._news.set()

    def of(self, sensor_id: str) -> list[tuple[str, bool]]:
        """What one sensor was told, in order."""
        return [(what, value) for what, sid, value in self.calls if sid == sensor_id]

    def readings(self, sensor_id: str) -> list[bool]:
        return [value for what, value in self.of(sensor_id) if what == "reading"]

    def availability(self, sensor_id: str) -> list[bool]:
        return [value for what, value in self.of(sensor_id) if what == "available"]

    async def until(
        self, check: Callable[[], bool], what: str, within_seconds: float = WAIT_SECONDS
    ) -> None:
        """Return once ``check()`` holds; fail naming ``what`` after ``within_seconds``."""
        try:
            async with asyncio.timeout(within_seconds):
                while not check():
                    self._news = asyncio.Event()
                    await self._news.wait()
        except TimeoutError:
            raise AssertionError(
                f"{what}: not within {within_seconds:g}s; calls so far: {self.calls}"
            ) from None
