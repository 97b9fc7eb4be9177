"""What each relay firmware says on MQTT, as pure functions of the device's settings.

Tasmota, Zigbee2MQTT, Shelly Gen2, ESPHome and a generic device each spell
commands, queries, state and availability their own way (PROTOCOLS.md, "MQTT
relays"; ``sim/mqtt_firmware`` plays the devices from the same wire format).
A preset turns stovectl's explicit requests into the firmware's messages and
the firmware's messages into ``Report`` values, so ``devices/mqtt.py`` only
moves messages and keeps time. Parsing never raises: whatever a message does
not clearly say about a relay (bad UTF-8, bad JSON, wrong types, an error
report) changes nothing. ``PRESETS`` maps each ``preset`` setting to its
class (STYLE rule 3).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from stovectl.devices.base import RelayState
from stovectl.mqtt.connection import Message
from stovectl.settings.mqtt import MqttDeviceSettings, Preset

ON, OFF = RelayState.ON, RelayState.OFF
WORDS = {"ON": ON, "OFF": OFF}
PULSE_TIME_TENTHS_MAX_SECONDS = 11.1
PULSE_TIME_MAX = 64900
NOTIFICATIONS = ("NotifyStatus", "NotifyFullStatus")


@dataclass(frozen=True)
class Command:
    """One message to publish (QoS 1, never retained)."""

    topic: str
    payload: str
    request_id: int | None = None
    """Shelly RPC: the id of the reply that says whether the device did it."""
    resubscribe: bool = False
    """Not a publish: subscribe to ``topic`` again, so the broker resends its retained
    state. The query of firmware that keeps its state retained and has no other."""
    confirm: str | None = None
    """What the device's answer to this command says (``Report.confirmed``) once it took
    it. Until then no state report counts for the write: one may be older than it."""


@dataclass(frozen=True)
class RpcReply:
    """A Shelly RPC reply: ``error`` is (code, message) when the device refused."""

    request_id: int
    error: tuple[int, str] | None = None


@dataclass(frozen=True)
class Report:
    """What one message says: relay states, availability (None: nothing), an RPC reply."""

    states: dict[int, RelayState] = field(default_factory=dict)
    available: bool | None = None
    reply: RpcReply | None = None
    confirmed: frozenset[str] = frozenset()
    """The ``Command.confirm`` of each command this message answers."""


NOTHING = Report()
REFUSED = "refused"
"""In ``Report.confirmed``: the device answered a command with an error; nothing more
will come of the awaited answers."""


class DevicePreset(Protocol):
    """One firmware's messages; channels are numbered from 1 and already checked.

    ``filters`` lists availability first, so its retained word arrives before states;
    ``can_pulse``: some channel can pulse some state; ``pulse`` is only asked for when
    ``pulse_supported``; ``query`` is empty for firmware that cannot be asked.
    """

    @property
    def filters(self) -> list[str]: ...
    @property
    def can_pulse(self) -> bool: ...
    def write(self, channel: int, state: RelayState) -> list[Command]: ...
    def pulse_supported(self, channel: int, state: RelayState) -> bool: ...
    def pulse(self, channel: int, state: RelayState, seconds: float) -> list[Command]: ...
    def query(self, channel: int) -> list[Command]: ...
    def parse(self, message: Message) -> Report: ...


def pulse_time(seconds: float) -> int:
    """Tasmota's PulseTime value: tenths up to 11.1 s, then seconds + 100, at most 64900."""
    if seconds <= PULSE_TIME_TENTHS_MAX_SECONDS:
        return max(1, round(seconds * 10))  # 0 would switch the timer off, not pulse
    if seconds >= PULSE_TIME_MAX:
        return PULSE_TIME_MAX
    return min(round(seconds) + 100, PULSE_TIME_MAX)


def _text(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json(payload: bytes) -> Any:
    """The decoded JSON value, or None for anything that is not JSON."""
    try:
        return json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


def _object(payload: bytes) -> dict[str, Any]:
    value = _json(payload)
    return value if isinstance(value, dict) else {}


def _word(value: Any) -> RelayState | None:
    return WORDS.get(value) if isinstance(value, str) else None


def _availability(payload: bytes, online: str, offline: str) -> Report:
    return Report(available=availability(payload, online, offline))


def availability(payload: bytes, online: str, offline: str) -> bool | None:
    """What an availability message says: online (True), offline (False), or nothing.

    The word must equal ``online`` or ``offline`` exactly, as a plain payload
    (Tasmota's ``Online``, Shelly's ``true``, Zigbee2MQTT 1.x) or as the
    ``state`` of a JSON object (Zigbee2MQTT 2.x: ``{"state": "online"}``). The
    MQTT sensors read their availability topics with it too.
    """
    words = {online: True, offline: False}
    text = _text(payload)
    said = None if text is None else words.get(text)
    if said is None:
        value = _json(payload)
        word = value.get("state") if isinstance(value, dict) else None
        said = words.get(word) if isinstance(word, str) else None
    return said


def _states(found: dict[int, RelayState | None]) -> Report:
    states = {channel: state for channel, state in found.items() if state is not None}
    return Report(states=states) if states else NOTHING


class _Firmware:
    """What most presets share: settings, channel numbers, and no pulse or query."""

    def __init__(self, settings: MqttDeviceSettings, rpc_source: str) -> None:
        self._s = settings
        self._t = settings.topic
        self._src = rpc_source
        self._channels = range(1, settings.channels + 1)

    @property
    def can_pulse(self) -> bool:
        return False

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        return False

    def pulse(self, channel: int, state: RelayState, seconds: float) -> list[Command]:
        raise ValueError(f"a {self._s.preset} relay cannot pulse")

    def query(self, channel: int) -> list[Command]:
        return []


class Tasmota(_Firmware):
    """``cmnd/T/POWER<n>``, ``PulseTime<n>``; reports on ``stat/T/…`` and ``tele/T/STATE``."""

    @property
    def filters(self) -> list[str]:
        return [f"tele/{self._t}/LWT", f"stat/{self._t}/+", f"tele/{self._t}/STATE"]

    @property
    def can_pulse(self) -> bool:
        return self._s.device_pulse

    def write(self, channel: int, state: RelayState) -> list[Command]:
        power = Command(f"cmnd/{self._t}/POWER{channel}", state.name)
        if not self._s.device_pulse:
            return [power]
        # PulseTime is a lasting setting: clear it, or a lock would end by itself.
        return [self._pulse_time(channel, 0), power]

    def _pulse_time(self, channel: int, setting: int) -> Command:
        # Its answer proves the device took it: a relay that was away when it went out
        # (its Wi-Fi, the broker) reports its old state on return, pulse still running.
        return Command(f"cmnd/{self._t}/PulseTime{channel}", str(setting),
                       confirm=f"PulseTime{channel}={setting}")

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        returns_from = OFF if self._s.power_on_state_5 else ON
        return self._s.device_pulse and state is returns_from

    def pulse(self, channel: int, state: RelayState, seconds: float) -> list[Command]:
        return [
            self._pulse_time(channel, pulse_time(seconds)),
            Command(f"cmnd/{self._t}/POWER{channel}", state.name),
        ]

    def query(self, channel: int) -> list[Command]:
        return [Command(f"cmnd/{self._t}/POWER{channel}", "")]

    def parse(self, message: Message) -> Report:
        topic, t = message.topic, self._t
        if topic == f"tele/{t}/LWT":
            return _availability(message.payload, "Online", "Offline")
        if topic in (f"stat/{t}/RESULT", f"tele/{t}/STATE"):
            found = _object(message.payload)
            if "POWER1" not in found:
                found["POWER1"] = found.get("POWER")  # a one-relay device's spelling
            report = _states({n: _word(found.get(f"POWER{n}")) for n in self._channels})
            return replace(report, confirmed=self._pulse_times(found))
        if topic.startswith(f"stat/{t}/PULSETIME"):  # answers on their own topic (SetOption4)
            return Report(confirmed=self._pulse_times(_object(message.payload)))
        for n in self._channels:
            if topic == f"stat/{t}/POWER{n}" or (n == 1 and topic == f"stat/{t}/POWER"):
                return _states({n: _word(_text(message.payload))})
        return NOTHING


    def _pulse_times(self, found: dict[str, Any]) -> frozenset[str]:
        """``PulseTime<n>=<setting>`` for each answer to a PulseTime command in ``found``:
        ``{"PulseTime2": {"Set": 30, "Remaining": 0}}``, or a bare number (older firmware);
        REFUSED for ``{"Command": "Error"}``."""
        confirmed = {REFUSED} if found.get("Command") == "Error" else set()
        for n in self._channels:
            answer = found.get(f"PulseTime{n}")
            setting = answer.get("Set") if isinstance(answer, dict) else answer
            if isinstance(setting, int) and not isinstance(setting, bool):
                confirmed.add(f"PulseTime{n}={setting}")
        return frozenset(confirmed)


class Zigbee2Mqtt(_Firmware):
    """JSON on ``T/set`` and ``T``; ``state`` or, on a two-channel relay, ``state_l<n>``."""

    @property
    def filters(self) -> list[str]:
        return [f"{self._t}/availability", self._t]

    @property
    def can_pulse(self) -> bool:
        return self._s.device_pulse and self._s.channels == 1

    def _key(self, channel: int) -> str:
        return "state" if self._s.channels == 1 else f"state_l{channel}"

    def write(self, channel: int, state: RelayState) -> list[Command]:
        # A plain state also cancels a pending on_time: a lock stays.
        return [Command(f"{self._t}/set", json.dumps({self._key(channel): state.name}))]

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        # on_time only ever turns the relay off again: it pulses ON alone.
        return self.can_pulse and state is ON

    def pulse(self, channel: int, state: RelayState, seconds: float) -> list[Command]:
        payload = {self._key(channel): state.name, "on_time": max(1, math.ceil(seconds))}
        return [Command(f"{self._t}/set", json.dumps(payload))]

    def query(self, channel: int) -> list[Command]:
        return [Command(f"{self._t}/get", json.dumps({self._key(channel): ""}))]

    def parse(self, message: Message) -> Report:
        if message.topic == f"{self._t}/availability":
            return _availability(message.payload, "online", "offline")
        if message.topic == self._t:
            found = _object(message.payload)
            return _states({n: _word(found.get(self._key(n))) for n in self._channels})
        return NOTHING


class Shelly(_Firmware):
    """Gen2 RPC on ``P/rpc``, replies on ``<SRC>/rpc``; channel n is switch id n - 1."""

    def __init__(self, settings: MqttDeviceSettings, rpc_source: str) -> None:
        super().__init__(settings, rpc_source)
        self._ids = itertools.count(1)

    @property
    def filters(self) -> list[str]:
        switches = [f"{self._t}/status/switch:{n - 1}" for n in self._channels]
        return [f"{self._t}/online", *switches, f"{self._t}/events/rpc", f"{self._src}/rpc"]

    @property
    def can_pulse(self) -> bool:
        return self._s.device_pulse

    def _call(self, method: str, params: dict[str, Any]) -> Command:
        request_id = next(self._ids)
        body = {"id": request_id, "src": self._src, "method": method, "params": params}
        return Command(f"{self._t}/rpc", json.dumps(body), request_id)

    def write(self, channel: int, state: RelayState) -> list[Command]:
        # A Set without toggle_after also cancels a pending one: a lock stays.
        return [self._call("Switch.Set", {"id": channel - 1, "on": state is ON})]

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        return self.can_pulse  # toggle_after returns from either state

    def pulse(self, channel: int, state: RelayState, seconds: float) -> list[Command]:
        params = {"id": channel - 1, "on": state is ON, "toggle_after": float(seconds)}
        return [self._call("Switch.Set", params)]

    def query(self, channel: int) -> list[Command]:
        return [self._call("Switch.GetStatus", {"id": channel - 1})]

    def parse(self, message: Message) -> Report:
        topic, p = message.topic, self._t
        if topic == f"{p}/online":
            return _availability(message.payload, "true", "false")
        if topic == f"{self._src}/rpc":
            return self._reply(_object(message.payload))
        if topic == f"{p}/events/rpc":
            event = _object(message.payload)
            params = event.get("params")
            if event.get("method") not in NOTIFICATIONS or not isinstance(params, dict):
                return NOTHING
            return _states({n: _output(params.get(f"switch:{n - 1}"), n - 1)
                            for n in self._channels})
        for n in self._channels:
            if topic == f"{p}/status/switch:{n - 1}":
                return _states({n: _output(_object(message.payload), n - 1)})
        return NOTHING

    def _reply(self, body: dict[str, Any]) -> Report:
        request_id = body.get("id")
        if type(request_id) is not int:
            return NOTHING
        error = body.get("error")
        if isinstance(error, dict):
            code, text = error.get("code"), error.get("message")
            return Report(reply=RpcReply(request_id, (
                code if type(code) is int else 0, text if isinstance(text, str) else "")))
        result = body.get("result")
        states: dict[int, RelayState | None] = {}
        if isinstance(result, dict) and "id" in result:  # Switch.GetStatus, not Switch.Set
            states = {n: _output(result, n - 1) for n in self._channels}
        return Report(states=_states(states).states, reply=RpcReply(request_id))


class Esphome(_Firmware):
    """``P/switch/<S>/command`` and retained ``/state`` with ON/OFF; no pulse.

    ESPHome has no query, and does not report a state that a command left
    unchanged; its state topic is retained, so subscribing again is the query.
    """

    @property
    def filters(self) -> list[str]:
        return [f"{self._t}/status", *(self._topic(n, "state") for n in self._channels)]

    def _topic(self, channel: int, leaf: str) -> str:
        return f"{self._t}/switch/{self._s.esphome_switches[channel - 1]}/{leaf}"

    def write(self, channel: int, state: RelayState) -> list[Command]:
        return [Command(self._topic(channel, "command"), state.name)]

    def query(self, channel: int) -> list[Command]:
        return [Command(self._topic(channel, "state"), "", resubscribe=True)]

    def parse(self, message: Message) -> Report:
        if message.topic == f"{self._t}/status":
            return _availability(message.payload, "online", "offline")
        for n in self._channels:
            if message.topic == self._topic(n, "state"):
                return _states({n: _word(_text(message.payload))})
        return NOTHING


class Generic(_Firmware):
    """Topics and words from the settings; ``{channel}`` is replaced by the channel number."""

    def _each(self, template: str) -> dict[int, str]:
        return {n: template.replace("{channel}", str(n)) for n in self._channels}

    @property
    def filters(self) -> list[str]:
        wanted = [self._s.availability_topic, *self._each(self._s.state_topic).values()]
        return list(dict.fromkeys(topic for topic in wanted if topic))

    def write(self, channel: int, state: RelayState) -> list[Command]:
        payload = self._s.payload_on if state is ON else self._s.payload_off
        return [Command(self._each(self._s.command_topic)[channel], payload)]

    def query(self, channel: int) -> list[Command]:
        # Subscribing again brings a retained state anew; a device that does not
        # retain it is not harmed by the question.
        if not self._s.state_topic:
            return []
        return [Command(self._each(self._s.state_topic)[channel], "", resubscribe=True)]

    def parse(self, message: Message) -> Report:
        s = self._s
        available = None
        if s.availability_topic and message.topic == s.availability_topic:
            available = availability(
                message.payload, s.payload_available, s.payload_not_available)
        found: dict[int, RelayState | None] = {}
        fields = self._each(s.state_field)
        for n, topic in self._each(s.state_topic).items():
            if s.state_topic and topic == message.topic:
                value = (_object(message.payload).get(fields[n]) if s.state_field
                         else _text(message.payload))
                found[n] = self._word(value)
        return Report(states=_states(found).states, available=available)

    def _word(self, value: Any) -> RelayState | None:
        # JSON true/false/numbers compare by their JSON spelling, e.g. state_on = "true".
        if type(value) in (bool, int):
            value = json.dumps(value)
        if not isinstance(value, str):
            return None
        return {self._s.state_on: ON, self._s.state_off: OFF}.get(value)


def _output(status: Any, switch_id: int) -> RelayState | None:
    """A Shelly switch status object's output, if it is this switch's and says one."""
    if not isinstance(status, dict) or type(status.get("id", switch_id)) is not int:
        return None
    output = status.get("output")
    if status.get("id", switch_id) != switch_id or not isinstance(output, bool):
        return None
    return ON if output else OFF


PRESETS: dict[Preset, Callable[[MqttDeviceSettings, str], DevicePreset]] = {
    "tasmota": Tasmota,
    "zigbee2mqtt": Zigbee2Mqtt,
    "shelly": Shelly,
    "esphome": Esphome,
    "generic": Generic,
}


def rpc_source(base_topic: str, device_id: str) -> str:
    """The Shelly RPC ``src`` (and reply topic prefix) stovectl uses for a device."""
    return f"{base_topic}/shelly-{device_id}" if base_topic else f"shelly-{device_id}"


def build_preset(settings: MqttDeviceSettings, base_topic: str) -> DevicePreset:
    """The preset for a device's settings; ``base_topic`` is stovectl's own topic prefix."""
    return PRESETS[settings.preset](settings, rpc_source(base_topic, settings.id))
