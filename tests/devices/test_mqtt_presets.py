"""Specification of each MQTT relay firmware's messages (PROTOCOLS.md, "MQTT relays"), pure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from stovectl.devices.base import RelayState
from stovectl.devices.mqtt_presets import (
    NOTHING,
    PRESETS,
    REFUSED,
    Command,
    DevicePreset,
    Report,
    RpcReply,
    availability,
    build_preset,
    pulse_time,
    rpc_source,
)
from stovectl.mqtt.connection import Message
from stovectl.settings.mqtt import PRESETS as PRESET_NAMES
from stovectl.settings.mqtt import MqttDeviceSettings

ON, OFF = RelayState.ON, RelayState.OFF
BASE = "stovectl/kitchen"
SRC = f"{BASE}/shelly-hob"

TOPICS = {
    "tasmota": {"topic": "hob"},
    "zigbee2mqtt": {"topic": "zigbee2mqtt/hob_relay"},
    "shelly": {"topic": "shelly/hob"},
    "esphome": {"topic": "esphome/hob"},
    "generic": {
        "command_topic": "relays/hob/{channel}/set",
        "state_topic": "relays/hob/{channel}/state",
        "availability_topic": "relays/hob/status",
    },
}


def settings(preset: str, **fields: Any) -> MqttDeviceSettings:
    values = {"kind": "mqtt", "id": "hob", "preset": preset, **TOPICS[preset], **fields}
    return MqttDeviceSettings.model_validate(values)


def make(preset: str, **fields: Any) -> DevicePreset:
    return build_preset(settings(preset, **fields), BASE)


def parse(preset: DevicePreset, topic: str, payload: bytes | str | dict[str, Any]) -> Report:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return preset.parse(Message(topic, payload))


def bodies(commands: list[Command]) -> list[tuple[str, Any]]:
    """Each command's topic and JSON payload, decoded."""
    return [(c.topic, json.loads(c.payload)) for c in commands]


def test_every_preset_setting_has_a_preset() -> None:
    """The table maps every preset the settings accept, and nothing else."""
    assert set(PRESETS) == set(PRESET_NAMES)


@pytest.mark.parametrize(
    ("seconds", "value"),
    [(0.1, 1), (0.01, 1), (1, 10), (5, 50), (11.1, 111), (12, 112), (60, 160),
     (64799, 64899), (64800, 64900), (1e9, 64900), (float("inf"), 64900)],
)
def test_pulse_time_encodes_tenths_then_seconds_plus_100(seconds: float, value: int) -> None:
    """PulseTime counts tenths up to 11.1 s, then seconds + 100, never 0 and at most 64900."""
    assert pulse_time(seconds) == value


# -- Tasmota --------------------------------------------------------------------------


def test_tasmota_plain_write_clears_pulse_time_first() -> None:
    """With device_pulse, a plain write sets PulseTime 0 and then POWER, so a lock stays; the
    device's answer to PulseTime is awaited."""
    assert make("tasmota", channels=2).write(2, OFF) == [
        Command("cmnd/hob/PulseTime2", "0", confirm="PulseTime2=0"),
        Command("cmnd/hob/POWER2", "OFF"),
    ]


def test_tasmota_write_without_device_pulse_sends_power_only() -> None:
    """Without device_pulse, a write is the POWER command alone."""
    assert make("tasmota", device_pulse=False).write(1, ON) == [Command("cmnd/hob/POWER1", "ON")]


def test_tasmota_pulse_sets_pulse_time_then_power() -> None:
    """A pulse sends the encoded PulseTime first, then the state."""
    assert make("tasmota").pulse(1, ON, 5) == [
        Command("cmnd/hob/PulseTime1", "50", confirm="PulseTime1=50"),
        Command("cmnd/hob/POWER1", "ON"),
    ]


@pytest.mark.parametrize(
    ("device_pulse", "power_on_state_5", "state", "supported"),
    [(True, False, ON, True), (True, False, OFF, False), (True, True, OFF, True),
     (True, True, ON, False), (False, False, ON, False), (False, True, OFF, False)],
)
def test_tasmota_pulses_only_the_state_its_timer_returns_from(
    device_pulse: bool, power_on_state_5: bool, state: RelayState, supported: bool
) -> None:
    """PulseTime returns from ON, or from OFF with PowerOnState 5, and only with device_pulse."""
    preset = make("tasmota", device_pulse=device_pulse, power_on_state_5=power_on_state_5)
    assert preset.pulse_supported(1, state) is supported
    assert preset.can_pulse is device_pulse


def test_tasmota_query_is_an_empty_power_command() -> None:
    """An empty POWER<n> payload asks the device for its state."""
    assert make("tasmota").query(1) == [Command("cmnd/hob/POWER1", "")]


@pytest.mark.parametrize(
    ("topic", "payload", "states"),
    [
        ("stat/hob/POWER1", "ON", {1: ON}),
        ("stat/hob/POWER", "OFF", {1: OFF}),
        ("stat/hob/POWER2", "OFF", {2: OFF}),
        ("stat/hob/POWER3", "OFF", {}),
        ("stat/hob/POWER1", "on", {}),
        ("stat/hob/RESULT", {"POWER1": "ON"}, {1: ON}),
        ("stat/hob/RESULT", {"POWER": "OFF"}, {1: OFF}),
        ("stat/hob/RESULT", {"POWER2": "ON"}, {2: ON}),
        ("tele/hob/STATE", {"Uptime": "1T", "POWER1": "OFF", "POWER2": "ON"}, {1: OFF, 2: ON}),
        ("stat/hob/RESULT", {"Command": "Error"}, {}),
        ("stat/hob/RESULT", {"PulseTime1": {"Set": 50, "Remaining": 50}}, {}),
        ("stat/hob/RESULT", {"POWER1": True}, {}),
        ("stat/hob/RESULT", '["POWER1", "ON"]', {}),
        ("stat/other/POWER1", "ON", {}),
    ],
)
def test_tasmota_reads_each_state_spelling(
    topic: str, payload: str | dict[str, Any], states: dict[int, RelayState]
) -> None:
    """POWER<n>, POWER (channel 1), RESULT and STATE JSON report states; nothing else does."""
    assert parse(make("tasmota", channels=2), topic, payload).states == states


@pytest.mark.parametrize(
    ("topic", "payload", "confirmed"),
    [
        ("stat/hob/RESULT", {"PulseTime2": {"Set": 50, "Remaining": 50}}, {"PulseTime2=50"}),
        ("stat/hob/RESULT", {"PulseTime1": {"Set": 0, "Remaining": 0}}, {"PulseTime1=0"}),
        ("stat/hob/RESULT", {"PulseTime1": 112}, {"PulseTime1=112"}),
        ("stat/hob/PULSETIME1", {"PulseTime1": {"Set": 0, "Remaining": 0}}, {"PulseTime1=0"}),
        ("stat/hob/RESULT", {"Command": "Error"}, {REFUSED}),
        ("stat/hob/RESULT", {"PulseTime1": {"Set": "0"}}, set()),
        ("stat/hob/RESULT", {"PulseTime1": True}, set()),
        ("stat/hob/RESULT", {"PulseTime3": {"Set": 0}}, set()),
        ("tele/hob/STATE", {"POWER1": "ON"}, set()),
        ("stat/other/RESULT", {"PulseTime1": {"Set": 0}}, set()),
    ],
)
def test_tasmota_answers_to_pulse_time_are_confirmations(
    topic: str, payload: dict[str, Any], confirmed: set[str]
) -> None:
    """The answer to a PulseTime command confirms it, on RESULT or its own topic; an error
    answer is a refusal; nothing else confirms anything."""
    assert parse(make("tasmota", channels=2), topic, payload).confirmed == confirmed


def test_tasmota_availability_is_its_last_will() -> None:
    """tele/T/LWT says Online or Offline; any other word says nothing."""
    preset = make("tasmota")
    assert parse(preset, "tele/hob/LWT", "Online") == Report(available=True)
    assert parse(preset, "tele/hob/LWT", "Offline") == Report(available=False)
    assert parse(preset, "tele/hob/LWT", "online") == NOTHING


# -- Zigbee2MQTT ----------------------------------------------------------------------


def test_zigbee2mqtt_writes_state_or_state_per_channel() -> None:
    """One channel writes ``state``; a two-channel relay writes ``state_l<n>``."""
    assert bodies(make("zigbee2mqtt").write(1, OFF)) == [
        ("zigbee2mqtt/hob_relay/set", {"state": "OFF"})]
    assert bodies(make("zigbee2mqtt", channels=2).write(2, ON)) == [
        ("zigbee2mqtt/hob_relay/set", {"state_l2": "ON"})]


def test_zigbee2mqtt_pulse_is_on_with_on_time_rounded_up() -> None:
    """A pulse is ON with on_time in whole seconds, rounded up."""
    assert bodies(make("zigbee2mqtt").pulse(1, ON, 2.1)) == [
        ("zigbee2mqtt/hob_relay/set", {"state": "ON", "on_time": 3})]


@pytest.mark.parametrize(
    ("fields", "state", "supported"),
    [({}, ON, True), ({}, OFF, False), ({"device_pulse": False}, ON, False),
     ({"channels": 2}, ON, False)],
)
def test_zigbee2mqtt_pulses_on_only_on_one_channel_relays(
    fields: dict[str, Any], state: RelayState, supported: bool
) -> None:
    """on_time only turns a one-channel relay off again: only ON pulses, with device_pulse."""
    preset = make("zigbee2mqtt", **fields)
    assert preset.pulse_supported(1, state) is supported
    assert preset.can_pulse is (fields == {})


def test_zigbee2mqtt_query_gets_the_channel_key() -> None:
    """A query publishes the channel's key, empty, on T/get."""
    assert bodies(make("zigbee2mqtt").query(1)) == [("zigbee2mqtt/hob_relay/get", {"state": ""})]
    assert bodies(make("zigbee2mqtt", channels=2).query(1)) == [
        ("zigbee2mqtt/hob_relay/get", {"state_l1": ""})]


@pytest.mark.parametrize(
    ("channels", "payload", "states"),
    [
        (1, {"state": "ON", "linkquality": 120}, {1: ON}),
        (1, {"linkquality": 120}, {}),
        (1, {"state": "on"}, {}),
        (1, {"state_l1": "ON"}, {}),
        (2, {"state_l1": "ON", "state_l2": "OFF"}, {1: ON, 2: OFF}),
        (2, {"state": "ON"}, {}),
        (1, "ON", {}),
    ],
)
def test_zigbee2mqtt_reads_state_json(
    channels: int, payload: str | dict[str, Any], states: dict[int, RelayState]
) -> None:
    """The device topic's JSON reports the channel keys; a message without them says nothing."""
    assert parse(make("zigbee2mqtt", channels=channels), "zigbee2mqtt/hob_relay", payload
                 ).states == states


@pytest.mark.parametrize(
    ("payload", "available"),
    [({"state": "online"}, True), ({"state": "offline"}, False), ("online", True),
     ("offline", False), ({"state": True}, None), ("Online", None)],
)
def test_zigbee2mqtt_availability_accepts_both_versions(
    payload: str | dict[str, Any], available: bool | None
) -> None:
    """Availability is 2.x JSON or 1.x plain words; anything else says nothing."""
    report = parse(make("zigbee2mqtt"), "zigbee2mqtt/hob_relay/availability", payload)
    assert report == Report(available=available)


@pytest.mark.parametrize(
    ("payload", "online", "available"),
    [
        (b"up", "up", True),
        (b"down", "up", False),
        (b'{"state": "down"}', "up", False),
        (b'{"state":"up"}', '{"state":"up"}', True),  # a word that is JSON itself, exactly
        (b"Up", "up", None),
        (b'"up"', "up", None),
        (b"\xff", "up", None),
        (b"{", "up", None),
    ],
)
def test_availability_words_are_exact_plain_or_a_json_state(
    payload: bytes, online: str, available: bool | None
) -> None:
    """The shared availability reader: the exact word, plain or as {"state": word}."""
    assert availability(payload, online, "down") is available


# -- Shelly ---------------------------------------------------------------------------


def test_shelly_source_is_under_the_base_topic() -> None:
    """The RPC source (and reply topic) is <base_topic>/shelly-<device id>."""
    assert rpc_source(BASE, "hob") == SRC
    assert f"{SRC}/rpc" in make("shelly").filters


def test_shelly_write_is_switch_set_with_a_fresh_id() -> None:
    """A write is Switch.Set for switch n - 1, and each request has a new id."""
    preset = make("shelly", channels=2)
    first, second = preset.write(2, ON), preset.write(1, OFF)
    assert bodies(first) == [("shelly/hob/rpc", {
        "id": first[0].request_id, "src": SRC, "method": "Switch.Set",
        "params": {"id": 1, "on": True}})]
    assert json.loads(second[0].payload)["params"] == {"id": 0, "on": False}
    assert first[0].request_id != second[0].request_id


@pytest.mark.parametrize("state", [ON, OFF])
def test_shelly_pulses_either_state_with_toggle_after(state: RelayState) -> None:
    """A pulse adds toggle_after in seconds, for either state."""
    preset = make("shelly")
    assert preset.pulse_supported(1, state)
    [command] = preset.pulse(1, state, 5)
    assert json.loads(command.payload)["params"] == {
        "id": 0, "on": state is ON, "toggle_after": 5.0}


def test_shelly_without_device_pulse_does_not_pulse() -> None:
    """device_pulse = false turns toggle_after off."""
    preset = make("shelly", device_pulse=False)
    assert not preset.can_pulse
    assert not preset.pulse_supported(1, ON)


def test_shelly_query_is_switch_get_status() -> None:
    """A query is Switch.GetStatus for switch n - 1."""
    [command] = make("shelly", channels=2).query(2)
    assert json.loads(command.payload) == {
        "id": command.request_id, "src": SRC, "method": "Switch.GetStatus",
        "params": {"id": 1}}


def test_shelly_reply_carries_result_or_error() -> None:
    """A reply is matched by id; an error carries its code and message."""
    preset = make("shelly")
    topic = f"{SRC}/rpc"
    assert parse(preset, topic, {"id": 7, "src": "dev", "dst": SRC, "result": {"was_on": True}}
                 ) == Report(reply=RpcReply(7))
    assert parse(preset, topic, {"id": 8, "src": "dev", "dst": SRC,
                                 "error": {"code": -103, "message": "busy"}}
                 ) == Report(reply=RpcReply(8, (-103, "busy")))
    assert parse(preset, topic, {"id": True, "result": {}}) == NOTHING
    assert parse(preset, topic, {"id": "7", "result": {}}) == NOTHING


def test_shelly_get_status_reply_reports_the_state() -> None:
    """A Switch.GetStatus result says the output of its switch."""
    preset = make("shelly", channels=2)
    report = parse(preset, f"{SRC}/rpc",
                   {"id": 3, "result": {"id": 1, "source": "MQTT", "output": False}})
    assert report == Report(states={2: OFF}, reply=RpcReply(3))


@pytest.mark.parametrize(
    ("topic", "payload", "states"),
    [
        ("shelly/hob/status/switch:0", {"id": 0, "source": "button", "output": True}, {1: ON}),
        ("shelly/hob/status/switch:1", {"id": 1, "output": False}, {2: OFF}),
        ("shelly/hob/status/switch:1", {"id": 0, "output": False}, {}),
        ("shelly/hob/status/switch:0", {"id": 0, "output": "true"}, {}),
        ("shelly/hob/status/switch:0", {"id": 0, "apower": 0}, {}),
        ("shelly/hob/events/rpc", {"src": "dev", "dst": "shelly/hob/events",
                                   "method": "NotifyStatus",
                                   "params": {"ts": 1.0, "switch:1": {"id": 1, "output": True}}},
         {2: ON}),
        ("shelly/hob/events/rpc", {"method": "NotifyStatus",
                                   "params": {"ts": 1.0, "switch:0": {"id": 0, "apower": 3}}},
         {}),
        ("shelly/hob/events/rpc", {"method": "NotifyEvent",
                                   "params": {"switch:0": {"id": 0, "output": True}}}, {}),
    ],
)
def test_shelly_reads_status_and_notifications(
    topic: str, payload: dict[str, Any], states: dict[int, RelayState]
) -> None:
    """Switch status and NotifyStatus say a state only when they carry its output."""
    assert parse(make("shelly", channels=2), topic, payload).states == states


def test_shelly_availability_is_online_true_or_false() -> None:
    """<prefix>/online says true or false."""
    preset = make("shelly")
    assert parse(preset, "shelly/hob/online", "true") == Report(available=True)
    assert parse(preset, "shelly/hob/online", "false") == Report(available=False)
    assert parse(preset, "shelly/hob/online", "1") == NOTHING


# -- ESPHome --------------------------------------------------------------------------


def test_esphome_writes_each_channels_switch() -> None:
    """Channel n writes to the command topic of the n-th switch object id."""
    assert make("esphome").write(1, OFF) == [Command("esphome/hob/switch/relay/command", "OFF")]
    assert make("esphome", channels=2).write(2, ON) == [
        Command("esphome/hob/switch/relay2/command", "ON")]
    assert make("esphome", channels=2, switches=["left", "right"]).write(1, ON) == [
        Command("esphome/hob/switch/left/command", "ON")]


def test_esphome_cannot_pulse_and_is_asked_by_subscribing_again() -> None:
    """ESPHome cannot pulse; its query re-subscribes its retained state topic."""
    preset = make("esphome")
    assert not preset.can_pulse
    assert not preset.pulse_supported(1, ON)
    assert preset.query(1) == [Command("esphome/hob/switch/relay/state", "", resubscribe=True)]


def test_esphome_reads_state_and_status() -> None:
    """The switch's state topic says ON/OFF; status says online/offline."""
    preset = make("esphome", channels=2, switches=["left", "right"])
    assert parse(preset, "esphome/hob/switch/right/state", "ON").states == {2: ON}
    assert parse(preset, "esphome/hob/switch/left/state", "OFF").states == {1: OFF}
    assert parse(preset, "esphome/hob/switch/left/state", "off") == NOTHING
    assert parse(preset, "esphome/hob/status", "offline") == Report(available=False)
    assert parse(preset, "esphome/hob/status", "online") == Report(available=True)


# -- generic --------------------------------------------------------------------------


def test_generic_writes_its_payloads_to_each_channels_topic() -> None:
    """{channel} in command_topic becomes the channel; the payload is payload_on/off."""
    preset = make("generic", channels=2, payload_on="1", payload_off="0")
    assert preset.write(2, ON) == [Command("relays/hob/2/set", "1")]
    assert preset.write(1, OFF) == [Command("relays/hob/1/set", "0")]
    assert not preset.can_pulse
    assert preset.query(1) == [Command("relays/hob/1/state", "", resubscribe=True)]


def test_generic_reads_plain_state_words() -> None:
    """A plain state payload compares, exactly, to state_on and state_off."""
    preset = make("generic", channels=2)
    assert parse(preset, "relays/hob/2/state", "ON").states == {2: ON}
    assert parse(preset, "relays/hob/1/state", "OFF").states == {1: OFF}
    assert parse(preset, "relays/hob/1/state", " OFF") == NOTHING
    assert parse(preset, "relays/hob/status", "offline") == Report(available=False)
    assert parse(preset, "relays/hob/status", "online") == Report(available=True)


def test_generic_reads_a_json_field_per_channel() -> None:
    """With state_field, the state is that JSON field, {channel} replaced."""
    preset = make("generic", channels=2, state_topic="relays/hob/state",
                  state_field="relay{channel}", state_on="true", state_off="false")
    assert parse(preset, "relays/hob/state", {"relay1": True, "relay2": "false"}).states == {
        1: ON, 2: OFF}
    assert parse(preset, "relays/hob/state", {"relay1": None, "relay2": [True]}) == NOTHING
    assert preset.filters == ["relays/hob/status", "relays/hob/state"]


def test_generic_without_state_topic_listens_to_availability_only() -> None:
    """A device with verify = false and no state topic subscribes to nothing else."""
    preset = make("generic", state_topic="", verify=False)
    assert preset.filters == ["relays/hob/status"]
    assert parse(preset, "relays/hob/1/state", "ON") == NOTHING


# -- every preset ---------------------------------------------------------------------


PRESET_CASES = [
    pytest.param(name, {"channels": 2}, id=name) for name in PRESET_NAMES
]


@pytest.mark.parametrize(("name", "fields"), PRESET_CASES)
def test_filters_put_availability_first(name: str, fields: dict[str, Any]) -> None:
    """The availability topic is subscribed first, so its retained word precedes states."""
    preset = make(name, **fields)
    first = preset.filters[0]
    assert any(parse(preset, first, word).available is not None
               for word in ("Online", "online", "true", {"state": "online"}))


@pytest.mark.parametrize(("name", "fields"), PRESET_CASES)
def test_commands_are_outside_the_subscriptions(name: str, fields: dict[str, Any]) -> None:
    """No command or query is on a subscribed topic, so stovectl never reads its own."""
    preset = make(name, **fields)
    commands = [*preset.write(1, ON), *preset.query(2)]
    for command in (c for c in commands if not c.resubscribe):
        assert not any(topic_matches_sub(f, command.topic) for f in preset.filters), command


def topics_of(name: str) -> list[str]:
    """Every topic a two-channel device of the preset reports on, and a stranger."""
    preset = make(name, channels=2)
    concrete = [f.replace("+", "POWER2") for f in preset.filters]
    return [*concrete, "stat/hob/RESULT", "unrelated/topic"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["ON", "OFF", "on", "online", "true", "Online", ""]) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
KEYS = ["POWER", "POWER1", "POWER2", "state", "state_l1", "state_l2", "id", "output",
        "result", "error", "method", "params", "switch:0", "switch:1"]


@pytest.mark.parametrize("name", PRESET_NAMES)
@given(payload=st.binary(max_size=64), index=st.integers(min_value=0))
def test_garbage_never_raises_or_invents_a_state(name: str, payload: bytes, index: int) -> None:
    """Random bytes on any topic never raise; a state only comes from an exact ON/OFF word."""
    topics = topics_of(name)
    report = make(name, channels=2).parse(Message(topics[index % len(topics)], payload))
    if report.states and payload not in (b"ON", b"OFF"):
        assert isinstance(json.loads(payload), dict), payload  # a state object, by chance
    elif report.states:
        assert set(report.states.values()) == {ON if payload == b"ON" else OFF}


@pytest.mark.parametrize("name", PRESET_NAMES)
@given(body=st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=5),
       index=st.integers(min_value=0))
def test_wrong_json_types_say_nothing(name: str, body: dict[str, Any], index: int) -> None:
    """JSON of any shape never raises; the states it yields all come from ON/OFF or booleans."""
    topics = topics_of(name)
    report = make(name, channels=2).parse(
        Message(topics[index % len(topics)], json.dumps(body).encode()))
    words = json.dumps(body)
    for state in report.states.values():
        assert (f'"{state.name}"' in words) or ("true" if state is ON else "false") in words
