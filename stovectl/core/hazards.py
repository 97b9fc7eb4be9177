"""Gas and smoke: a detection locks every burner, and the lock latches (DESIGN §2 rule 8).

The lock's reason is ``hazard``; the policy lets no remote source clear it, a
schedule clears only its own locks, and a local unlock is refused while any
gas or smoke sensor still detects. The detection clearing changes nothing: the
hob stays locked until somebody looks and unlocks it by hand. A detector going
offline is worth a warning: the kitchen has lost that protection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from stovectl.core.sensing import SensorState
from stovectl.errors import CommandRefused

HAZARD = "hazard"


class HazardHost(Protocol):
    def hazard_detected(self, sensor: SensorState) -> None:
        """Lock every burner with reason hazard, now."""

    def hazard_note(self, sensor: SensorState, message: str) -> None:
        """Record something about a hazard sensor that needs no action."""


def hazard_changed(
    host: HazardHost, sensor: SensorState, before: bool | None, now: bool | None
) -> None:
    """React to a gas or smoke sensor's reading changing from ``before`` to ``now``."""
    what = sensor.settings.kind
    name = sensor.settings.id
    if now:
        host.hazard_detected(sensor)
    elif before and now is False:
        host.hazard_note(sensor, f"{what} no longer detected by {name!r}; the burners stay "
                         "locked until unlocked locally")
    elif now is None:
        still = " while it was detecting" if before else ""
        host.hazard_note(sensor, f"{what} sensor {name!r} is offline{still}: no {what} "
                         "protection until it is back")


def check_unlock(sensors: Iterable[SensorState]) -> None:
    """Refuse any unlock while a gas or smoke sensor still detects."""
    detecting = [s for s in sensors if s.settings.is_hazard and s.value]
    if detecting:
        names = ", ".join(f"{s.settings.kind} by {s.settings.id!r}" for s in detecting)
        raise CommandRefused(
            "hazard_active",
            f"unlock refused: {names} still detected; ventilate, find the cause, and unlock "
            "once the sensor clears",
        )
