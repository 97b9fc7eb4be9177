"""What a relay device must do for stovectl, and what it may optionally offer.

Every backend (simulated, miIO, MQTT) implements ``Relay``. The controller only
ever asks for explicit states (never a toggle) and trusts nothing it has not
read back (DESIGN §2 rule 2). A backend serialises its own requests: one lane
per device, so a dead device delays only the burners wired to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class RelayState(StrEnum):
    """A relay channel's state as the device itself names it."""

    ON = "on"
    OFF = "off"

    def inverse(self) -> RelayState:
        return RelayState.OFF if self is RelayState.ON else RelayState.ON


@dataclass(frozen=True)
class Capabilities:
    """Optional powers of a device; the controller adapts to each."""

    read_back: bool = True
    """The device reports its state, so a write can be verified."""

    device_pulse: bool = False
    """The device can return to a state by itself after a delay (rule 4)."""


class Relay(Protocol):
    """A device with one or more relay channels (numbered from 1)."""

    @property
    def id(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def poll_interval_seconds(self) -> float: ...

    async def start(self) -> None:
        """Open connections; must not fail if the device is away (it is polled later)."""

    async def close(self) -> None:
        """Release everything; safe to call twice."""

    async def write(self, channel: int, state: RelayState) -> None:
        """Ask for an explicit state; raises DeviceError. Success means acknowledged only."""

    async def read(self) -> dict[int, RelayState]:
        """Read every channel's state; raises DeviceError."""

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        """True if the device can hold ``state`` on ``channel`` and return by itself."""

    async def pulse(self, channel: int, state: RelayState, seconds: float) -> None:
        """Switch to ``state`` and let the device switch back after ``seconds`` (rule 4).

        Used for shutoffs only, never for locks, so a daemon that dies mid-pulse
        still re-arms. Raises DeviceError; DeviceRefused if unsupported.
        """
