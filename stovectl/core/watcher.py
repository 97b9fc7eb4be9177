"""Polls each device and hands what it sees to the controller (DESIGN §2 rule 7).

Mi Home, voice assistants and relay buttons switch relays behind our back; the
only way to know is to look. One task per device reads all its channels every
``poll_interval`` and reports availability and unprompted states. A reading
taken while the controller was writing to that burner is dropped: it may show
the relay half-way through our own change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from stovectl.core.burner import Burner
from stovectl.devices.base import Relay, RelayState
from stovectl.errors import DeviceError

log = logging.getLogger(__name__)


class Lane(Protocol):
    """What the watcher needs to know of a burner's actuator."""

    @property
    def busy(self) -> bool: ...

    write_seq: int


class WatchListener(Protocol):
    def device_answered(self, device: str, error: BaseException | None) -> None: ...

    def observe(self, burner_id: str, state: RelayState) -> None: ...


class Buttons(Protocol):
    def channels_of(self, device: str) -> list[int]: ...

    def button_seen(self, device: str, channel: int, state: RelayState) -> None: ...


async def watch(
    relay: Relay,
    burners: Sequence[Burner],
    lane_of: Callable[[str], Lane],
    listener: WatchListener,
    buttons: Buttons | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> None:
    """Poll ``relay`` for ever; cancel the task to stop. ``heartbeat`` is called each turn."""
    button_channels = buttons.channels_of(relay.id) if buttons else []
    interval = relay.poll_interval_seconds
    while True:
        await asyncio.sleep(interval)
        if heartbeat is not None:
            heartbeat()
        lanes = {b.id: lane_of(b.id) for b in burners}
        if burners and all(lane.busy for lane in lanes.values()):
            continue  # the actuators are reading this device already
        before = {burner_id: lane.write_seq for burner_id, lane in lanes.items()}
        try:
            states = await relay.read()
        except DeviceError as error:
            listener.device_answered(relay.id, error)
            continue
        except Exception as error:
            log.exception("device %s: unexpected error while polling", relay.id)
            listener.device_answered(relay.id, error)
            continue
        listener.device_answered(relay.id, None)
        for burner in burners:
            lane = lanes[burner.id]
            state = states.get(burner.channel)
            if state is None or lane.busy or lane.write_seq != before[burner.id]:
                continue
            listener.observe(burner.id, state)
        for channel in button_channels:
            if buttons and (state := states.get(channel)) is not None:
                buttons.button_seen(relay.id, channel, state)
