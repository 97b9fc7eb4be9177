"""Calendar schedules: crontab times, each in its own zone, that shut off, lock or unlock.

APScheduler 3.11 drives these and nothing else (DESIGN §2 rule 9): safety
deadlines keep to the monotonic clock in ``core.deadlines``. Its
AsyncIOScheduler runs on the daemon's loop with an in-memory job store, and
every job has ``misfire_grace_time=None`` (a run made late by a wall-clock jump
forward still runs, it is never dropped), ``coalesce=True`` (several fire times
missed in one jump run once) and ``max_instances=1``. Because APScheduler
sleeps on the monotonic clock until the fire time it computed, the scheduler is
also woken every ``CLOCK_CHECK_SECONDS``: a Pi without a real-time clock that
NTP moves forward runs its 23:00 lock at most that late, not hours late.

A run asks the controller as source ``schedule``, actor ``schedule <id>``
(the controller lets a schedule's unlock clear only locks a schedule made),
records the run time in the store and logs one line with the outcome. A run
that fails is logged, and later runs go on; a failed cut is an alarm already
recorded by the controller's events.

Runs missed while stovectl was down are caught up once at start, before any
command is accepted; what a cook can expect of that is written in
``core.missed_runs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from stovectl.core.events import Outcome, Result
from stovectl.core.missed_runs import AFTER, find_missed, moment, plan_catch_up
from stovectl.core.store import Store
from stovectl.errors import CommandRefused
from stovectl.settings import ScheduleSettings

log = logging.getLogger(__name__)

SOURCE = "schedule"
CLOCK_CHECK_SECONDS = 10.0
"""How often the scheduler looks at the wall clock besides its own timer (see above)."""
JOB_DEFAULTS = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}


class ScheduleHost(Protocol):
    """What schedules need of the controller."""

    def now(self) -> float: ...

    def resolve(self, names: Iterable[str]) -> list[str]: ...

    async def shutoff(
        self, names: Sequence[str], source: str, actor: str | None = None
    ) -> list[Outcome]: ...

    async def lock(
        self, names: Sequence[str], source: str, reason: str = "lock", actor: str | None = None
    ) -> list[Outcome]: ...

    async def unlock(
        self, names: Sequence[str], source: str, actor: str | None = None
    ) -> list[Outcome]: ...


class Schedules:
    """The configured calendar schedules, run on the event loop by APScheduler."""

    def __init__(
        self, schedules: Sequence[ScheduleSettings], controller: ScheduleHost, store: Store
    ) -> None:
        self._schedules = {schedule.id: schedule for schedule in schedules}
        self._controller = controller
        self._store = store
        self._triggers: dict[str, CronTrigger] = {}
        self._scheduler: AsyncIOScheduler | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Catch up on runs missed while down, then run each schedule at its times."""
        # APScheduler's own INFO lines repeat, less readably, the one line a run logs.
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        self._triggers = {
            schedule.id: CronTrigger.from_crontab(schedule.cron, timezone=schedule.zone)
            for schedule in self._schedules.values()
        }
        now = self._controller.now()
        await self._catch_up(now)
        scheduler = AsyncIOScheduler(
            timezone=UTC, jobstores={"default": MemoryJobStore()}, job_defaults=JOB_DEFAULTS
        )
        for schedule in self._schedules.values():
            trigger = self._triggers[schedule.id]
            # From the time the catch-up looked at: a run due during the catch-up runs
            # as soon as the scheduler starts, and none runs twice.
            scheduler.add_job(
                self._run, trigger, args=[schedule.id], id=schedule.id,
                name=f"schedule {schedule.id}",
                next_run_time=trigger.get_next_fire_time(None, moment(now) + AFTER),
            )
        scheduler.start()
        self._scheduler = scheduler
        # The scheduler looks at its jobs on the loop's next turn; let it, so a run due
        # now is under way and each timer is set before start() returns.
        await asyncio.sleep(0)
        self._clock_task = asyncio.get_running_loop().create_task(
            self._watch_clock(), name="schedules-clock"
        )

    async def close(self) -> None:
        """Stop the scheduler; a run still waiting for its relay is cancelled."""
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
            self._clock_task = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in list(self._runs):
            task.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        # The AsyncIOScheduler shuts down on the loop's next turn.
        await asyncio.sleep(0)

    async def _watch_clock(self) -> None:
        while True:
            await asyncio.sleep(CLOCK_CHECK_SECONDS)
            if self._scheduler is not None:
                self._scheduler.wakeup()

    # -- runs -------------------------------------------------------------------------

    async def _run(self, schedule_id: str) -> None:
        """One scheduled run, called by APScheduler; never raises."""
        task = asyncio.current_task()
        if task is not None:
            task.set_name(f"schedule-{schedule_id}")
            self._runs.add(task)
        schedule = self._schedules[schedule_id]
        try:
            await self._act(schedule, schedule.burners, "")
        except asyncio.CancelledError:
            # Only close() cancels a run; ending quietly spares journald APScheduler's
            # traceback. The controller has the intent on disk already (rule 6).
            log.info("schedule %s: stovectl is stopping; the run's outcome is not known",
                     schedule.id)
        finally:
            self._store.save_schedule_run(schedule.id, self._controller.now())
            if task is not None:
                self._runs.discard(task)

    async def _act(self, schedule: ScheduleSettings, burners: Sequence[str], note: str) -> None:
        """Ask the controller; log one line with the outcome, or why there was none."""
        what = f"schedule {schedule.id}{note}: {describe(schedule, burners)}"
        actor = f"{SOURCE} {schedule.id}"
        try:
            if schedule.action == "off":
                outcomes = await self._controller.shutoff(burners, SOURCE, actor)
            elif schedule.action == "lock":
                outcomes = await self._controller.lock(burners, SOURCE, schedule.reason, actor)
            else:
                outcomes = await self._controller.unlock(burners, SOURCE, actor)
        except CommandRefused as refusal:
            log.warning("%s: refused: %s", what, refusal)
        except Exception:
            log.exception("%s: failed", what)  # a bug: the traceback helps
        else:
            failed = any(o.result is Result.FAILED for o in outcomes)
            log.log(logging.WARNING if failed else logging.INFO, "%s: %s", what,
                    "; ".join(outcome_words(o) for o in outcomes))

    async def _catch_up(self, now: float) -> None:
        """Run what the runs missed while stovectl was down decide (see core.missed_runs)."""
        last_runs = {i: self._store.last_schedule_run(i) for i in self._schedules}
        burners_of: dict[str, list[str]] = {}
        for schedule in self._schedules.values():
            try:
                burners_of[schedule.id] = self._controller.resolve(schedule.burners)
            except CommandRefused:
                burners_of[schedule.id] = []  # a run logs the refusal when it is due
        missed = find_missed(self._schedules.values(), self._triggers, last_runs, burners_of, now)
        actions, superseded = plan_catch_up(missed)
        for run in superseded:
            log.info("schedule %s: its %s due %s was missed while stovectl was down; a later "
                     "missed schedule decides instead", run.schedule.id, run.schedule.action,
                     self._zoned_text(run.schedule.id, run.due))
        for catch_up in actions:
            schedule, due = catch_up.missed.schedule, catch_up.missed.due
            note = f" (catching up the run due {self._zoned_text(schedule.id, due)})"
            await self._act(schedule, catch_up.burners, note)
        ran = {run.schedule.id for run in missed}
        for schedule_id, last in last_runs.items():
            if last is None or schedule_id in ran:
                self._store.save_schedule_run(schedule_id, now)

    # -- views ------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Each schedule: what it does, when it runs next (epoch and zoned ISO 8601), last ran."""
        rows = []
        for schedule in self._schedules.values():
            trigger = self._triggers.get(schedule.id) or CronTrigger.from_crontab(
                schedule.cron, timezone=schedule.zone
            )
            next_run = self._next_run(schedule.id, trigger)
            rows.append({
                "id": schedule.id,
                "action": schedule.action,
                "burners": list(schedule.burners),
                "reason": schedule.reason if schedule.action == "lock" else None,
                "cron": schedule.cron,
                "time_zone": schedule.time_zone or zone_name(trigger.timezone),
                "next_run": None if next_run is None else next_run.timestamp(),
                "next_run_text": None if next_run is None else next_run.isoformat(),
                "last_run": self._store.last_schedule_run(schedule.id),
            })
        return rows

    def _next_run(self, schedule_id: str, trigger: CronTrigger) -> datetime | None:
        job = self._scheduler.get_job(schedule_id) if self._scheduler is not None else None
        when: datetime | None
        if job is not None:
            when = job.next_run_time
        else:
            when = trigger.get_next_fire_time(None, moment(self._controller.now()) + AFTER)
        return None if when is None else when.astimezone(trigger.timezone)

    def _zoned_text(self, schedule_id: str, timestamp: float) -> str:
        zoned = moment(timestamp).astimezone(self._triggers[schedule_id].timezone)
        return f"{zoned:%Y-%m-%d %H:%M} {zoned.isoformat()[-6:]}"


def zone_name(zone: Any) -> str:
    """An IANA name such as Asia/Shanghai where the zone has one."""
    return str(getattr(zone, "key", None) or zone)


def describe(schedule: ScheduleSettings, burners: Sequence[str]) -> str:
    """``lock all (away)``, ``off left, right``: what a run asks for."""
    text = f"{schedule.action} {', '.join(burners)}"
    return f"{text} ({schedule.reason})" if schedule.action == "lock" else text


def outcome_words(outcome: Outcome) -> str:
    """``left verified``, or the outcome's own message, or ``right FAILED: ...``."""
    if outcome.result is Result.FAILED:
        return f"{outcome.burner} FAILED: {outcome.message or 'not verified'}"
    if outcome.result is Result.DONE and outcome.message:
        return outcome.message
    return f"{outcome.burner} {outcome.result}"

