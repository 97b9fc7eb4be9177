"""Failsafes: the longest a burner may burn, and cooking left unattended.

Both act on a *lit* burner, which only a flame sensor can tell; a burner
without one counts as lit whenever it is armed only if ``assume_lit`` says so.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from stovectl.durations import format_duration
from stovectl.settings.types import Duration, Identifier, StrictModel


class FailsafeSettings(StrictModel):
    max_on: Duration = Field(
        timedelta(hours=3),
        description="A burner lit this long is shut off (source failsafe); 0s = never. "
        "A burner's own max_on overrides it.",
    )
    warn_before: Duration = Field(
        timedelta(minutes=5),
        description="A warning (event and announcement) this long before a max-on or "
        "unattended shutoff.",
    )
    lock_after_trips: int = Field(
        0, ge=0,
        description="Lock the burner (reason failsafe) when max-on trips this many times "
        "within trip_window; 0 = never.",
    )
    trip_window: Duration = Field(
        timedelta(hours=1), description="The window lock_after_trips counts in."
    )
    assume_lit: bool = Field(
        False,
        description="Burners without a flame sensor count as lit whenever armed, so "
        "max_on counts from the last re-arm and unattended applies to them.",
    )
    flame_out_within: Duration = Field(
        timedelta(seconds=60),
        description="After a cut, a flame sensor must see the flame go out within this, "
        "or an alarm goes out (a probe in °C cools slowly; an ADC on the thermocouple is fast).",
    )

    @model_validator(mode="after")
    def _check(self) -> FailsafeSettings:
        if self.max_on and self.warn_before >= self.max_on:
            raise ValueError(
                f"warn_before ({format_duration(self.warn_before)}) must be shorter than "
                f"max_on ({format_duration(self.max_on)})"
            )
        if self.flame_out_within <= timedelta(0):
            raise ValueError("flame_out_within must be positive")
        return self


class UnattendedSettings(StrictModel):
    after: Duration = Field(
        timedelta(minutes=15),
        description="A lit burner with nobody present this long gets a warning ...",
    )
    grace: Duration = Field(
        timedelta(minutes=2),
        description="... and is shut off this long after the warning unless somebody "
        "comes back (source unattended).",
    )
    burners: list[Identifier] = Field(
        default_factory=lambda: ["all"], description="The burners it watches, or all."
    )
    presence: list[Identifier] = Field(
        default_factory=list,
        description="The presence sensors that count; empty = every presence sensor.",
    )

    @model_validator(mode="after")
    def _check(self) -> UnattendedSettings:
        if self.after <= timedelta(0):
            raise ValueError("after must be positive")
        if self.grace < timedelta(0):
            raise ValueError("grace must not be negative")
        if not self.burners:
            raise ValueError("burners: name at least one burner, or all")
        return self
