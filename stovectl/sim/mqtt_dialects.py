"""Each simulated MQTT relay firmware's dialect: Tasmota, Zigbee2MQTT, Shelly, ESPHome, generic.

Pure translations, per preset, as PROTOCOLS.md ("MQTT relays") and the wire
format shared with the daemon's MQTT relay spell them, on the vocabulary of
``mqtt_firmware``; ``build_firmware`` picks one from the explicit table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from stovectl.devices.base import RelayState
from stovectl.settings.mqtt import MqttDeviceSettings, Preset
from stovectl.sim.mqtt_firmware import (
    OFF,
    ON,
    PULSE_TIME_MAX,
    WORDS,
    Availability,
    Firmware,
    Kind,
    Outgoing,
    Request,
    Rpc,
    Snapshot,
    Switch,
    encode_pulse_time,
)

LINKQUALITY = 120
SHELLY_INVALID = -103
SHELLY_NO_HANDLER = 404
SHELLY_METHODS = ("Switch.Set", "Switch.Toggle", "Switch.GetStatus")
TASMOTA_WORDS = {**WORDS, "1": ON, "0": OFF, "2": None, "TRUE": ON, "FALSE": OFF}
TASMOTA_COMMAND = re.compile(r"(power|pulsetime)(\d*)", re.IGNORECASE)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_object(payload: bytes) -> dict[str, Any]:
    """The payload's JSON object; empty if it is not one."""
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)




class Tasmota(Firmware):
    def __init__(self, settings: MqttDeviceSettings) -> None:
        super().__init__(settings)
        self.availability = Availability(f"tele/{self.topic}/LWT", "Online", "Offline")
        self.pulse_state = OFF if settings.power_on_state_5 else ON
        # A one-relay Tasmota says POWER, never POWER1.
        self.power = "POWER" if len(self.channels) == 1 else "POWER{}"

    def subscriptions(self) -> list[str]:
        return [f"cmnd/{self.topic}/+"]

    def decode(self, topic: str, payload: bytes) -> Request | None:
        match = TASMOTA_COMMAND.fullmatch(topic.rpartition("/")[2])
        channel = int(match.group(2) or "1") if match else 0
        text = payload.decode(errors="replace").strip()
        if match is None or channel not in self.channels:
            return Request(Kind.INVALID)
        if match.group(1).lower() == "power":
            if not text:
                return Request(Kind.QUERY, channels=(channel,))
            if text.upper() not in TASMOTA_WORDS:
                return Request(Kind.INVALID)
            return Request(Kind.SWITCH, switches=(Switch(channel, TASMOTA_WORDS[text.upper()]),))
        if text and (not text.isdigit() or int(text) > PULSE_TIME_MAX):
            return Request(Kind.INVALID)
        return Request(Kind.PULSE_TIME, channels=(channel,), pulse_time=int(text) if text else None)

    def _result(self, body: dict[str, Any]) -> Outgoing:
        return Outgoing(f"stat/{self.topic}/RESULT", _dumps(body))

    def state_reports(self, snapshot: Snapshot, channels: Sequence[int]) -> list[Outgoing]:
        reports = []
        for channel in channels:
            power, word = self.power.format(channel), snapshot.states[channel].upper()
            reports += [self._result({power: word}), Outgoing(f"stat/{self.topic}/{power}", word)]
        return reports

    def periodic_reports(self, snapshot: Snapshot) -> list[Outgoing]:
        # Tasmota stamps tele/STATE with its local time, without a zone.
        stamp = datetime.fromtimestamp(snapshot.wall_time).replace(microsecond=0).isoformat()
        powers = {self.power.format(c): snapshot.states[c].upper() for c in self.channels}
        return [Outgoing(f"tele/{self.topic}/STATE", _dumps({"Time": stamp} | powers))]

    def refusal(self, request: Request) -> list[Outgoing]:
        return [self._result({"Command": "Error"})]

    def pulse_time_answer(self, channel: int, setting: int, remaining: float) -> list[Outgoing]:
        left = encode_pulse_time(remaining) if remaining > 0 else 0
        return [self._result({f"PulseTime{channel}": {"Set": setting, "Remaining": left}})]

    def describe(self) -> str:
        power = self.power.format("<n>")
        return f"cmnd/{self.topic}/{power} -> stat/{self.topic}/{power}"


class Zigbee2Mqtt(Firmware):
    def __init__(self, settings: MqttDeviceSettings, legacy_availability: bool = False) -> None:
        super().__init__(settings)
        # Zigbee2MQTT 1.x says plain online/offline; 2.x a JSON object.
        words = ["online", "offline"]
        if not legacy_availability:
            words = [_dumps({"state": word}) for word in words]
        self.availability = Availability(f"{self.topic}/availability", *words)
        self.keys = {1: "state"} if len(self.channels) == 1 else {
            channel: f"state_l{channel}" for channel in self.channels}

    def subscriptions(self) -> list[str]:
        return [f"{self.topic}/set", f"{self.topic}/get"]

    def decode(self, topic: str, payload: bytes) -> Request | None:
        body = _json_object(payload)
        if topic.endswith("/get"):
            return Request(Kind.QUERY, channels=self.channels)
        switches = []
        for channel, key in self.keys.items():
            word = str(body.get(key, "")).upper()
            if word in WORDS:
                # on_time: only for one channel, only after ON, as the wire format says.
                on_time: Any = body.get("on_time")
                timed = self.keys == {1: "state"} and WORDS[word] is ON and _is_number(on_time)
                after = float(on_time) if timed and on_time > 0 else None
                switches.append(Switch(channel, WORDS[word], after))
        # Anything else Zigbee2MQTT logs, and does nothing.
        return Request(Kind.SWITCH, switches=tuple(switches)) if switches else None

    def state_reports(self, snapshot: Snapshot, channels: Sequence[int]) -> list[Outgoing]:
        # The bridge publishes the device's whole state, whatever changed.
        body: dict[str, Any] = {key: snapshot.states[c].upper() for c, key in self.keys.items()}
        return [Outgoing(self.topic, _dumps(body | {"linkquality": LINKQUALITY}), retain=True)]

    def describe(self) -> str:
        return f"{self.topic}/set -> {self.topic}"


class Shelly(Firmware):
    reports_unchanged = False  # status and NotifyStatus come on change only; a Set is answered

    def __init__(self, settings: MqttDeviceSettings) -> None:
        super().__init__(settings)
        self.availability = Availability(f"{self.topic}/online", "true", "false")
        self.name = self.topic  # a Shelly's default prefix is its device name

    def subscriptions(self) -> list[str]:
        return [f"{self.topic}/rpc"]

    def decode(self, topic: str, payload: bytes) -> Request | None:
        body = _json_object(payload)
        call_id, src, method = body.get("id"), body.get("src"), body.get("method")
        if not isinstance(call_id, int) or not isinstance(src, str):
            return None  # nobody to answer: a Shelly ignores it
        rpc = Rpc(call_id, src)
        params: dict[str, Any] = body.get("params") or {}
        if not isinstance(params, dict):
            params = {}
        switch_id, on, after = (params.get(key) for key in ("id", "on", "toggle_after"))
        channel = switch_id + 1 if type(switch_id) is int else 0
        if method not in SHELLY_METHODS:
            error = (SHELLY_NO_HANDLER, f"No handler for {method}")
            return Request(Kind.INVALID, rpc=rpc, error=error)
        problem = (
            "id" if channel not in self.channels else
            "on" if method == "Switch.Set" and not isinstance(on, bool) else
            "toggle_after" if after is not None and not (_is_number(after) and after > 0) else
            None
        )
        if problem is not None:
            error = (SHELLY_INVALID, f"Invalid argument '{problem}'")
            return Request(Kind.INVALID, rpc=rpc, error=error)
        if method == "Switch.GetStatus":
            return Request(Kind.QUERY, channels=(channel,), rpc=rpc)
        if method == "Switch.Toggle":
            return Request(Kind.SWITCH, switches=(Switch(channel, None),), rpc=rpc)
        switch = Switch(channel, ON if on else OFF, None if after is None else float(after))
        return Request(Kind.SWITCH, switches=(switch,), rpc=rpc)

    def _reply(self, rpc: Rpc | None, outcome: dict[str, Any]) -> list[Outgoing]:
        if rpc is None:
            return []
        body = {"id": rpc.id, "src": self.name, "dst": rpc.src} | outcome
        return [Outgoing(f"{rpc.src}/rpc", _dumps(body))]

    @staticmethod
    def _status(snapshot: Snapshot, channel: int) -> dict[str, Any]:
        output = snapshot.states[channel] is ON
        return {"id": channel - 1, "source": snapshot.sources[channel], "output": output}

    def state_reports(self, snapshot: Snapshot, channels: Sequence[int]) -> list[Outgoing]:
        reports = []
        for channel in channels:
            key, status = f"switch:{channel - 1}", self._status(snapshot, channel)
            params = {"ts": round(snapshot.wall_time, 2), key: status}
            event = {"src": self.name, "dst": f"{self.topic}/events", "method": "NotifyStatus",
                     "params": params}
            reports += [Outgoing(f"{self.topic}/status/{key}", _dumps(status)),
                        Outgoing(f"{self.topic}/events/rpc", _dumps(event))]
        return reports

    def query_answer(self, request: Request, snapshot: Snapshot) -> list[Outgoing]:
        return self._reply(request.rpc, {"result": self._status(snapshot, request.channels[0])})

    def switch_answer(self, request: Request, was: Mapping[int, RelayState]) -> list[Outgoing]:
        was_on = was[request.switches[0].channel] is ON
        return self._reply(request.rpc, {"result": {"was_on": was_on}})

    def refusal(self, request: Request) -> list[Outgoing]:
        code, message = request.error or (SHELLY_INVALID, "The switch refused the command")
        return self._reply(request.rpc, {"error": {"code": code, "message": message}})

    def describe(self) -> str:
        return f"{self.topic}/rpc -> {self.topic}/status/switch:<id>"


class Esphome(Firmware):
    # ESPHome publishes a switch's state when it changes: a command that leaves it as
    # it was gets no report. The state is retained, so a new subscriber still learns it.
    reports_unchanged = False

    def __init__(self, settings: MqttDeviceSettings) -> None:
        super().__init__(settings)
        self.availability = Availability(f"{self.topic}/status", "online", "offline")
        self.switch_ids = dict(zip(self.channels, settings.esphome_switches, strict=True))
        self.by_topic = {self._topic(channel, "command"): channel for channel in self.channels}

    def _topic(self, channel: int, leaf: str) -> str:
        return f"{self.topic}/switch/{self.switch_ids[channel]}/{leaf}"

    def subscriptions(self) -> list[str]:
        return list(self.by_topic)

    def decode(self, topic: str, payload: bytes) -> Request | None:
        word = payload.decode(errors="replace").strip().upper()
        if topic not in self.by_topic or word not in WORDS:
            return None  # ESPHome logs a warning, and does nothing
        return Request(Kind.SWITCH, switches=(Switch(self.by_topic[topic], WORDS[word]),))

    def state_reports(self, snapshot: Snapshot, channels: Sequence[int]) -> list[Outgoing]:
        return [Outgoing(self._topic(c, "state"), snapshot.states[c].upper(), retain=True)
                for c in channels]

    def describe(self) -> str:
        ids = "|".join(self.switch_ids.values())
        ids = ids if len(self.channels) == 1 else f"<{ids}>"
        return f"{self.topic}/switch/{ids}/command -> {self.topic}/switch/{ids}/state"


class Generic(Firmware):
    def __init__(self, settings: MqttDeviceSettings) -> None:
        super().__init__(settings)
        s = self.settings
        if s.availability_topic:
            self.availability = Availability(
                s.availability_topic, s.payload_available, s.payload_not_available)
        self.by_topic: dict[str, list[int]] = {}
        for channel in self.channels:
            self.by_topic.setdefault(self._fill(s.command_topic, channel), []).append(channel)

    @staticmethod
    def _fill(template: str, channel: int) -> str:
        return template.replace("{channel}", str(channel))

    def subscriptions(self) -> list[str]:
        return list(self.by_topic)

    def decode(self, topic: str, payload: bytes) -> Request | None:
        words = {self.settings.payload_on: ON, self.settings.payload_off: OFF}
        state = words.get(payload.decode(errors="replace"))
        if topic not in self.by_topic or state is None:
            return None
        # A command topic that several channels share (no {channel} in it) switches them all.
        return Request(Kind.SWITCH, switches=tuple(Switch(c, state) for c in self.by_topic[topic]))

    def state_reports(self, snapshot: Snapshot, channels: Sequence[int]) -> list[Outgoing]:
        s = self.settings
        words = {ON: s.state_on, OFF: s.state_off}
        if not s.state_topic:
            return []
        # Retained, so that a subscriber learns the state at once: there is no query.
        if not s.state_field:
            return [Outgoing(self._fill(s.state_topic, c), words[snapshot.states[c]], retain=True)
                    for c in channels]
        # One JSON report per topic, with the field of every channel that shares the topic.
        reports = []
        for topic in dict.fromkeys(self._fill(s.state_topic, c) for c in channels):
            sharing = [c for c in self.channels if self._fill(s.state_topic, c) == topic]
            body = {self._fill(s.state_field, c): words[snapshot.states[c]] for c in sharing}
            reports.append(Outgoing(topic, _dumps(body), retain=True))
        return reports

    def describe(self) -> str:
        return f"{self.settings.command_topic} -> {self.settings.state_topic or '(no state)'}"


FIRMWARES: dict[Preset, Callable[[MqttDeviceSettings, bool], Firmware]] = {
    "tasmota": lambda settings, _legacy: Tasmota(settings),
    "zigbee2mqtt": Zigbee2Mqtt,
    "shelly": lambda settings, _legacy: Shelly(settings),
    "esphome": lambda settings, _legacy: Esphome(settings),
    "generic": lambda settings, _legacy: Generic(settings),
}


def build_firmware(settings: MqttDeviceSettings, legacy_availability: bool = False) -> Firmware:
    """The firmware of ``settings.preset``; ``legacy_availability``: Zigbee2MQTT 1.x's words."""
    return FIRMWARES[settings.preset](settings, legacy_availability)
