"""The vocabulary of simulated MQTT relay firmware: requests, reports, and their base.

The simulated MQTT device (``mqtt_device``) owns the relay, its timers, the
fault switches and the broker connection. Firmware only translates: a message
on one of its topics becomes a ``Request``, and the relay's state becomes what
that firmware would publish (``Outgoing``). This module holds what every
firmware shares; ``mqtt_dialects`` holds each preset's own spelling. Nothing
here touches a socket, a clock or the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from stovectl.devices.base import RelayState
from stovectl.settings.mqtt import MqttDeviceSettings

ON, OFF = RelayState.ON, RelayState.OFF
PULSE_TIME_MAX = 64900
PULSE_TENTHS_MAX = 111
WORDS = {"ON": ON, "OFF": OFF, "TOGGLE": None}


class Kind(Enum):
    SWITCH = "switch"
    QUERY = "query"
    PULSE_TIME = "pulse time"
    INVALID = "invalid"


@dataclass(frozen=True)
class Switch:
    channel: int
    state: RelayState | None  # None: a toggle
    return_after: float | None = None
    """Seconds after which the command asks to switch back (toggle_after, on_time)."""


@dataclass(frozen=True)
class Rpc:
    """Who asked a Shelly, so that it can answer on ``<src>/rpc``."""

    id: int
    src: str


@dataclass(frozen=True)
class Request:
    """What one incoming message asks of the device."""

    kind: Kind
    switches: tuple[Switch, ...] = ()
    channels: tuple[int, ...] = ()  # queried, or whose PulseTime is set or read
    pulse_time: int | None = None  # Tasmota: the new PulseTime setting; None asks for it
    rpc: Rpc | None = None
    error: tuple[int, str] | None = None  # Shelly: the RPC error an invalid request gets

    @property
    def is_toggle(self) -> bool:
        return any(switch.state is None for switch in self.switches)

    @property
    def is_write(self) -> bool:
        return self.kind is Kind.SWITCH or (
            self.kind is Kind.PULSE_TIME and self.pulse_time is not None
        )


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: str
    retain: bool = False


@dataclass(frozen=True)
class Availability:
    topic: str
    online: str
    offline: str


@dataclass(frozen=True)
class Snapshot:
    """The relay as the firmware reports it."""

    states: Mapping[int, RelayState]
    sources: Mapping[int, str]  # what last switched each channel: init, MQTT, button, timer
    wall_time: float  # seconds since the epoch, for time stamps


def pulse_time_seconds(value: int) -> float:
    """Tasmota's PulseTime setting in seconds: tenths up to 111, then seconds plus 100."""
    return value / 10 if value <= PULSE_TENTHS_MAX else float(value - 100)


def encode_pulse_time(seconds: float) -> int:
    """Seconds as a PulseTime value, encoded as the client does."""
    if seconds <= PULSE_TENTHS_MAX / 10:
        return round(seconds * 10)
    return min(round(seconds) + 100, PULSE_TIME_MAX)


class Firmware:
    """One preset's topics and payloads; the defaults fit firmwares that never answer."""

    availability: Availability | None = None
    pulse_state: RelayState | None = None  # Tasmota: the state PulseTime returns from
    reports_unchanged = True  # a command that changes nothing is reported all the same

    def __init__(self, settings: MqttDeviceSettings) -> None:
        self.settings = settings
        self.topic = settings.topic
        self.channels = tuple(range(1, settings.channels + 1))

    def subscriptions(self) -> list[str]:
        raise NotImplementedError

    def decode(self, topic: str, payload: bytes) -> Request | None:
        """The request a message makes (Kind.INVALID: rejected); None if ignored."""
        raise NotImplementedError

    def state_reports(self, snapshot: Snapshot, channels: Sequence[int]) -> list[Outgoing]:
        raise NotImplementedError

    def describe(self) -> str:
        """Where commands go and states come from, for ``stovectl simulate`` to say."""
        raise NotImplementedError

    def connect_reports(self, snapshot: Snapshot) -> list[Outgoing]:
        return self.state_reports(snapshot, self.channels) + self.periodic_reports(snapshot)

    def periodic_reports(self, snapshot: Snapshot) -> list[Outgoing]:
        return []

    def query_answer(self, request: Request, snapshot: Snapshot) -> list[Outgoing]:
        return self.state_reports(snapshot, request.channels)

    def switch_answer(self, request: Request, was: Mapping[int, RelayState]) -> list[Outgoing]:
        return []

    def refusal(self, request: Request) -> list[Outgoing]:
        return []

    def pulse_time_answer(self, channel: int, setting: int, remaining: float) -> list[Outgoing]:
        return []
