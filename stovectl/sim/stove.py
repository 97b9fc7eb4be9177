"""The physics of a gas hob's flame-failure devices, for the simulated world.

stovectl acts on a stove only by opening and closing relays in series with
each burner's thermocouple loop, so whether a command works depends on how
those loops behave: a hot thermocouple in a closed loop holds the gas valve
open, opening the loop drops the valve within a fraction of a second, and
closing the loop never pulls a closed valve in again; only a hand on the knob
does that. This module models exactly that, per burner, so the simulated relay
devices and `stovectl demo` have a stove to act on and tests need no hardware.

It is pure: no I/O and no threads. Time comes from an injected monotonic clock
and the state advances lazily, in `step_s` sub-steps, whenever it is asked
anything, so a fake clock moved by a test drives it without sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class StovePhysics:
    """Tunables of the simulated burners; temperatures in °C, durations in seconds."""

    ambient_c: float = 25.0
    flame_c: float = 320.0
    heat_time_constant_s: float = 2.5
    cool_time_constant_s: float = 6.0
    hold_c: float = 150.0
    drop_s: float = 0.2
    step_s: float = 0.05

    def __post_init__(self) -> None:
        # flame_c below hold_c is allowed on purpose: it is a worn thermocouple that never holds.
        if min(self.heat_time_constant_s, self.cool_time_constant_s, self.step_s) <= 0:
            raise ValueError("time constants and step_s must be positive")
        if self.drop_s < 0:
            raise ValueError("drop_s must not be negative")


class Valve(StrEnum):
    CLOSED = "closed"
    HELD = "held"
    PUSHED = "pushed"


class Knob(StrEnum):
    OFF = "off"
    PUSHED = "pushed"
    OPEN = "open"  # Turned to a flame setting and released.


@dataclass(frozen=True)
class BurnerSnapshot:
    burner: str
    knob: Knob
    valve: Valve
    flame: bool
    thermocouple_c: float
    loop_closed: bool


@dataclass
class _Burner:
    knob: Knob
    valve: Valve
    thermocouple_c: float
    loop_closed: bool = True
    # When a held valve lost its hold, the time it finishes dropping; None otherwise.
    drop_at: float | None = None

    @property
    def flame(self) -> bool:
        return self.knob is not Knob.OFF and self.valve is not Valve.CLOSED


class Stove:
    """A hob whose burners' knobs, valves, flames and thermocouples follow `StovePhysics`."""

    def __init__(
        self,
        burner_ids: Iterable[str],
        clock: Callable[[], float],
        physics: StovePhysics = StovePhysics(),
    ) -> None:
        ids = tuple(burner_ids)
        # No burners is allowed: a daemon whose relays are all real has an empty stove.
        if len(set(ids)) != len(ids):
            raise ValueError(f"burner ids must be unique, got {ids!r}")
        self._physics = physics
        self._clock = clock
        self._time = clock()
        self._burners = {
            burner: _Burner(Knob.OFF, Valve.CLOSED, physics.ambient_c) for burner in ids
        }
        self._callbacks: list[Callable[[BurnerSnapshot], None]] = []
        self._pending: list[BurnerSnapshot] = []

    @property
    def burner_ids(self) -> tuple[str, ...]:
        return tuple(self._burners)

    def snapshot(self, burner: str) -> BurnerSnapshot:
        state = self._enter(burner)
        self._flush()
        return self._snapshot(burner, state)

    def set_loop(self, burner: str, closed: bool) -> None:
        """Close or open the thermocouple loop; opening it drops a held valve after drop_s."""
        state = self._enter(burner)
        state.loop_closed = closed
        # Re-closing the loop while a valve drops does not stop the drop: a thermocouple
        # cannot pull in an armature that has already let go.
        self._check_hold(burner, state)
        self._flush()

    def push_knob(self, burner: str) -> None:
        """Push and turn the knob: the hand opens the valve and the igniter lights the gas."""
        state = self._enter(burner)
        state.drop_at = None
        self._transition(burner, state, Knob.PUSHED, Valve.PUSHED)
        self._flush()

    def release_knob(self, burner: str) -> None:
        """Let go of a pushed knob: the valve stays open only if the thermocouple holds it."""
        state = self._enter(burner)
        if state.knob is Knob.PUSHED:
            valve = Valve.HELD if self._holds(state) else Valve.CLOSED
            self._transition(burner, state, Knob.OPEN, valve)
        self._flush()

    def turn_off(self, burner: str) -> None:
        state = self._enter(burner)
        state.drop_at = None
        self._transition(burner, state, Knob.OFF, Valve.CLOSED)
        self._flush()

    def on_change(self, callback: Callable[[BurnerSnapshot], None]) -> None:
        """Call `callback` after every change of a burner's knob, valve or flame.

        Temperature and loop changes alone do not call it. Callbacks run once the
        stove's state is consistent, so they may call back into the stove.
        """
        # Deliver what happened before subscribing first, so the new callback does not see it.
        self._advance()
        self._flush()
        self._callbacks.append(callback)

    def _enter(self, burner: str) -> _Burner:
        if burner not in self._burners:
            raise KeyError(f"unknown burner {burner!r}; valid burners: {', '.join(self._burners)}")
        self._advance()
        return self._burners[burner]

    def _advance(self) -> None:
        now = self._clock()
        while self._time < now:
            # End sub-steps at pending drops so a valve closes exactly drop_s after losing hold.
            drops = [s.drop_at for s in self._burners.values() if s.drop_at is not None]
            end = min(self._time + self._physics.step_s, now, *drops)
            for state in self._burners.values():
                self._integrate(state, end - self._time)
            self._time = end
            for burner, state in self._burners.items():
                self._check_hold(burner, state)

    def _integrate(self, state: _Burner, dt: float) -> None:
        physics = self._physics
        if state.flame:
            target, time_constant = physics.flame_c, physics.heat_time_constant_s
        else:
            target, time_constant = physics.ambient_c, physics.cool_time_constant_s
        # The exact solution of first-order lag, so accuracy does not depend on the step.
        decay = math.exp(-dt / time_constant)
        state.thermocouple_c = target + (state.thermocouple_c - target) * decay

    def _holds(self, state: _Burner) -> bool:
        return state.loop_closed and state.thermocouple_c >= self._physics.hold_c

    def _check_hold(self, burner: str, state: _Burner) -> None:
        if state.valve is not Valve.HELD:
            return
        if state.drop_at is None and not self._holds(state):
            state.drop_at = self._time + self._physics.drop_s
        if state.drop_at is not None and state.drop_at <= self._time:
            state.drop_at = None
            self._transition(burner, state, state.knob, Valve.CLOSED)

    def _transition(self, burner: str, state: _Burner, knob: Knob, valve: Valve) -> None:
        before = (state.knob, state.valve, state.flame)
        state.knob, state.valve = knob, valve
        if (state.knob, state.valve, state.flame) != before:
            self._pending.append(self._snapshot(burner, state))

    def _flush(self) -> None:
        # Take the queue first: a callback that calls back in flushes its own changes.
        pending, self._pending = self._pending, []
        for snapshot in pending:
            for callback in list(self._callbacks):
                callback(snapshot)

    def _snapshot(self, burner: str, state: _Burner) -> BurnerSnapshot:
        return BurnerSnapshot(
            burner, state.knob, state.valve, state.flame, state.thermocouple_c, state.loop_closed
        )
