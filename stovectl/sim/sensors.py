"""The simulated kitchen's sensors: flame under each burner, presence, gas, smoke.

A ``simulated`` sensor of the config lives in the daemon's process, like the
simulated relays, and speaks to the core's ``SensorInput`` directly: a flame
sensor sees its burner's flame on the simulated stove, the others hold what a
test or ``stovectl demo`` sets. The sensors that ``stovectl simulate`` puts on
a broker or on a MiOT device watch flames the same way, through ``FlameWatch``.

The stove is lazy (``sim/stove.py``): a valve that drops by itself after its
loop opened is only noticed when somebody asks. So a flame is watched by
asking the stove every ``tick_seconds`` while an event loop runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from stovectl.core.sensing import SensorInput
from stovectl.settings import SimulatedSensorSettings
from stovectl.sim.stove import BurnerSnapshot, Stove

log = logging.getLogger(__name__)

TICK_SECONDS = 0.1
"""How often a watched burner is looked at: the most a flame going out is seen late."""

Listener = Callable[[BurnerSnapshot], None]


class FlameWatch:
    """One burner of the stove, looked at every tick and on every change of it."""

    def __init__(self, stove: Stove, burner: str, tick_seconds: float = TICK_SECONDS) -> None:
        if burner not in stove.burner_ids:
            raise ValueError(f"burner {burner!r} is not on the simulated stove")
        self._stove = stove
        self.burner = burner
        self._tick_seconds = tick_seconds
        self._listeners: list[Listener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    def snapshot(self) -> BurnerSnapshot:
        return self._stove.snapshot(self.burner)

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with the burner's snapshot on every tick and every change."""
        if not self._listeners:
            self._stove.on_change(self._changed)
        self._listeners.append(listener)

    def start(self) -> None:
        """Tick on the running loop until ``stop``."""
        self._stopped = False
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._tick_seconds, self._tick)

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        self._tell(self.snapshot())  # looking may deliver a change first, through _changed
        if not self._stopped:
            self._timer = asyncio.get_running_loop().call_later(self._tick_seconds, self._tick)

    def _changed(self, snapshot: BurnerSnapshot) -> None:
        if snapshot.burner == self.burner:
            self._tell(snapshot)

    def _tell(self, snapshot: BurnerSnapshot) -> None:
        if self._stopped:
            return
        for listener in list(self._listeners):
            listener(snapshot)


class SimulatedSensor:
    """One ``source = "simulated"`` sensor; a flame sensor follows its burner on ``stove``."""

    def __init__(
        self,
        settings: SimulatedSensorSettings,
        stove: Stove | None = None,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self.settings = settings
        self._targets: list[SensorInput] = []
        self._online = True
        self._value: bool | None = None if settings.kind == "flame" else settings.initial
        self._watch: FlameWatch | None = None
        burner = settings.burner
        if burner is not None and stove is not None and burner in stove.burner_ids:
            self._watch = FlameWatch(stove, burner, tick_seconds)
            self._value = self._watch.snapshot().flame
            self._watch.listen(self._saw)

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def value(self) -> bool | None:
        """What it reads now; None for a flame sensor whose burner is not on the stove."""
        return self._value

    @property
    def is_online(self) -> bool:
        return self._online

    def attach(self, target: SensorInput) -> None:
        """Tell ``target`` the reading now and every change after; call on the event loop.

        A flame sensor also starts watching its burner, when an event loop runs.
        """
        self._targets.append(target)
        if self.settings.kind == "flame" and self._watch is None:
            log.warning("simulated flame sensor %s sees no flame: burner %s is not on the "
                        "simulated stove", self.id, self.settings.burner)
        if self._watch is not None and _loop_runs():
            self._watch.start()
        self._tell(target)

    def close(self) -> None:
        """Stop watching the burner; the targets hear nothing more."""
        if self._watch is not None:
            self._watch.stop()
        self._targets.clear()

    def set(self, value: bool) -> None:
        """Presence, gas or smoke detected (True) or gone (False)."""
        if self.settings.kind == "flame":
            raise ValueError(f"sensor {self.id!r} follows its burner's flame; light or "
                             "put out the burner instead")
        self._change(value)

    def go_offline(self) -> None:
        if self._online:
            self._online = False
            for target in list(self._targets):
                target.sensor_available(self.id, False)

    def come_online(self) -> None:
        if not self._online:
            self._online = True
            for target in list(self._targets):
                self._tell(target)

    def _saw(self, snapshot: BurnerSnapshot) -> None:
        self._change(snapshot.flame)

    def _change(self, value: bool) -> None:
        if value is self._value:
            return
        self._value = value
        if self._online:
            for target in list(self._targets):
                target.sensor_reading(self.id, value)

    def _tell(self, target: SensorInput) -> None:
        """Say availability and the reading to one target, as after attaching or coming back."""
        if not self._online or self._value is None:
            target.sensor_available(self.id, False)
            return
        target.sensor_available(self.id, True)
        target.sensor_reading(self.id, self._value)


def _loop_runs() -> bool:
    """Whether an event loop runs here; without one the stove is seen only when touched."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
