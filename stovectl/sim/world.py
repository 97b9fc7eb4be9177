"""The simulated kitchen: one stove, and the simulated relays wired into its loops.

Built from the same config the daemon reads: every burner on a ``simulated``
device gets a simulated burner whose thermocouple loop follows that relay
channel through the burner's ``cut_state`` wiring, exactly as the real wiring
would. The daemon, the demo and the tests all use this one construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stovectl.devices.base import RelayState
from stovectl.devices.simulated import SimulatedRelay
from stovectl.settings import BurnerSettings, Settings, SimulatedDeviceSettings
from stovectl.sim.stove import Stove, StovePhysics


class SimulatedWorld:
    """A stove and its simulated relay devices, wired per the config."""

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
        burners = [b for b in settings.burners if b.device in self.devices]
        self.stove = Stove([b.id for b in burners], clock, physics or StovePhysics())
        for burner in burners:
            self.devices[burner.device].wire(self._wiring(burner))

    @property
    def is_empty(self) -> bool:
        return not self.devices

    def _wiring(self, burner: BurnerSettings) -> Callable[[int, RelayState], None]:
        cut_state = RelayState(burner.cut_state)

        def on_switch(channel: int, state: RelayState) -> None:
            if channel == burner.channel:
                self.stove.set_loop(burner.id, closed=state is not cut_state)

        return on_switch
