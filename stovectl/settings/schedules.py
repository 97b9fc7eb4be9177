"""Calendar schedules: a nightly shutoff, a weekday away lock, its unlock.

A schedule is a crontab expression in a time zone plus an action on burners.
The expression and the zone are checked at load, so a typo is a config error
naming the schedule, not a job that silently never runs.
"""

from __future__ import annotations

import zoneinfo
from typing import Literal

from pydantic import Field, field_validator, model_validator

from stovectl.settings.types import Identifier, StrictModel

ScheduleAction = Literal["off", "lock", "unlock"]


class ScheduleSettings(StrictModel):
    id: Identifier = Field(description="How status and history name the schedule.")
    cron: str = Field(
        description='When, as a crontab expression: minute hour day month weekday, e.g. '
        '"0 23 * * *" (23:00 daily) or "0 9 * * mon-fri".'
    )
    action: ScheduleAction = Field(
        description="off (shut off, re-arms after cut_hold), lock, or unlock (clears only "
        "locks a schedule made; never a hazard, child or failsafe lock)."
    )
    burners: list[Identifier] = Field(
        default_factory=lambda: ["all"], description="The burners it acts on, or all."
    )
    reason: str = Field(
        "schedule", min_length=1, max_length=32,
        description="lock only: the lock's reason, e.g. away or night.",
    )
    time_zone: str = Field(
        "", description='The zone the expression is read in, e.g. "Asia/Shanghai"; '
        "empty = the system's."
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"{value!r} is not a known time zone (write it like Europe/Berlin)"
                ) from None
        return value

    @model_validator(mode="after")
    def _check(self) -> ScheduleSettings:
        # APScheduler parses the expression here only; the daemon's scheduler owns the jobs.
        from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415  # only configs with schedules pay for it

        try:
            CronTrigger.from_crontab(self.cron, timezone=self.zone)
        except ValueError as error:
            raise ValueError(
                f"cron {self.cron!r} is not a crontab expression "
                f"(minute hour day month weekday): {error}"
            ) from None
        if not self.burners:
            raise ValueError("burners: name at least one, or all")
        if self.action != "lock" and "reason" in self.model_fields_set:
            raise ValueError("reason is for lock schedules only")
        return self

    @property
    def zone(self) -> zoneinfo.ZoneInfo | None:
        """The configured zone, or None for the system's."""
        return zoneinfo.ZoneInfo(self.time_zone) if self.time_zone else None
