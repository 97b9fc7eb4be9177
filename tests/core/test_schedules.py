"""Specification of calendar schedules (stovectl.core.schedules), on a real controller.

Each test runs the real controller on the simulated stove (tests.support.kitchen)
on a virtual-time loop, and time-machine holds the wall clock that APScheduler
reads: the loop moves it forward exactly as far as it moves its own clock, so a
fire time a second away, or a day away, arrives at once and on the dot, and a
test can jump the wall clock alone, as NTP does. One test checks the same on a
real loop and clock (time-machine ticking, a second before the fire time); no
other waits in real time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
import tzlocal

from stovectl.core.controller import BurnerController
from stovectl.core.events import Event, Kind, Result
from stovectl.core.schedules import CLOCK_CHECK_SECONDS, Schedules
from stovectl.core.store import Store, StoredIntent
from stovectl.settings import ScheduleSettings, settings_from_mapping
from stovectl.sim.world import SimulatedWorld
from tests.support.kitchen import Kitchen, kitchen_config
from tests.support.virtual_time import VirtualTimeLoop

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
CUT_HOLD = 5.0
ALARM_AFTER = 10.0


def at(zone: ZoneInfo, day: int, hour: int, minute: int = 0, second: float = 0) -> datetime:
    """A moment in November 2026, on the wall clock of ``zone``."""
    whole = int(second)
    return datetime(2026, 11, day, hour, minute, whole, int((second - whole) * 1e6), zone)


class CalendarLoop(VirtualTimeLoop):
    """A virtual-time loop that moves time-machine's wall clock along with its own."""

    traveller: time_machine.Traveller | None = None

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        if self.traveller is not None and seconds > 0:
            self.traveller.shift(seconds)


class RunLog(logging.Handler):
    """The schedules' log lines, as the operator reads them, and a way to wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._arrived: asyncio.Event | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self._arrived is not None:
            self._arrived.set()

    def lines(self, prefix: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage().startswith(prefix)]

    async def wait(self, prefix: str, within: float = 2, count: int = 1) -> logging.LogRecord:
        """The ``count``-th line starting with ``prefix`` (a run logs it as it ends)."""
        self._arrived = asyncio.Event()
        async with asyncio.timeout(within):
            while len(self.lines(prefix)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.lines(prefix)[count - 1]


@dataclass
class Calendar:
    """The kitchen, its schedules, their log, and the wall clock both read."""

    kitchen: Kitchen
    schedules: Schedules
    traveller: time_machine.Traveller
    log: RunLog

    def wall(self) -> float:
        return float(self.kitchen.clock.wall())

    def jump(self, seconds: float) -> None:
        """Move the wall clock alone, as NTP does to a Pi without a real-time clock."""
        self.traveller.shift(seconds)
        self.kitchen.clock.jump_wall(seconds)

    def by_schedule(self, kind: Kind, burner: str = "left") -> list[Event]:
        return self.kitchen.find(kind, burner, source="schedule")

    async def next_by_schedule(self, kind: Kind, within: float, burner: str = "left") -> Event:
        """The next ``kind`` event from a schedule for ``burner``, waiting up to ``within`` s."""
        seen = len(self.kitchen.events)
        return await self.kitchen.wait_event(
            lambda e: (e.kind, e.source, e.burner) == (kind, "schedule", burner),
            within, after=seen,
        )

    def row(self, schedule_id: str) -> dict[str, Any]:
        return next(r for r in self.schedules.status() if r["id"] == schedule_id)


Setup = Callable[[Kitchen], Awaitable[None]]
Scenario = Callable[[Calendar], Awaitable[None]]


@pytest.fixture
def run_log() -> Iterator[RunLog]:
    """Every line stovectl.core.schedules logs, from INFO up."""
    handler = RunLog()
    logger = logging.getLogger("stovectl.core.schedules")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def calendar(tmp_path: Path, run_log: RunLog) -> Callable[..., None]:
    """Run ``scenario(calendar)`` with schedules started at ``start`` on the wall clock."""

    def run(
        scenario: Scenario,
        schedules: list[dict[str, Any]],
        start: datetime,
        *,
        last_runs: dict[str, datetime] | None = None,
        before: Setup | None = None,
        extra: list[ScheduleSettings] | None = None,
    ) -> None:
        settings = settings_from_mapping(kitchen_config(schedules=schedules))

        async def main(traveller: time_machine.Traveller) -> None:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, CalendarLoop)
            kitchen = Kitchen(settings, tmp_path)
            for schedule_id, when in (last_runs or {}).items():
                kitchen.store.save_schedule_run(schedule_id, when.timestamp())
            if before is not None:
                await before(kitchen)
            await kitchen.start()
            # Reconciliation took some virtual time, while time-machine's clock stood
            # still at ``start``: set the controller's clock back to it, then couple them.
            kitchen.clock.jump_wall(start.timestamp() - kitchen.clock.wall())
            loop.traveller = traveller
            schedules = Schedules([*settings.schedules, *(extra or [])], kitchen.controller,
                                  kitchen.store)
            try:
                await schedules.start()
                await scenario(Calendar(kitchen, schedules, traveller, run_log))
            finally:
                await schedules.close()
                await kitchen.close()

        with (
            time_machine.travel(start.timestamp(), tick=False) as traveller,
            asyncio.Runner(loop_factory=CalendarLoop) as runner,
        ):
            runner.run(main(traveller))

    return run


@pytest.fixture
def new_york() -> Iterator[None]:
    """The system's zone is America/New_York: neither UTC nor any schedule's zone."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    tzlocal.reload_localzone()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
        tzlocal.reload_localzone()


def schedule(schedule_id: str, cron: str, action: str, **fields: Any) -> dict[str, Any]:
    return {"id": schedule_id, "cron": cron, "action": action, **fields}


NIGHT = schedule("night", "0 23 * * *", "lock", reason="night", time_zone="Asia/Shanghai")


# -- time zones ------------------------------------------------------------------------------


@pytest.mark.usefixtures("new_york")
def test_a_schedule_fires_at_its_time_in_its_own_zone(calendar: Any) -> None:
    """A 23:00 Asia/Shanghai lock, started one second before, locks at 23:00+08:00 exactly."""
    due = at(SHANGHAI, 22, 23)

    async def scenario(c: Calendar) -> None:
        assert c.row("night")["next_run"] == due.timestamp()
        assert c.row("night")["next_run_text"] == "2026-11-22T23:00:00+08:00"
        assert c.kitchen.mode("left") == "armed"
        lock = await c.next_by_schedule(Kind.LOCK, within=2)
        assert lock.time == pytest.approx(due.timestamp(), abs=0.05)
        assert (lock.actor, lock.reason, lock.result) == ("schedule night", "night",
                                                           Result.VERIFIED)
        assert c.kitchen.is_cut("left") and c.kitchen.is_cut("right")
        assert c.kitchen.mode("right") == "locked"
        await c.log.wait("schedule night:")
        row = c.row("night")
        assert row["next_run_text"] == "2026-11-23T23:00:00+08:00"
        assert row["last_run"] == pytest.approx(due.timestamp(), abs=0.05)

    calendar(scenario, [NIGHT], at(SHANGHAI, 22, 22, 59, 59))


def test_a_schedule_fires_on_a_real_loop_in_real_time(tmp_path: Path) -> None:
    """On a real loop and clock, a second before 23:00+08:00, the lock comes at 23:00."""
    settings = settings_from_mapping(kitchen_config(schedules=[NIGHT]))
    due = at(SHANGHAI, 22, 23).timestamp()

    async def main() -> Event:
        world = SimulatedWorld(settings)
        store = Store(tmp_path / "stovectl.db")
        store.open()
        controller = BurnerController(settings, world.devices, store)
        locked: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def on_event(event: Event) -> None:
            if event.kind is Kind.LOCK and event.source == "schedule" and not locked.done():
                locked.set_result(event)

        controller.events.subscribe(on_event)
        schedules = Schedules(settings.schedules, controller, store)
        try:
            await controller.start()
            await schedules.start()
            assert not locked.done()
            return await asyncio.wait_for(locked, 3)
        finally:
            await schedules.close()
            await controller.close()
            store.close()

    with time_machine.travel(due - 1, tick=True):
        lock = asyncio.run(main())
    assert due <= lock.time < due + 0.25
    assert lock.actor == "schedule night"


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize("zone", [UTC, NEW_YORK], ids=["utc", "system-local"])
def test_a_schedule_does_not_fire_at_its_time_in_another_zone(
    calendar: Any, zone: ZoneInfo
) -> None:
    """A 23:00 Asia/Shanghai lock does nothing at 23:00 UTC or 23:00 in the system's zone."""

    async def scenario(c: Calendar) -> None:
        await c.kitchen.elapse(3)
        assert not c.by_schedule(Kind.LOCK)
        assert c.kitchen.mode("left") == "armed"
        assert c.row("night")["next_run_text"].endswith("T23:00:00+08:00")

    calendar(scenario, [NIGHT], at(zone, 22, 22, 59, 59))


@pytest.mark.usefixtures("new_york")
def test_an_empty_time_zone_is_the_systems(calendar: Any) -> None:
    """A schedule without a time_zone runs at 23:00 in the system's zone, and says which."""
    local = schedule("night", "0 23 * * *", "off")
    due = at(NEW_YORK, 22, 23)

    async def scenario(c: Calendar) -> None:
        row = c.row("night")
        assert row["time_zone"] == "America/New_York"
        assert row["next_run_text"] == "2026-11-22T23:00:00-05:00"
        shutoff = await c.next_by_schedule(Kind.SHUTOFF, within=2)
        assert shutoff.time == pytest.approx(due.timestamp(), abs=0.05)

    calendar(scenario, [local], at(NEW_YORK, 22, 22, 59, 59))


def test_status_describes_each_schedule(calendar: Any) -> None:
    """status() gives id, action, burners, reason, cron, zone, next and last run of each."""
    away = schedule("away", "0 9 * * mon-fri", "lock", burners=["left"], reason="away",
                    time_zone="Europe/Berlin")
    home = schedule("home", "30 17 * * *", "unlock", time_zone="Asia/Shanghai")

    async def scenario(c: Calendar) -> None:
        now = c.wall()
        assert c.schedules.status() == [
            {
                "id": "away", "action": "lock", "burners": ["left"], "reason": "away",
                "cron": "0 9 * * mon-fri", "time_zone": "Europe/Berlin",
                "next_run": at(ZoneInfo("Europe/Berlin"), 23, 9).timestamp(),
                "next_run_text": "2026-11-23T09:00:00+01:00", "last_run": now,
            },
            {
                "id": "home", "action": "unlock", "burners": ["all"], "reason": None,
                "cron": "30 17 * * *", "time_zone": "Asia/Shanghai",
                "next_run": at(SHANGHAI, 22, 17, 30).timestamp(),
                "next_run_text": "2026-11-22T17:30:00+08:00", "last_run": now,
            },
        ]

    # Sunday 22 November, 12:00 in Shanghai (05:00 in Berlin).
    calendar(scenario, [away, home], at(SHANGHAI, 22, 12))


# -- what each action does --------------------------------------------------------------------


def test_a_scheduled_shutoff_cuts_and_re_arms(calendar: Any) -> None:
    """An off schedule cuts the burner as source schedule, and it re-arms after cut_hold."""

    async def scenario(c: Calendar) -> None:
        shutoff = await c.next_by_schedule(Kind.SHUTOFF, within=2)
        assert (shutoff.actor, shutoff.result) == ("schedule night", Result.VERIFIED)
        assert c.kitchen.is_cut("left")
        assert c.kitchen.mode("left") == "pulse"
        await c.kitchen.elapse(CUT_HOLD + 1)
        assert not c.kitchen.is_cut("left")
        assert c.kitchen.mode("left") == "armed"

    night = schedule("night", "0 23 * * *", "off", time_zone="Asia/Shanghai")
    calendar(scenario, [night], at(SHANGHAI, 22, 22, 59, 59))


def test_a_scheduled_lock_stays_cut(calendar: Any) -> None:
    """A lock schedule cuts with its reason, as source schedule, and the burner stays cut."""

    async def scenario(c: Calendar) -> None:
        lock = await c.next_by_schedule(Kind.LOCK, within=2)
        assert (lock.actor, lock.reason) == ("schedule night", "night")
        await c.kitchen.elapse(CUT_HOLD * 3)
        assert c.kitchen.is_cut("left")
        assert c.kitchen.row("left")["lock_reason"] == "night"
        assert c.kitchen.row("left")["source"] == "schedule"

    calendar(scenario, [NIGHT], at(SHANGHAI, 22, 22, 59, 59))


def test_a_scheduled_unlock_clears_a_schedules_lock(calendar: Any) -> None:
    """An unlock schedule re-arms a burner that a schedule locked, as source schedule."""

    async def before(k: Kitchen) -> None:
        k.store.save_intent(StoredIntent("left", "locked", "away", "schedule", 0.0))

    async def scenario(c: Calendar) -> None:
        assert c.kitchen.is_cut("left")
        unlock = await c.next_by_schedule(Kind.UNLOCK, within=2)
        assert (unlock.actor, unlock.result) == ("schedule home", Result.VERIFIED)
        assert not c.kitchen.is_cut("left")
        assert c.kitchen.mode("left") == "armed"

    home = schedule("home", "0 17 * * *", "unlock", time_zone="Asia/Shanghai")
    calendar(scenario, [home], at(SHANGHAI, 22, 16, 59, 59), before=before)


def test_a_scheduled_unlock_leaves_a_lock_it_did_not_make(calendar: Any) -> None:
    """An unlock schedule leaves a child lock set by hand, and says so in its log line."""

    async def before(k: Kitchen) -> None:
        k.store.save_intent(StoredIntent("left", "locked", "child", "cli", 0.0))
        k.store.save_intent(StoredIntent("right", "locked", "away", "schedule", 0.0))

    async def scenario(c: Calendar) -> None:
        await c.next_by_schedule(Kind.UNLOCK, within=2, burner="right")
        assert c.kitchen.mode("right") == "armed"
        assert c.kitchen.mode("left") == "locked"
        assert c.kitchen.is_cut("left")
        assert not c.by_schedule(Kind.UNLOCK, "left")
        line = await c.log.wait("schedule home:")
        assert "left stays locked (child, by cli)" in line.getMessage()
        assert "right verified" in line.getMessage()

    home = schedule("home", "0 17 * * *", "unlock", time_zone="Asia/Shanghai")
    calendar(scenario, [home], at(SHANGHAI, 22, 16, 59, 59), before=before)


# -- wall-clock jumps (coalesce, misfire_grace_time=None, the clock check) ---------------------


def test_a_jump_over_several_fire_times_runs_once(calendar: Any) -> None:
    """A wall-clock jump of ten minutes over a per-minute lock runs it once, not ten times."""

    async def scenario(c: Calendar) -> None:
        await c.next_by_schedule(Kind.LOCK, within=2)
        c.jump(600)
        late = await c.next_by_schedule(Kind.LOCK, within=61)
        assert late.time >= at(SHANGHAI, 22, 23, 10).timestamp()
        await c.kitchen.elapse(30)
        assert len(c.by_schedule(Kind.LOCK)) == 2

    minutely = schedule("minutely", "* * * * *", "lock", time_zone="Asia/Shanghai")
    calendar(scenario, [minutely], at(SHANGHAI, 22, 22, 59, 59))


def test_a_jump_past_a_fire_time_still_runs_it(calendar: Any) -> None:
    """A wall-clock jump from before 23:00 to after it runs the 23:00 lock late, not never."""

    async def scenario(c: Calendar) -> None:
        c.jump(2 * 3600)
        lock = await c.next_by_schedule(Kind.LOCK, within=61)
        assert lock.time > at(SHANGHAI, 23, 0, 59).timestamp()
        assert c.kitchen.mode("left") == "locked"
        assert c.row("night")["next_run_text"] == "2026-11-23T23:00:00+08:00"

    calendar(scenario, [NIGHT], at(SHANGHAI, 22, 22, 59))


def test_a_jump_forward_is_noticed_within_the_clock_check(calendar: Any) -> None:
    """A jump from noon to 23:30 runs the 23:00 lock within seconds, not eleven hours later."""

    async def scenario(c: Calendar) -> None:
        await c.kitchen.elapse(1)  # APScheduler has set its timer for 23:00, 11 h away
        c.jump(11.5 * 3600)
        await c.next_by_schedule(Kind.LOCK, within=CLOCK_CHECK_SECONDS + 1)
        assert len(c.by_schedule(Kind.LOCK)) == 1

    calendar(scenario, [NIGHT], at(SHANGHAI, 22, 12))


# -- failures ------------------------------------------------------------------------------------


def test_a_failed_run_does_not_stop_later_runs(calendar: Any) -> None:
    """A lock that fails on an offline relay is followed, a minute later, by one that verifies."""

    async def scenario(c: Calendar) -> None:
        device = c.kitchen.world.devices["sim"]
        device.set_fault("offline")
        failed = await c.next_by_schedule(Kind.LOCK, within=ALARM_AFTER + 2)
        assert failed.result is Result.FAILED
        device.set_fault("none")
        verified = await c.next_by_schedule(Kind.LOCK, within=61)
        assert verified.result is Result.VERIFIED
        assert verified.time == pytest.approx(at(SHANGHAI, 22, 23, 1).timestamp(), abs=0.05)

    minutely = schedule("minutely", "* * * * *", "lock", burners=["left"],
                        time_zone="Asia/Shanghai")
    calendar(scenario, [minutely], at(SHANGHAI, 22, 22, 59, 59))


def test_a_refused_run_is_logged_and_the_scheduler_goes_on(calendar: Any) -> None:
    """A run the controller refuses is logged without a traceback, and every run goes on."""
    ghost = ScheduleSettings(id="ghost", cron="* * * * *", action="off", burners=["ghost"],
                             time_zone="Asia/Shanghai")

    async def scenario(c: Calendar) -> None:
        await c.next_by_schedule(Kind.SHUTOFF, within=2)
        await c.next_by_schedule(Kind.SHUTOFF, within=61)
        await c.log.wait("schedule ghost:", count=2)
        refusals = c.log.lines("schedule ghost:")
        assert all(r.levelno == logging.WARNING and r.exc_info is None for r in refusals)
        assert "refused: no burner named 'ghost'" in refusals[0].getMessage()
        assert c.row("ghost")["last_run"] == pytest.approx(
            at(SHANGHAI, 22, 23, 1).timestamp(), abs=0.05
        )

    minutely = schedule("minutely", "* * * * *", "off", burners=["left"],
                        time_zone="Asia/Shanghai")
    calendar(scenario, [minutely], at(SHANGHAI, 22, 22, 59, 59), extra=[ghost])


# -- runs missed while stovectl was down ---------------------------------------------------------


AWAY = schedule("away", "0 9 * * *", "lock", reason="away", time_zone="Asia/Shanghai")
HOME = schedule("home", "0 17 * * *", "unlock", time_zone="Asia/Shanghai")
NIGHT_OFF = schedule("night", "0 23 * * *", "off", time_zone="Asia/Shanghai")


async def locked_away(k: Kitchen) -> None:
    """Both burners were locked away by yesterday's schedule."""
    for burner in ("left", "right"):
        k.store.save_intent(StoredIntent(burner, "locked", "away", "schedule", 0.0))


def test_a_missed_lock_and_a_later_missed_unlock_leave_the_hob_usable(calendar: Any) -> None:
    """Down over a 09:00 lock and a 17:00 unlock, only the unlock runs at start."""
    down = at(SHANGHAI, 22, 8)
    start = at(SHANGHAI, 22, 20)

    async def scenario(c: Calendar) -> None:
        assert not c.by_schedule(Kind.LOCK)
        [unlock] = c.by_schedule(Kind.UNLOCK)
        assert unlock.actor == "schedule home"
        assert unlock.time == pytest.approx(start.timestamp(), abs=0.5)
        assert c.kitchen.mode("left") == c.kitchen.mode("right") == "armed"
        messages = [r.getMessage() for r in c.log.records]
        assert any("schedule home (catching up the run due 2026-11-22 17:00 +08:00)" in m
                   for m in messages)
        assert any(m.startswith("schedule away: its lock due 2026-11-22 09:00 +08:00 was missed")
                   for m in messages)
        assert c.row("away")["last_run"] == c.row("home")["last_run"] == start.timestamp()

    calendar(scenario, [AWAY, HOME], start, last_runs={"away": down, "home": down},
             before=locked_away)


def test_a_missed_lock_is_run_at_start(calendar: Any) -> None:
    """Down over a 09:00 away lock, the hob is locked away at start, before any command."""
    start = at(SHANGHAI, 22, 12)

    async def scenario(c: Calendar) -> None:
        [lock] = c.by_schedule(Kind.LOCK)
        assert (lock.actor, lock.reason) == ("schedule away", "away")
        assert lock.time == pytest.approx(start.timestamp(), abs=0.5)
        assert c.kitchen.row("right")["lock_reason"] == "away"
        assert c.kitchen.is_cut("left") and c.kitchen.is_cut("right")

    calendar(scenario, [AWAY, HOME], start,
             last_runs={"away": at(SHANGHAI, 21, 20), "home": at(SHANGHAI, 21, 20)})


def test_missed_shutoffs_run_once_at_start(calendar: Any) -> None:
    """Down over three nightly shutoffs, each burner is shut off once at start."""

    async def scenario(c: Calendar) -> None:
        assert len(c.by_schedule(Kind.SHUTOFF, "left")) == 1
        assert len(c.by_schedule(Kind.SHUTOFF, "right")) == 1
        assert c.kitchen.is_cut("left")

    calendar(scenario, [NIGHT_OFF], at(SHANGHAI, 22, 7),
             last_runs={"night": at(SHANGHAI, 18, 23, 0, 0.2)})


def test_a_shutoff_missed_after_a_missed_lock_keeps_the_lock(calendar: Any) -> None:
    """A missed 09:00 lock then a missed 23:00 shutoff: the hob is locked, as the calendar says."""

    async def scenario(c: Calendar) -> None:
        assert len(c.by_schedule(Kind.LOCK)) == 1
        assert not c.by_schedule(Kind.SHUTOFF)
        await c.kitchen.elapse(CUT_HOLD * 2)
        assert c.kitchen.mode("left") == "locked"

    calendar(scenario, [AWAY, NIGHT_OFF], at(SHANGHAI, 23, 1),
             last_runs={"away": at(SHANGHAI, 22, 8), "night": at(SHANGHAI, 22, 8)})


def test_a_shutoff_missed_after_a_missed_unlock_runs_after_it(calendar: Any) -> None:
    """A missed 17:00 unlock then a missed 23:00 shutoff: unlocked, then shut off once."""

    async def scenario(c: Calendar) -> None:
        [unlock] = c.by_schedule(Kind.UNLOCK)
        [shutoff] = c.by_schedule(Kind.SHUTOFF)
        assert unlock.time <= shutoff.time
        await c.kitchen.elapse(CUT_HOLD + 1)
        assert c.kitchen.mode("left") == "armed"

    calendar(scenario, [HOME, NIGHT_OFF], at(SHANGHAI, 23, 1),
             last_runs={"home": at(SHANGHAI, 22, 12), "night": at(SHANGHAI, 22, 12)},
             before=locked_away)


def test_a_schedule_never_seen_before_catches_up_nothing(calendar: Any) -> None:
    """A new schedule whose time passed today does nothing at start, and records the start."""
    start = at(SHANGHAI, 22, 12)

    async def scenario(c: Calendar) -> None:
        await c.kitchen.elapse(1)
        assert not c.by_schedule(Kind.LOCK)
        assert c.kitchen.mode("left") == "armed"
        assert c.row("away")["last_run"] == start.timestamp()

    calendar(scenario, [AWAY], start)


def test_a_run_due_before_the_last_recorded_run_is_not_missed(calendar: Any) -> None:
    """The 09:00 lock that ran at 09:00:00.3 is not run again by a restart at 12:00."""

    async def scenario(c: Calendar) -> None:
        await c.kitchen.elapse(1)
        assert not c.by_schedule(Kind.LOCK)
        assert c.row("away")["last_run"] == at(SHANGHAI, 22, 9, 0, 0.3).timestamp()

    calendar(scenario, [AWAY], at(SHANGHAI, 22, 12),
             last_runs={"away": at(SHANGHAI, 22, 9, 0, 0.3)})
