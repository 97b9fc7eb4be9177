"""The simulated kitchen: one stove, the simulated relays wired into its loops, its sensors.

Built from the same config the daemon reads: every burner on a simulated
device gets a simulated burner whose thermocouple loop follows that relay
channel through the burner's ``cut_state`` wiring, exactly as the real wiring
would. ``wire_stove`` is that wiring, for any device that reports its channels'
switches: the in-process ``simulated`` relays of ``SimulatedWorld`` (the daemon,
the demo and the tests) and the miIO devices of ``stovectl simulate``. The
config's ``simulated`` sensors watch that stove (``sim/sensors.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from stovectl.core.sensing import SensorInput
from stovectl.devices.base import RelayState
from stovectl.devices.simulated import SimulatedRelay
from stovectl.settings import (
    BurnerSettings,
    Settings,
    SimulatedDeviceSettings,
    SimulatedSensorSettings,
)
from stovectl.sim.sensors import SimulatedSensor
from stovectl.sim.stove import Stove, StovePhysics

Wiring = Callable[[int, RelayState], None]


class Switchable(Protocol):
    """A simulated device whose channel switches can drive the stove's loops."""

    def wire(self, on_switch: Wiring) -> None:
        """Call ``on_switch(channel, state)`` now for every channel, then on every change."""


def wire_stove(
    burners: Sequence[BurnerSettings],
    devices: Mapping[str, Switchable],
    clock: Callable[[], float] = time.monotonic,
    physics: StovePhysics | None = None,
) -> Stove:
    """A stove of the burners on ``devices``, each loop following its relay channel."""
    wired = [burner for burner in burners if burner.device in devices]
    stove = Stove([burner.id for burner in wired], clock, physics or StovePhysics())
    for burner in wired:
        devices[burner.device].wire(_loop_follows(stove, burner))
    return stove


def _loop_follows(stove: Stove, burner: BurnerSettings) -> Wiring:
    cut_state = RelayState(burner.cut_state)

    def on_switch(channel: int, state: RelayState) -> None:
        if channel == burner.channel:
            stove.set_loop(burner.id, closed=state is not cut_state)

    return on_switch


class SimulatedWorld:
    """A stove, its in-process simulated relay devices and sensors, wired per the config."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        physics: StovePhysics | None = None,
    ) -> None:
        self.devices: dict[str, SimulatedRelay] = {
            device.id: SimulatedRelay(device)
            for device in settings.devices
            if isinstance(device, SimulatedDeviceSettings)
        }
        self.stove = wire_stove(settings.burners, self.devices, clock, physics)
        self.sensors: dict[str, SimulatedSensor] = {
            sensor.id: SimulatedSensor(sensor, self.stove)
            for sensor in settings.sensors
            if isinstance(sensor, SimulatedSensorSettings)
        }

    @property
    def is_empty(self) -> bool:
        return not self.devices

    def attach_sensors(self, target: SensorInput) -> None:
        """Tell ``target`` every simulated sensor's reading now and on every change."""
        for sensor in self.sensors.values():
            sensor.attach(target)

    def close_sensors(self) -> None:
        """Stop watching the stove; the sensors' targets hear nothing more."""
        for sensor in self.sensors.values():
            sensor.close()
