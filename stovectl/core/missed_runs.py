"""What to do at start about calendar runs missed while stovectl was down.

Pure functions of the schedules, their triggers, their last recorded runs and
the time now, split from ``core.schedules`` so the rules can be read and tested
without a scheduler, a controller or a clock.

The rules, and why (the cook's view):

* The calendar is about the state the hob should be in *now*. A lock or an
  unlock latches; per burner only the latest missed one counts. A 09:00 away
  lock and a 17:00 unlock both missed while stovectl was down: the hob should
  be usable now, so it is unlocked and the lock is not replayed.
* A shutoff is a moment, not a state, but a missed 23:00 "everything off" is
  the safety net for a burner left burning, and the daemon being down is
  exactly when nothing else would catch it. It still runs at start (like an
  overdue countdown, DESIGN §2 rule 6), once, however many were missed: the
  worst it costs is relighting a burner, and cutting always wins (rule 1).
* A shutoff missed before the latest missed lock or unlock is superseded by
  it. A shutoff missed after a missed lock changes nothing: the lock cuts and
  stays cut. A shutoff missed after a missed unlock runs after the unlock.
* At the same due time, a lock outranks an unlock.
* A schedule never seen before missed nothing: its first run is its next one.
  A run due at or before the last recorded run is not missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from stovectl.settings import ScheduleSettings

SEARCH_WINDOWS = (
    timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32),
    timedelta(days=367),
)
"""Missed runs are searched backwards from now in growing windows, so a per-minute
schedule down for a year costs an hour's fire times, not a year's."""
AFTER = timedelta(microseconds=1)
_RANK = {"lock": 2, "off": 1, "unlock": 0}
"""At the same due time: cutting wins (lock, then off, then unlock)."""


class FireTimes(Protocol):
    """What an APScheduler trigger offers: its next fire time after another."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None: ...


def moment(timestamp: float) -> datetime:
    """Wall-clock seconds as an aware datetime (UTC), the form triggers take."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


def latest_fire(trigger: FireTimes, after: float, until: float) -> float | None:
    """The latest fire time of ``trigger`` in ``(after, until]``, or None."""
    if until <= after:
        return None
    start, end = moment(after), moment(until)
    for window in (*SEARCH_WINDOWS, end - start):
        begin = max(start, end - window)
        fire = trigger.get_next_fire_time(None, begin + AFTER)
        if fire is not None and fire <= end:
            while (later := trigger.get_next_fire_time(fire, fire)) is not None and later <= end:
                fire = later
            return float(fire.timestamp())
        if begin == start:
            return None
    return None


@dataclass(frozen=True)
class Missed:
    """A schedule's latest run missed while stovectl was down, and the burners it names."""

    schedule: ScheduleSettings
    due: float
    burners: tuple[str, ...]


@dataclass
class CatchUp:
    """One action to run at start, for the burners whose calendar state it decides."""

    missed: Missed
    burners: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        return self.missed.schedule.action


def plan_catch_up(missed: Sequence[Missed]) -> tuple[list[CatchUp], list[Missed]]:
    """The actions to run now (locks, then unlocks, then shutoffs), and the runs superseded."""
    per_burner: dict[str, list[Missed]] = {}
    for run in missed:
        for burner in run.burners:
            per_burner.setdefault(burner, []).append(run)
    chosen: dict[tuple[str, str], CatchUp] = {}
    for burner, runs in per_burner.items():
        for run in _decide(runs):
            key = (run.schedule.action, run.schedule.id)
            chosen.setdefault(key, CatchUp(run)).burners.append(burner)
    order = {"lock": 0, "unlock": 1, "off": 2}
    actions = sorted(chosen.values(), key=lambda c: (order[c.action], c.missed.due))
    used = {c.missed.schedule.id for c in actions}
    superseded = [run for run in missed if run.schedule.id not in used]
    return actions, superseded


def _decide(runs: Iterable[Missed]) -> list[Missed]:
    """For one burner: the latest latch (lock or unlock), and a shutoff only if it comes after."""
    ordered = sorted(runs, key=lambda r: (r.due, _RANK[r.schedule.action]))
    latch = next((r for r in reversed(ordered) if r.schedule.action != "off"), None)
    shutoff = next((r for r in reversed(ordered) if r.schedule.action == "off"), None)
    if latch is not None and latch.schedule.action == "lock":
        return [latch]
    decided = [latch] if latch is not None else []
    if shutoff is not None and (latch is None or shutoff.due >= latch.due):
        decided.append(shutoff)
    return decided


def find_missed(
    schedules: Iterable[ScheduleSettings],
    triggers: Mapping[str, FireTimes],
    last_runs: Mapping[str, float | None],
    burners_of: Mapping[str, Sequence[str]],
    now: float,
) -> list[Missed]:
    """Each schedule's latest run due after its last recorded run and at or before ``now``."""
    missed = []
    for schedule in schedules:
        last = last_runs.get(schedule.id)
        if last is None:
            continue
        due = latest_fire(triggers[schedule.id], last, now)
        if due is not None:
            missed.append(Missed(schedule, due, tuple(burners_of[schedule.id])))
    return missed
