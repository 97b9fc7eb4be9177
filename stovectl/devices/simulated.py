"""An in-process relay device wired to the simulated stove.

It behaves like a real relay as the controller sees it: requests take time,
one at a time, and it can fail in the ways real relays do. The fault switches
exist so the safety rules can be exercised: ``offline`` (no answer until the
timeout), ``slow`` (answers after two seconds), ``stuck`` (acknowledges writes
but does not switch). ``switch_by_hand`` is someone else switching it (Mi
Home, a voice assistant, the relay's own button), for rule 7.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from stovectl.devices.base import Capabilities, RelayState
from stovectl.errors import DeviceRefused, DeviceUnavailable
from stovectl.settings import SimulatedDeviceSettings

Fault = Literal["none", "offline", "slow", "stuck"]
SLOW_SECONDS = 2.0
Wiring = Callable[[int, RelayState], None]


class SimulatedRelay:
    """A relay device whose channels drive callbacks (the stove's loops)."""

    def __init__(self, settings: SimulatedDeviceSettings) -> None:
        self._settings = settings
        self._states = dict.fromkeys(range(1, settings.channels + 1), RelayState.OFF)
        self._wiring: list[Wiring] = []
        self._lane = asyncio.Lock()
        self.fault: Fault = settings.fault
        self.writes = 0
        self._returns: dict[int, asyncio.TimerHandle] = {}

    @property
    def id(self) -> str:
        return self._settings.id

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(read_back=True, device_pulse=self._settings.device_pulse)

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        # Like a MiOT off-delay: the device switches a channel off by itself, never on.
        return self._settings.device_pulse and state is RelayState.ON

    @property
    def poll_interval_seconds(self) -> float:
        return self._settings.poll_interval.total_seconds()

    def wire(self, on_switch: Wiring) -> None:
        """Call ``on_switch(channel, state)`` whenever a channel changes."""
        self._wiring.append(on_switch)
        for channel, state in self._states.items():
            on_switch(channel, state)

    def state(self, channel: int) -> RelayState:
        """The true state of a channel, as a multimeter would tell (for tests and demos)."""
        return self._states[channel]

    def set_fault(self, fault: Fault) -> None:
        self.fault = fault

    def switch_by_hand(self, channel: int, state: RelayState) -> None:
        """Someone else switches the relay (the app, a scene, the button)."""
        self._switch(channel, state)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for channel in list(self._returns):
            self._cancel_return(channel)

    async def write(self, channel: int, state: RelayState) -> None:
        async with self._lane:
            await self._round_trip()
            self.writes += 1
            if self.fault != "stuck":
                self._cancel_return(channel)  # an explicit state ends any pulse
                self._switch(channel, state)

    async def pulse(self, channel: int, state: RelayState, seconds: float) -> None:
        if not self.pulse_supported(channel, state):
            raise DeviceRefused(self.id, f"channel {channel} cannot pulse {state}")
        async with self._lane:
            await self._round_trip()
            self.writes += 1
            if self.fault == "stuck":
                return
            self._switch(channel, state)
            self._cancel_return(channel)
            self._returns[channel] = asyncio.get_running_loop().call_later(
                seconds, self._switch, channel, state.inverse()
            )

    def _cancel_return(self, channel: int) -> None:
        pending = self._returns.pop(channel, None)
        if pending is not None:
            pending.cancel()

    async def read(self) -> dict[int, RelayState]:
        async with self._lane:
            await self._round_trip()
            return dict(self._states)

    async def _round_trip(self) -> None:
        if self.fault == "offline":
            await asyncio.sleep(self._settings.timeout.total_seconds())
            raise DeviceUnavailable(self.id, "no answer (simulated offline)")
        delay = self._settings.response_time.total_seconds()
        if self.fault == "slow":
            delay += SLOW_SECONDS
        await asyncio.sleep(delay)

    def _switch(self, channel: int, state: RelayState) -> None:
        if channel not in self._states:
            raise ValueError(f"device {self.id!r} has no channel {channel}")
        if self._states[channel] is state:
            return
        self._states[channel] = state
        for on_switch in self._wiring:
            on_switch(channel, state)
