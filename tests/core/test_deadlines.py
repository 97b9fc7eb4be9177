"""Safety deadlines on the loop's monotonic clock, with their wall-clock due time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from stovectl.core.deadlines import Deadlines, SystemClock
from tests.support.virtual_time import VirtualClock, VirtualTimeLoop

Run = Callable[[Awaitable[Any]], Any]
WALL_START = 1_700_000_000.0
KEY = ("left", "countdown")


def clock() -> VirtualClock:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    return VirtualClock(loop, wall_start=WALL_START)


class Firings:
    """Records when each named callback fired, and lets a test await the next firing."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self._fired = asyncio.Event()

    def callback(self, name: str) -> Callable[[], None]:
        def fire() -> None:
            self.times.setdefault(name, []).append(asyncio.get_running_loop().time())
            self._fired.set()

        return fire

    async def next(self, within: float) -> None:
        self._fired.clear()
        async with asyncio.timeout(within):
            await self._fired.wait()


def test_deadline_fires_at_its_monotonic_time(virtual: Run) -> None:
    """A deadline set for 600 s calls back once, exactly 600 s later on the loop's clock."""

    async def scenario() -> None:
        deadlines, firings = Deadlines(clock()), Firings()
        start = asyncio.get_running_loop().time()

        deadline = deadlines.set(KEY, 600.0, firings.callback("first"))
        await firings.next(within=1000)

        assert firings.times == {"first": [pytest.approx(start + 600.0)]}
        assert deadline.monotonic_due == pytest.approx(start + 600.0)
        assert deadlines.get(KEY) is None

    virtual(scenario())


def test_setting_again_replaces_the_deadline(virtual: Run) -> None:
    """Setting a key again moves its deadline; the first callback never fires."""

    async def scenario() -> None:
        deadlines, firings = Deadlines(clock()), Firings()
        start = asyncio.get_running_loop().time()

        deadlines.set(KEY, 10.0, firings.callback("first"))
        second = deadlines.set(KEY, 20.0, firings.callback("second"))
        assert deadlines.get(KEY) is second
        await firings.next(within=100)

        assert firings.times == {"second": [pytest.approx(start + 20.0)]}

    virtual(scenario())


def test_keys_are_independent(virtual: Run) -> None:
    """Deadlines under different keys both fire, each at its own time."""

    async def scenario() -> None:
        deadlines, firings = Deadlines(clock()), Firings()
        start = asyncio.get_running_loop().time()

        deadlines.set(("left", "countdown"), 5.0, firings.callback("left"))
        deadlines.set(("left", "rearm"), 3.0, firings.callback("rearm"))
        await asyncio.sleep(10)

        assert firings.times == {
            "rearm": [pytest.approx(start + 3.0)],
            "left": [pytest.approx(start + 5.0)],
        }

    virtual(scenario())


def test_cancel_prevents_firing(virtual: Run) -> None:
    """A cancelled deadline never calls back, and cancel says whether there was one."""

    async def scenario() -> None:
        deadlines, firings = Deadlines(clock()), Firings()
        deadlines.set(KEY, 10.0, firings.callback("first"))

        assert deadlines.cancel(KEY) is True
        assert deadlines.cancel(KEY) is False
        await asyncio.sleep(60)

        assert firings.times == {}
        assert deadlines.get(KEY) is None

    virtual(scenario())


def test_cancel_all_prevents_every_deadline(virtual: Run) -> None:
    """cancel_all stops every pending deadline."""

    async def scenario() -> None:
        deadlines, firings = Deadlines(clock()), Firings()
        deadlines.set(("left", "countdown"), 10.0, firings.callback("left"))
        deadlines.set(("right", "countdown"), 20.0, firings.callback("right"))

        deadlines.cancel_all()
        await asyncio.sleep(60)

        assert firings.times == {}

    virtual(scenario())


def test_wall_due_is_the_wall_clock_plus_the_delay(virtual: Run) -> None:
    """The stored wall-clock due time is the injected clock's wall time plus the delay."""

    async def scenario() -> None:
        virtual_clock = clock()
        virtual_clock.jump_wall(3600.0)
        deadline = Deadlines(virtual_clock).set(KEY, 90.0, lambda: None)

        assert deadline.wall_due == pytest.approx(WALL_START + 3600.0 + 90.0)

    virtual(scenario())


def test_wall_clock_jump_does_not_move_the_deadline(virtual: Run) -> None:
    """After the wall clock jumps, the deadline still fires on the monotonic clock."""

    async def scenario() -> None:
        virtual_clock = clock()
        deadlines, firings = Deadlines(virtual_clock), Firings()
        start = asyncio.get_running_loop().time()

        deadlines.set(KEY, 60.0, firings.callback("first"))
        virtual_clock.jump_wall(-7200.0)
        await firings.next(within=120)

        assert firings.times == {"first": [pytest.approx(start + 60.0)]}

    virtual(scenario())


def test_remaining_decreases_with_time(virtual: Run) -> None:
    """remaining() counts down as the monotonic clock advances, and never goes below zero."""

    async def scenario() -> None:
        virtual_clock = clock()
        deadline = Deadlines(virtual_clock).set(KEY, 100.0, lambda: None)

        assert deadline.remaining(virtual_clock) == pytest.approx(100.0)
        await asyncio.sleep(30)
        assert deadline.remaining(virtual_clock) == pytest.approx(70.0)
        await asyncio.sleep(200)
        assert deadline.remaining(virtual_clock) == 0.0

    virtual(scenario())


def test_negative_delay_fires_at_once(virtual: Run) -> None:
    """An overdue deadline (negative delay) fires without any time passing."""

    async def scenario() -> None:
        deadlines, firings = Deadlines(clock()), Firings()
        start = asyncio.get_running_loop().time()

        deadline = deadlines.set(KEY, -30.0, firings.callback("overdue"))
        await firings.next(within=1)

        assert firings.times == {"overdue": [start]}
        assert deadline.monotonic_due == start
        assert deadline.wall_due == pytest.approx(WALL_START)

    virtual(scenario())


def test_system_clock_reads_the_loop_time(virtual: Run) -> None:
    """SystemClock's monotonic time is the running loop's clock."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        assert SystemClock().monotonic() == loop.time()
        await asyncio.sleep(42)
        assert SystemClock().monotonic() == loop.time()

    virtual(scenario())
