"""Safety deadlines on the loop's monotonic clock, with their wall-clock due time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine

from stovectl.core.deadlines import Deadlines, SystemClock
from stovectl.core.events import Kind
from stovectl.core.store import Store
from stovectl.settings import settings_from_mapping
from tests.support.kitchen import Kitchen, kitchen_config
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


# -- durable deadlines -----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "stovectl.db")
    opened.open()
    yield opened
    opened.close()


def test_a_durable_deadline_is_stored_until_its_callback_returned(
    virtual: Run, store: Store
) -> None:
    """A durable deadline is on disk with both readings while pending, and gone after firing."""

    async def scenario() -> None:
        virtual_clock = VirtualClock(asyncio.get_running_loop(), WALL_START, boot="boot-a")
        deadlines = Deadlines(virtual_clock, store)
        seen_during_callback: list[bool] = []
        start = virtual_clock.monotonic()

        deadlines.set(KEY, 90.0, lambda: seen_during_callback.append(KEY in store.timers()),
                      durable_source="cli")
        [timer] = store.timers().values()
        assert (timer.due, timer.monotonic_due, timer.boot, timer.source) == (
            pytest.approx(WALL_START + 90.0), pytest.approx(start + 90.0), "boot-a", "cli")
        await asyncio.sleep(100)

        assert seen_during_callback == [True]
        assert store.timers() == {}

    virtual(scenario())


def test_cancelling_a_durable_deadline_deletes_it(virtual: Run, store: Store) -> None:
    """A cancelled durable deadline is gone from the store; cancel_all keeps them on disk."""

    async def scenario() -> None:
        deadlines = Deadlines(clock(), store)
        deadlines.set(KEY, 90.0, lambda: None, durable_source="cli")
        deadlines.set(("right", "max_on"), 90.0, lambda: None, durable_source="failsafe")
        deadlines.cancel(KEY)
        assert list(store.timers()) == [("right", "max_on")]
        deadlines.cancel_all()  # a stopping daemon: the next start finds it
        assert list(store.timers()) == [("right", "max_on")]

    virtual(scenario())


@pytest.mark.parametrize(
    ("boot_then", "boot_now", "wall_jump", "expected"),
    [
        ("boot-a", "boot-a", -3600.0, 60.0),   # same boot, wall jumped back: monotonic wins
        ("boot-a", "boot-a", +30.0, 30.0),     # same boot, wall jumped ahead: the earlier
        ("boot-a", "boot-b", -3600.0, 3660.0),  # rebooted: only the wall clock is left
        (None, None, 0.0, 60.0),               # a clock that cannot vouch for its boot
    ],
)
def test_a_restart_takes_the_earlier_reading(
    virtual: Run, store: Store, boot_then: str | None, boot_now: str | None,
    wall_jump: float, expected: float,
) -> None:
    """A stored deadline's remaining time is the earlier of its wall and same-boot readings."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        before = VirtualClock(loop, WALL_START, boot=boot_then)
        Deadlines(before, store).set(KEY, 120.0, lambda: None, durable_source="cli")
        await asyncio.sleep(60)
        after = VirtualClock(loop, WALL_START + 60 + wall_jump, boot=boot_now)
        deadlines = Deadlines(after, store)
        [timer] = deadlines.stored().values()

        assert deadlines.remaining_of(timer) == pytest.approx(expected)

    virtual(scenario())


def test_a_wall_jump_rewrites_the_stored_wall_deadline(virtual: Run, store: Store) -> None:
    """After a wall-clock jump, the stored wall due time follows, so a reboot is not misled."""

    async def scenario() -> None:
        virtual_clock = clock()
        deadlines = Deadlines(virtual_clock, store)
        assert deadlines.check_wall() == 0.0  # the first look only takes the offset
        deadlines.set(KEY, 600.0, lambda: None, durable_source="cli")
        await asyncio.sleep(100)
        assert deadlines.check_wall() == 0.0
        virtual_clock.jump_wall(-3600.0)

        assert deadlines.check_wall() == pytest.approx(-3600.0)
        [timer] = store.timers().values()
        assert timer.due == pytest.approx(virtual_clock.wall() + 500.0)

    virtual(scenario())


def test_a_countdown_under_time_machine_cuts_at_the_monotonic_moment(tmp_path: Path) -> None:
    """With the system's wall clock (moved by time-machine) jumping +1 h, then -1 h from where
    it started, a countdown still cuts at its monotonic moment, and its stored wall deadline
    follows each jump."""
    countdown = 4.0

    async def stored_due_follows(k: Kitchen, started: float) -> None:
        async with asyncio.timeout(3):  # the daemon's clock watch looks every second
            while True:
                [timer] = k.store.timers().values()
                remaining = countdown - (k.now() - started)
                if timer.due == pytest.approx(time.time() + remaining, abs=0.05):
                    return
                await asyncio.sleep(0.02)  # polling the store, which has no change signal

    async def scenario() -> None:
        with time_machine.travel(datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
                                 tick=True) as traveller:
            k = Kitchen(settings_from_mapping(kitchen_config()), tmp_path, SystemClock())
            await k.start()
            try:
                started = k.now()
                k.controller.set_countdown(["left"], countdown, "cli")
                traveller.shift(3600)
                await stored_due_follows(k, started)
                traveller.shift(-2 * 3600)
                await stored_due_follows(k, started)
                cut = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=5)
                assert k.now() - started == pytest.approx(countdown, abs=0.1)
                assert cut.source == "timer" and k.is_cut("left")
                assert cut.time == pytest.approx(time.time(), abs=0.1)
            finally:
                await k.close()

    asyncio.run(scenario())
