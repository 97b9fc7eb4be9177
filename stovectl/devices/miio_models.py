"""How stovectl talks to each known Mi Home relay model: which property is which channel.

A literal table (STYLE rule 3), from PROTOCOLS.md "MiOT relay and speaker
mappings". A model not in it needs ``channels`` in the config. Pure data: the
settings validate against it and the driver reads it; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Protocol = Literal["miot", "legacy"]


@dataclass(frozen=True)
class MiotChannel:
    """One relay channel: its on/off property, and its device-side off-delay if any."""

    siid: int
    piid: int
    off_delay_piid: int | None = None
    """A property whose value N > 0 makes the device switch the channel off N s after on."""


@dataclass(frozen=True)
class MiioModel:
    protocol: Protocol
    channels: tuple[MiotChannel, ...]
    """MiOT channels in order; a legacy model has one channel and no properties."""


LEGACY_POWER = MiioModel("legacy", (MiotChannel(0, 0),))

MODELS: dict[str, MiioModel] = {
    # Most single-channel MiOT switches put switch.on at siid 2 piid 1.
    "generic.relay.1": MiioModel("miot", (MiotChannel(2, 1),)),
    "generic.relay.2": MiioModel("miot", (MiotChannel(2, 1), MiotChannel(3, 1))),
    # The two-channel module: off-delay at piid 3 of each channel's service.
    "yeelink.switch.sw1": MiioModel(
        "miot", (MiotChannel(2, 1, off_delay_piid=3), MiotChannel(3, 1, off_delay_piid=3))
    ),
}
LEGACY_PREFIXES = ("chuangmi.plug.",)
"""Plugs switched with set_power/get_prop; every model under these names."""

SPEAKERS: dict[str, tuple[int, int]] = {
    # The MiOT action that speaks its text argument: (siid, aiid).
    **dict.fromkeys(
        ("lx06", "lx04", "lx01", "s12", "l06a", "lx5a", "l07a"), (5, 1)
    ),
    **dict.fromkeys(("l05b", "l05c"), (5, 3)),
    **dict.fromkeys(("l15a", "l17a", "x08e", "x6a", "x10a"), (7, 3)),
    "l09a": (3, 1),
}
SPEAKER_PREFIX = "xiaomi.wifispeaker."


def known_model(model: str) -> MiioModel | None:
    """The mapping for a model name, or None when the config must give ``channels``."""
    if model in MODELS:
        return MODELS[model]
    if model.startswith(LEGACY_PREFIXES):
        return LEGACY_POWER
    return None


def speaker_action(model: str) -> tuple[int, int] | None:
    """The (siid, aiid) that makes a Xiaoai speaker say a text, or None if unknown."""
    return SPEAKERS.get(model.removeprefix(SPEAKER_PREFIX)) if model.startswith(
        SPEAKER_PREFIX) else None
