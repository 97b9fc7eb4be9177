"""One burner's intent and what its relay was last seen doing, with pure decisions.

The intent is what the hob should be (armed, in a shutoff pulse, locked); the
relay state the burner wants follows from it and from the wiring
(``cut_state``). ``classify`` decides what an observation of the relay means
(DESIGN §2 rule 7) without touching anything, so it is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from stovectl.devices.base import RelayState
from stovectl.settings import BurnerSettings


class Mode(StrEnum):
    ARMED = "armed"
    """Loop closed: the burner can be lit by hand and stays lit."""
    PULSE = "pulse"
    """A shutoff: cut, held for ``cut_hold``, then re-armed."""
    LOCKED = "locked"
    """Cut until unlocked."""


class Seen(StrEnum):
    """What an unprompted observation of the relay means."""

    AS_EXPECTED = "as_expected"
    EXTERNAL_CUT = "external_cut"
    """Cut by someone else while it should be armed: an ``external`` shutoff."""
    TAMPER = "tamper"
    """Armed by someone else while locked: cut again at once and raise an alarm."""
    REARMED_IN_HOLD = "rearmed_in_hold"
    """Armed by someone else during a shutoff's hold: cut again."""


@dataclass
class Burner:
    settings: BurnerSettings
    mode: Mode = Mode.ARMED
    reason: str | None = None
    source: str = "startup"
    since: float = 0.0
    seen: RelayState | None = None
    """The relay state last read back; None when not yet read or the device is away."""
    device_online: bool | None = None
    device_rearm_due: float | None = None
    """Monotonic time the device will end a shutoff's pulse by itself, if it was told to."""

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def device(self) -> str:
        return self.settings.device

    @property
    def channel(self) -> int:
        return self.settings.channel

    @property
    def cut_relay(self) -> RelayState:
        return RelayState(self.settings.cut_state)

    @property
    def armed_relay(self) -> RelayState:
        return self.cut_relay.inverse()

    @property
    def wanted(self) -> RelayState:
        return self.armed_relay if self.mode is Mode.ARMED else self.cut_relay

    @property
    def wants_cut(self) -> bool:
        return self.mode is not Mode.ARMED

    def is_cut(self, state: RelayState | None) -> bool | None:
        return None if state is None else state is self.cut_relay

    def classify(self, state: RelayState) -> Seen:
        """What seeing ``state`` unprompted means, given the intent."""
        if state is self.wanted:
            return Seen.AS_EXPECTED
        if state is self.cut_relay:
            return Seen.EXTERNAL_CUT
        return Seen.TAMPER if self.mode is Mode.LOCKED else Seen.REARMED_IN_HOLD
