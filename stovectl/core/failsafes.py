"""Failsafes for a lit burner: the longest it may burn, and cooking left unattended.

Both run on durable safety deadlines (DESIGN §2 rule 9), so a crash or a
restart does not reset the count:

* **max-on**: when a burner is lit, a warning is due ``warn_before`` ahead of
  ``max_on`` and a shutoff (source ``failsafe``) at ``max_on``. The flame going
  out stops both. With ``lock_after_trips``, the trip that makes that many
  within ``trip_window`` locks the burner (reason ``failsafe``) instead.
* **unattended**: while a watched burner is lit and nobody is present, a
  warning is due ``after`` (counted from whichever came later: the burner lit,
  or the kitchen emptied), and a shutoff (source ``unattended``) ``grace``
  after the warning. Somebody coming back cancels both.

"Lit" is the flame sensor's word; a burner without one is lit only when
``assume_lit`` is on and it is armed. An unknown flame (a sensor offline)
keeps the timers running: a needless shutoff is safe, a forgotten pan is not.
Presence that is unknown (no sensor heard from yet, or all offline) counts as
nobody present.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from stovectl.core.deadlines import Deadlines
from stovectl.durations import format_duration
from stovectl.settings import Settings

MAX_ON = "max_on"
MAX_ON_WARNING = "max_on_warning"
UNATTENDED = "unattended"
UNATTENDED_WARNING = "unattended_warning"
PURPOSES = (MAX_ON, MAX_ON_WARNING, UNATTENDED, UNATTENDED_WARNING)
FAILSAFE = "failsafe"


class FailsafeHost(Protocol):
    """What the failsafes ask of the controller."""

    def warn(self, burner_id: str, source: str, message: str) -> None:
        """Record and announce a warning about a burner."""

    def failsafe_shutoff(self, burner_id: str, source: str, message: str) -> None:
        """Shut a burner off now (the intent is durable when this returns)."""

    def failsafe_lock(self, burner_id: str, message: str) -> None:
        """Lock a burner with reason failsafe (durable when this returns)."""

    def trips(self, burner_id: str, since: float) -> int:
        """Max-on shutoffs of a burner since ``since`` (wall clock)."""


def _say(seconds: float) -> str:
    return format_duration(max(0, round(seconds)))


class Failsafes:
    """Max-on and unattended timers of every burner."""

    def __init__(
        self,
        settings: Settings,
        deadlines: Deadlines,
        host: FailsafeHost,
        wall: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._deadlines = deadlines
        self._host = host
        self._wall = wall
        self._lit: dict[str, bool | None] = {}
        self._present: bool | None = None
        unattended = settings.unattended
        names = unattended.burners if unattended else []
        everyone = [burner.id for burner in settings.burners]
        self._watched = set(everyone if "all" in names else names)

    # -- what the controller tells us ---------------------------------------------------

    def restore(self, purpose: str, burner_id: str, remaining: float) -> None:
        """Restart a deadline found in the store after a restart; overdue ones fire now."""
        start = {
            MAX_ON: self._arm_max_on,
            MAX_ON_WARNING: self._arm_max_on_warning,
            UNATTENDED: self._arm_unattended,
            UNATTENDED_WARNING: self._arm_unattended_warning,
        }[purpose]
        start(burner_id, remaining)

    def lit_changed(self, burner_id: str, lit: bool | None) -> None:
        before = self._lit.get(burner_id)
        self._lit[burner_id] = lit
        if lit is None or lit == before:
            return  # unknown keeps whatever runs: safe, see the module docstring
        if not lit:
            for purpose in PURPOSES:
                self._deadlines.cancel((burner_id, purpose))
            return
        self._start_max_on(burner_id)
        if burner_id in self._watched and not self._present:
            self._start_unattended(burner_id)

    def presence_changed(self, present: bool | None) -> None:
        """Somebody is in the kitchen (True), nobody (False), or nobody can tell (None)."""
        self._present = present
        if present:
            for burner_id in self._watched:
                warned = self._deadlines.get((burner_id, UNATTENDED)) is not None
                self._deadlines.cancel((burner_id, UNATTENDED_WARNING))
                if self._deadlines.cancel((burner_id, UNATTENDED)) and warned:
                    self._host.warn(burner_id, UNATTENDED,
                                    f"somebody is back: {burner_id} will not be shut off")
            return
        for burner_id in self._watched:
            if self._lit.get(burner_id):
                self._start_unattended(burner_id)

    def lit(self, burner_id: str) -> bool | None:
        return self._lit.get(burner_id)

    def status(self, burner_id: str) -> dict[str, float | None]:
        """Seconds until each pending failsafe deadline of a burner, for status."""
        result: dict[str, float | None] = {}
        for purpose in PURPOSES:
            deadline = self._deadlines.get((burner_id, purpose))
            result[purpose] = None if deadline is None else deadline.wall_due
        return result

    # -- max-on -----------------------------------------------------------------------

    def _start_max_on(self, burner_id: str) -> None:
        max_on = self._settings.max_on(burner_id)
        if not max_on or self._deadlines.get((burner_id, MAX_ON)) is not None:
            return  # off, or already counting (restored after a restart)
        self._arm_max_on(burner_id, max_on)
        warn = self._settings.failsafe.warn_before.total_seconds()
        if warn:
            self._arm_max_on_warning(burner_id, max_on - warn)

    def _arm_max_on(self, burner_id: str, seconds: float) -> None:
        self._deadlines.set((burner_id, MAX_ON), seconds, lambda: self._max_on(burner_id),
                            durable_source=FAILSAFE)

    def _arm_max_on_warning(self, burner_id: str, seconds: float) -> None:
        self._deadlines.set((burner_id, MAX_ON_WARNING), seconds,
                            lambda: self._max_on_warning(burner_id), durable_source=FAILSAFE)

    def _max_on_warning(self, burner_id: str) -> None:
        remaining = self._deadlines.remaining((burner_id, MAX_ON))
        left = "moments" if remaining is None else _say(remaining)
        max_on = _say(self._settings.max_on(burner_id))
        self._host.warn(burner_id, FAILSAFE,
                        f"{burner_id} has been lit for nearly {max_on}: the failsafe shuts it "
                        f"off in {left}")

    def _max_on(self, burner_id: str) -> None:
        self._deadlines.cancel((burner_id, MAX_ON_WARNING))
        max_on = _say(self._settings.max_on(burner_id))
        failsafe = self._settings.failsafe
        limit = failsafe.lock_after_trips
        if limit:
            since = self._wall() - failsafe.trip_window.total_seconds()
            trips = self._host.trips(burner_id, since) + 1
            if trips >= limit:
                self._host.failsafe_lock(
                    burner_id, f"{burner_id} burned longer than {max_on} {trips} times within "
                    f"{_say(failsafe.trip_window.total_seconds())}: locked until unlocked")
                return
        self._host.failsafe_shutoff(burner_id, FAILSAFE,
                                    f"{burner_id} was lit longer than {max_on} (max_on)")

    # -- unattended -------------------------------------------------------------------

    def _start_unattended(self, burner_id: str) -> None:
        unattended = self._settings.unattended
        if unattended is None:
            return
        if any(self._deadlines.get((burner_id, p)) for p in (UNATTENDED_WARNING, UNATTENDED)):
            return
        self._arm_unattended_warning(burner_id, unattended.after.total_seconds())

    def _arm_unattended_warning(self, burner_id: str, seconds: float) -> None:
        self._deadlines.set((burner_id, UNATTENDED_WARNING), seconds,
                            lambda: self._unattended_warning(burner_id),
                            durable_source=UNATTENDED)

    def _arm_unattended(self, burner_id: str, seconds: float) -> None:
        self._deadlines.set((burner_id, UNATTENDED), seconds,
                            lambda: self._unattended(burner_id), durable_source=UNATTENDED)

    def _unattended_warning(self, burner_id: str) -> None:
        unattended = self._settings.unattended
        assert unattended is not None  # only armed with the section
        grace = unattended.grace.total_seconds()
        self._arm_unattended(burner_id, grace)
        self._host.warn(
            burner_id, UNATTENDED,
            f"{burner_id} is lit and nobody has been near it for "
            f"{_say(unattended.after.total_seconds())}: it shuts off in {_say(grace)} unless "
            "somebody comes back",
        )

    def _unattended(self, burner_id: str) -> None:
        unattended = self._settings.unattended
        assert unattended is not None
        gone = _say((unattended.after + unattended.grace).total_seconds())
        self._host.failsafe_shutoff(burner_id, UNATTENDED,
                                    f"{burner_id} was left lit with nobody near it for {gone}")


def presence_of(readings: Iterable[bool | None]) -> bool | None:
    """Somebody is present if any sensor says so; nobody if all that answer say not."""
    values = list(readings)
    if any(values):
        return True
    if any(value is False for value in values):
        return False
    return None
