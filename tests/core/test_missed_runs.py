"""Specification of what a restart does about missed calendar runs (stovectl.core.missed_runs)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from stovectl.core.missed_runs import Missed, find_missed, latest_fire, plan_catch_up
from stovectl.settings import ScheduleSettings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def ts(day: int, hour: int, minute: int = 0, second: float = 0, month: int = 11,
       year: int = 2026) -> float:
    """Wall-clock seconds of a moment in Shanghai."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp() + second


def cron(expression: str) -> Any:
    return CronTrigger.from_crontab(expression, timezone=SHANGHAI)


# -- the latest fire time in a stretch -------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "until", "expected"),
    [
        (ts(21, 8), ts(22, 20), ts(22, 9)),
        (ts(22, 8), ts(22, 9), ts(22, 9)),
        (ts(22, 9), ts(22, 20), None),
        (ts(22, 9, second=0.3), ts(22, 20), None),
        (ts(22, 10), ts(23, 8, 59, 59.9), None),
        (ts(22, 20), ts(22, 8), None),
    ],
    ids=["over-a-day", "until-is-included", "after-is-excluded", "ran-just-after",
         "none-due", "clock-went-back"],
)
def test_the_latest_fire_time_in_a_stretch(
    after: float, until: float, expected: float | None
) -> None:
    """latest_fire gives the last 09:00 after the last run and no later than now."""
    assert latest_fire(cron("0 9 * * *"), after, until) == expected


def test_a_per_minute_schedule_down_for_a_year_is_found_quickly() -> None:
    """A year of missed per-minute runs yields the last one without walking all of them."""
    started = time.perf_counter()
    due = latest_fire(cron("* * * * *"), ts(1, 0, year=2025), ts(22, 12, 30, 15))
    assert due == ts(22, 12, 30)
    assert time.perf_counter() - started < 0.5


def test_a_yearly_schedule_down_for_years_is_found() -> None:
    """A New Year lock missed three times is found at the latest New Year."""
    due = latest_fire(cron("0 0 1 1 *"), ts(22, 12, year=2023), ts(22, 12))
    assert due == ts(1, 0, month=1, year=2026)


# -- which missed runs are acted on -----------------------------------------------------------


def run(schedule_id: str, action: str, due: float, burners: tuple[str, ...] = ("left",),
        reason: str | None = None) -> Missed:
    fields: dict[str, Any] = {"reason": reason} if reason else {}
    settings = ScheduleSettings(id=schedule_id, cron="0 9 * * *", action=action, **fields)
    return Missed(settings, due, burners)


def decided(missed: list[Missed]) -> list[tuple[str, str, list[str]]]:
    return [(c.action, c.missed.schedule.id, c.burners) for c in plan_catch_up(missed)[0]]


@pytest.mark.parametrize(
    ("missed", "expected"),
    [
        ([run("away", "lock", ts(22, 9)), run("home", "unlock", ts(22, 17))],
         [("unlock", "home", ["left"])]),
        ([run("home", "unlock", ts(22, 7)), run("away", "lock", ts(22, 9))],
         [("lock", "away", ["left"])]),
        ([run("away", "lock", ts(22, 9)), run("night", "off", ts(22, 23))],
         [("lock", "away", ["left"])]),
        ([run("home", "unlock", ts(22, 17)), run("night", "off", ts(22, 23))],
         [("unlock", "home", ["left"]), ("off", "night", ["left"])]),
        ([run("night", "off", ts(21, 23)), run("home", "unlock", ts(22, 17))],
         [("unlock", "home", ["left"])]),
        ([run("night", "off", ts(22, 23))], [("off", "night", ["left"])]),
        ([run("home", "unlock", ts(22, 9)), run("away", "lock", ts(22, 9))],
         [("lock", "away", ["left"])]),
    ],
    ids=["unlock-after-lock", "lock-after-unlock", "off-after-lock", "off-after-unlock",
         "off-before-unlock", "off-alone", "same-time-lock-wins"],
)
def test_per_burner_the_calendar_state_now_decides(
    missed: list[Missed], expected: list[tuple[str, str, list[str]]]
) -> None:
    """The latest lock or unlock decides; a shutoff counts only after an unlock or alone."""
    assert decided(missed) == expected


def test_each_burner_is_decided_by_its_own_schedules() -> None:
    """An unlock of all and a later lock of left: left is locked, right unlocked."""
    missed = [
        run("home", "unlock", ts(22, 8), ("left", "right")),
        run("child", "lock", ts(22, 9), ("left",), reason="child"),
    ]
    assert decided(missed) == [("lock", "child", ["left"]), ("unlock", "home", ["right"])]


def test_superseded_runs_are_named_for_the_log() -> None:
    """A missed run that decides nothing is returned as superseded."""
    away = run("away", "lock", ts(22, 9))
    home = run("home", "unlock", ts(22, 17))
    assert plan_catch_up([away, home])[1] == [away]


def test_a_schedule_without_a_last_run_missed_nothing() -> None:
    """Only schedules with a recorded last run can have missed one."""
    settings = ScheduleSettings(id="away", cron="0 9 * * *", action="lock")
    triggers = {"away": cron("0 9 * * *")}
    burners = {"away": ["left", "right"]}
    assert find_missed([settings], triggers, {"away": None}, burners, ts(22, 12)) == []
    [missed] = find_missed([settings], triggers, {"away": ts(21, 12)}, burners, ts(22, 12))
    assert (missed.due, missed.burners) == (ts(22, 9), ("left", "right"))
