"""Home Assistant discovery: complete configs, unique ids, no optimism, and templates that work."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jinja2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stovectl.mqtt.commands import age_of, parse_command
from stovectl.mqtt.discovery import (
    DiscoveryMessage,
    build_discovery_messages,
    encode_discovery,
    removal_topics,
)
from stovectl.mqtt.payloads import hazard_payload, sensor_payload, state_payload
from stovectl.settings import Settings, settings_from_mapping
from stovectl.settings.types import ID_PATTERN, RESERVED_BURNER_IDS
from tests.mqtt.test_payloads import (
    SENSOR_KEYS,
    STATE_KEYS,
    sensor_row,
    shutoff_event,
    status_row,
)
from tests.support.kitchen import kitchen_config

VERSION = "1.2.3"
PIN = "2468"
NOW = 1_750_000_000.0
REQUIRED = {
    "button": {"command_topic"},
    "lock": {"command_topic", "state_topic"},
    "number": {"command_topic", "state_topic"},
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
}
TOPIC = re.compile(r"^homeassistant/(?P<component>[a-z_]+)/(?P<object_id>[a-zA-Z0-9_-]+)/config$")
VALUE_JSON_KEY = re.compile(r"value_json\.(\w+)")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the host's STOVECTL_… variables and credentials out of the settings built here."""
    for name in list(os.environ):
        if name.upper().startswith("STOVECTL_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def kitchen(**sections: Any) -> Settings:
    """The two-burner test kitchen with MQTT on, and ``sections`` replaced."""
    sections.setdefault("mqtt", {})
    return settings_from_mapping(kitchen_config(**sections))


def sensor(sensor_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    """An MQTT sensor of ``kind`` for the config's [[sensors]]."""
    return {"id": sensor_id, "kind": kind, "source": "mqtt", "topic": f"test/{sensor_id}",
            **fields}


SENSORS = [
    sensor("hall_gas", "gas", name="Hall gas"), sensor("smoke", "smoke"),
    sensor("motion", "presence"), sensor("left_flame", "flame", burner="left"),
]
"""Every kind: gas, smoke, presence, and a flame under the left burner only."""


def messages(**sections: Any) -> list[DiscoveryMessage]:
    return build_discovery_messages(kitchen(**sections), version=VERSION)


def component_of(message: DiscoveryMessage) -> str:
    match = TOPIC.match(message.topic)
    assert match, message.topic
    return match["component"]


def by_id(found: list[DiscoveryMessage]) -> dict[str, dict[str, Any]]:
    return {message.payload["unique_id"]: message.payload for message in found}


# -- shape --------------------------------------------------------------------------------


def test_every_config_has_what_its_component_requires() -> None:
    """Each entity has its component's required topics, a name and QoS 1."""
    for message in messages():
        assert REQUIRED[component_of(message)] <= set(message.payload), message.topic
        assert message.payload["name"] and message.payload["qos"] == 1


def test_topics_are_prefix_component_object_id_config() -> None:
    """Every topic is <prefix>/<component>/<unique id>/config, and unique ids are unique."""
    found = messages()
    ids = [message.payload["unique_id"] for message in found]

    assert len(ids) == len(set(ids))
    for message in found:
        match = TOPIC.match(message.topic)
        assert match, message.topic
        assert match["object_id"] == message.payload["unique_id"]
        assert message.payload["unique_id"].startswith("stovectl_kitchen_")
        assert message.payload["default_entity_id"] == (
            f"{match['component']}.{match['object_id'].replace('-', '_')}"
        )


def test_every_config_names_device_origin_and_availability() -> None:
    """Device, origin and the daemon's availability topic are in every config."""
    for message in messages(stove={"id": "kitchen", "name": "Kitchen hob"}):
        payload = message.payload
        assert payload["device"] == {
            "identifiers": ["stovectl_kitchen"], "name": "Kitchen hob", "model": "stovectl",
            "manufacturer": "stovectl", "sw_version": VERSION,
        }
        assert payload["origin"]["name"] == "stovectl"
        assert payload["origin"]["sw_version"] == VERSION
        assert payload["availability"] == [{
            "topic": "stovectl/kitchen/status", "payload_available": "online",
            "payload_not_available": "offline",
        }]


def test_no_entity_is_optimistic_and_no_command_is_retained() -> None:
    """Locks, switches and numbers read their state back; nothing sends a retained command."""
    for message in messages():
        payload = message.payload
        if component_of(message) in ("lock", "switch", "number"):
            assert payload.get("state_topic"), message.topic
            assert payload.get("optimistic") is not True
        if "command_topic" in payload:
            assert payload.get("retain") is not True
            assert payload["command_topic"].endswith("/set")


def test_each_burner_has_its_entities_and_the_stove_an_all_off_button() -> None:
    """Per burner: shut off, lock now, lock, countdown, three sensors, two binary sensors."""
    found = by_id(messages())
    burner = {"shutoff", "lock_button", "lock", "countdown", "remaining", "due", "last_cut",
              "relay", "alarm"}

    assert set(found) == {
        *(f"stovectl_kitchen_{b}_{what}" for b in ("left", "right") for what in burner),
        "stovectl_kitchen_all_off", "stovectl_kitchen_device_sim_online",
    }
    assert found["stovectl_kitchen_all_off"]["command_topic"] == "stovectl/kitchen/all/set"
    assert found["stovectl_kitchen_left_shutoff"]["payload_press"] == "OFF"
    assert found["stovectl_kitchen_left_lock_button"]["payload_press"] == "LOCK"
    assert found["stovectl_kitchen_left_alarm"]["device_class"] == "problem"
    assert found["stovectl_kitchen_left_relay"].get("device_class") != "problem"


def test_each_relay_device_has_a_connectivity_sensor() -> None:
    """Every relay device reports its connection from its availability topic."""
    found = by_id(messages(**kitchen_config(two_devices=True)))
    front = found["stovectl_kitchen_device_front_online"]

    assert front["device_class"] == "connectivity"
    assert front["state_topic"] == "stovectl/kitchen/devices/front/availability"
    assert (front["payload_on"], front["payload_off"]) == ("online", "offline")
    assert "stovectl_kitchen_device_back_online" in found


def test_the_prefix_and_base_topic_follow_the_config() -> None:
    """A custom discovery prefix and base topic are used throughout."""
    found = messages(mqtt={"discovery_prefix": "ha", "base_topic": "home/hob"})

    assert all(message.topic.startswith("ha/") for message in found)
    assert by_id(found)["stovectl_kitchen_left_lock"]["state_topic"] == "home/hob/left/state"


def test_no_discovery_without_mqtt_or_when_switched_off() -> None:
    """With no [mqtt] section, or discovery = false, there is nothing to announce."""
    without = settings_from_mapping(kitchen_config())

    assert build_discovery_messages(without, version=VERSION) == []
    assert messages(mqtt={"discovery": False}) == []


def test_encoding_is_compact_json_of_the_payload() -> None:
    """The encoded config is compact UTF-8 JSON of the payload."""
    message = messages(stove={"id": "kitchen", "name": "厨房"})[0]
    encoded = encode_discovery(message)

    assert json.loads(encoded) == message.payload
    assert "厨房".encode() in encoded and b'": ' not in encoded


# -- unlock and the PIN -------------------------------------------------------------------


def test_unlock_asks_for_a_code_only_when_remote_unlock_is_possible() -> None:
    """The lock asks for a code only when allow_relax is on and a PIN is configured."""

    def code_format(**remote: Any) -> Any:
        return by_id(messages(remote=remote))["stovectl_kitchen_left_lock"].get("code_format")

    assert code_format(allow_relax=True, pin=PIN) is not None
    assert code_format(allow_relax=True) is None
    assert code_format(allow_relax=False, pin=PIN) is None
    assert code_format() is None


def test_the_pin_is_never_published() -> None:
    """Nothing in any config reveals the PIN."""
    for message in messages(remote={"allow_relax": True, "pin": "864209"}):
        assert b"864209" not in encode_discovery(message)


# -- values read from the state ------------------------------------------------------------


def test_templates_read_only_keys_the_state_has() -> None:
    """Every value_json key a template reads is a key of the message on the topic it reads."""
    hazard_keys = set(json.loads(hazard_payload([], [])))
    keys_of = {"state": STATE_KEYS, "hazard": hazard_keys}
    read = 0
    for message in messages(sensors=SENSORS):
        payload = message.payload
        templates = [(payload.get("state_topic", ""), payload.get(key, ""))
                     for key in ("value_template", "json_attributes_template")]
        templates += [(entry["topic"], entry.get("value_template", ""))
                      for entry in payload["availability"]]
        for topic, template in templates:
            keys = SENSOR_KEYS if "/sensors/" in topic else keys_of.get(topic.split("/")[-1])
            for name in VALUE_JSON_KEY.findall(template):
                assert keys is not None and name in keys, (message.topic, topic, name)
                read += 1
    assert read > 20


def test_timestamp_sensors_read_values_with_an_offset() -> None:
    """Each timestamp sensor reads a state value that is ISO 8601 with a UTC offset."""
    countdown = {"due": NOW + 600, "remaining": 600.0, "source": "mqtt"}
    state = json.loads(state_payload(
        status_row(countdown=countdown), shutoff_event(), timezone(timedelta(hours=-5))
    ))
    timestamps = [m.payload for m in messages() if m.payload.get("device_class") == "timestamp"]

    assert len(timestamps) == 4
    for payload in timestamps:
        [key] = VALUE_JSON_KEY.findall(payload["value_template"])
        assert datetime.fromisoformat(state[key]).utcoffset() == timedelta(hours=-5)


# -- removal ------------------------------------------------------------------------------


def test_removal_finds_the_topics_of_a_removed_burner() -> None:
    """Dropping a burner from the config retires exactly its entities."""
    before = messages()
    one = kitchen_config(mqtt={})
    one["burners"] = one["burners"][:1]
    after = build_discovery_messages(settings_from_mapping(one), version=VERSION)

    removed = removal_topics([m.topic for m in before], after)

    assert removed
    assert all("_right_" in topic for topic in removed)
    assert len(removed) == len(before) - len(after)
    assert removal_topics([m.topic for m in after], after) == []


def test_switching_discovery_off_retires_everything_once() -> None:
    """With discovery off, every topic published before is retired, each once, in order."""
    topics = [m.topic for m in messages()]

    assert removal_topics(topics + topics[:3], []) == topics


# Ids built from the words entity ids are made of are the ones most likely to clash.
WORDS = ["left", "lock", "button", "last", "cut", "shutoff", "device", "online", "hazard",
         "sensor", "all", "off", "sim", "due", "relay", "alarm", "countdown", "remaining",
         "flame", "latch", "gas", "smoke", "presence"]
ids = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map("_".join) | st.from_regex(
    ID_PATTERN, fullmatch=True
)


@settings(max_examples=200, deadline=None)
@given(ids, st.lists(st.sampled_from(WORDS), max_size=3), st.sets(ids, min_size=1, max_size=2),
       st.sets(ids, min_size=3, max_size=3))
def test_unique_ids_stay_unique_for_any_ids(
    base: str, words: list[str], device_ids: set[str], sensor_ids: set[str]
) -> None:
    """Whatever the burner, device and sensor ids (left, left_lock...), no two entities clash."""
    burner_ids = {base, *(f"{base}_{word}" for word in words)} - RESERVED_BURNER_IDS
    burner_ids = {burner for burner in burner_ids if len(burner) <= 32}
    if not burner_ids:
        return
    devices = sorted(device_ids)
    config = kitchen_config(
        mqtt={}, devices=[{"kind": "simulated", "id": d, "channels": 4} for d in devices]
    )
    config["burners"] = [
        {"id": b, "device": devices[0], "channel": n + 1} for n, b in enumerate(burner_ids)
    ]
    flames = [sensor(f"flame-{n}", "flame", burner=b) for n, b in enumerate(burner_ids)]
    assume(not sensor_ids & {flame["id"] for flame in flames})
    config["sensors"] = flames + [
        sensor(sensor_id, kind)
        for sensor_id, kind in zip(sorted(sensor_ids), ("gas", "smoke", "presence"), strict=True)
    ]
    found = build_discovery_messages(settings_from_mapping(config), version=VERSION)
    unique = [message.payload["unique_id"] for message in found]

    assert len(unique) == len(set(unique))
    assert sum(m.payload.get("device_class") == "running" for m in found) == len(burner_ids)


# -- flame, sensors and the hazard latch ------------------------------------------------------


def test_without_sensors_there_are_no_sensor_entities() -> None:
    """A kitchen without sensors shows no flame, gas, smoke, presence or hazard entity."""
    classes = {m.payload.get("device_class") for m in messages()}

    assert not classes & {"running", "gas", "smoke", "occupancy", "safety"}


def test_each_sensor_is_a_binary_sensor_of_its_class() -> None:
    """Gas, smoke and presence sensors get gas, smoke and occupancy binary sensors that read
    the daemon's sensor state; the flame shows on its burner only; the latch on the stove."""
    found = by_id(messages(sensors=SENSORS))
    gas = found["stovectl_kitchen_sensor_hall_gas_gas"]

    assert (gas["device_class"], gas["name"]) == ("gas", "Hall gas")
    assert gas["state_topic"] == "stovectl/kitchen/sensors/hall_gas/state"
    assert found["stovectl_kitchen_sensor_smoke_smoke"]["device_class"] == "smoke"
    assert found["stovectl_kitchen_sensor_motion_presence"]["device_class"] == "occupancy"
    flame = found["stovectl_kitchen_left_flame"]
    assert flame["device_class"] == "running"
    assert flame["state_topic"] == "stovectl/kitchen/left/state"
    assert "stovectl_kitchen_right_flame" not in found
    assert not [uid for uid in found if uid.endswith("_flame_flame")]
    latch = found["stovectl_kitchen_hazard_latch"]
    assert (latch["device_class"], latch["state_topic"]) == ("safety", "stovectl/kitchen/hazard")


def test_the_hazard_latch_needs_a_gas_or_smoke_sensor() -> None:
    """With only presence and flame sensors there is nothing that could latch, so no latch."""
    found = by_id(messages(sensors=[sensor("motion", "presence"),
                                    sensor("left_flame", "flame", burner="left")]))

    assert "stovectl_kitchen_hazard_latch" not in found
    assert "stovectl_kitchen_sensor_motion_presence" in found


def test_a_sensor_entity_is_available_only_with_the_daemon_and_the_sensor() -> None:
    """Sensor entities need both the daemon's status and the sensor's own availability."""
    gas = by_id(messages(sensors=SENSORS))["stovectl_kitchen_sensor_hall_gas_gas"]

    assert gas["availability_mode"] == "all"
    assert [entry["topic"] for entry in gas["availability"]] == [
        "stovectl/kitchen/status", "stovectl/kitchen/sensors/hall_gas/state"]


def test_removing_a_sensor_retires_its_entity() -> None:
    """Dropping the gas sensor retires its binary sensor and nothing else."""
    before = messages(sensors=SENSORS)
    after = messages(sensors=[s for s in SENSORS if s["id"] != "hall_gas"])

    assert removal_topics([m.topic for m in before], after) == [
        "homeassistant/binary_sensor/stovectl_kitchen_sensor_hall_gas_gas/config"]


# -- the templates, rendered as Home Assistant renders them --------------------------------


@pytest.fixture
def render() -> Callable[..., str]:
    """Render a template with Jinja2 plus the parts of Home Assistant's dialect used here."""
    environment = jinja2.Environment(autoescape=False)  # JSON and words, not HTML
    environment.filters["to_json"] = json.dumps
    environment.globals["now"] = lambda: datetime.fromtimestamp(NOW, UTC)

    def rendered(template: str, **variables: Any) -> str:
        return str(environment.from_string(template).render(**variables))

    return rendered


def entity(what: str, **remote: Any) -> dict[str, Any]:
    return by_id(messages(remote=remote or {"allow_relax": True, "pin": PIN}))[
        f"stovectl_kitchen_left_{what}"
    ]


def test_home_assistant_lock_sends_plain_lock(render: Callable[..., str]) -> None:
    """Locking from Home Assistant sends LOCK, whatever code was typed."""
    lock = entity("lock")
    payload = render(lock["command_template"], value=lock["payload_lock"], code="9999")

    command = parse_command("left", payload.encode())
    assert command.action == "lock" and not command.is_relaxing


@pytest.mark.parametrize("code", [PIN, 'a"b\\c', "鍵"])
def test_home_assistant_unlock_sends_the_code_and_issue_time(
    render: Callable[..., str], code: str
) -> None:
    """Unlocking sends JSON with the typed code as the PIN and the issue time, so age is known."""
    lock = entity("lock")
    payload = render(lock["command_template"], value=lock["payload_unlock"], code=code)

    command = parse_command("left", payload.encode())
    assert (command.action, command.pin, command.issued_at) == ("unlock", code, NOW)
    assert age_of(command, None, NOW + 1) == (NOW, True)


def test_home_assistant_unlock_without_a_code_sends_no_pin(render: Callable[..., str]) -> None:
    """With no code asked for, an unlock still parses, without a PIN, for the policy to refuse."""
    lock = entity("lock", allow_relax=False)
    payload = render(lock["command_template"], value=lock["payload_unlock"], code=None)

    command = parse_command("left", payload.encode())
    assert (command.action, command.pin) == ("unlock", None)


@pytest.mark.parametrize(("minutes", "seconds"), [(15.0, 900.0), (1.5, 90.0), (1440.0, 86400.0)])
def test_the_countdown_number_sends_a_timer(
    render: Callable[..., str], minutes: float, seconds: float
) -> None:
    """Setting the countdown number to N minutes sends a timer of N * 60 seconds, not extending."""
    number = entity("countdown")
    command = parse_command("left", render(number["command_template"], value=minutes).encode())

    assert (command.action, command.seconds, command.is_relaxing) == ("timer", seconds, False)


def test_buttons_send_cuts() -> None:
    """Every button's press payload parses into a cut."""
    for message in messages():
        if "payload_press" in message.payload:
            command = parse_command("all", message.payload["payload_press"].encode())
            assert command.action in ("off", "lock")


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"mode": "locked", "relay": "cut"}, "LOCKED"),
        ({"mode": "locked", "relay": "armed", "alarm": True}, "JAMMED"),
        ({"mode": "locked", "relay": "unknown"}, "LOCKING"),
        ({"mode": "armed", "relay": "armed"}, "UNLOCKED"),
        ({"mode": "pulse", "relay": "cut"}, "UNLOCKED"),
    ],
)
def test_the_lock_shows_locked_only_once_the_relay_is_seen_cut(
    render: Callable[..., str], changes: dict[str, Any], shown: str
) -> None:
    """The lock reads LOCKED only with the relay seen cut; a failing lock shows as jammed."""
    lock = entity("lock")
    state = json.loads(state_payload(status_row(**changes), None, UTC))

    assert render(lock["value_template"], value_json=state) == shown
    assert shown in (lock["state_locked"], lock["state_unlocked"], lock["state_jammed"],
                     lock["state_locking"])


def test_state_templates_render_known_and_unknown_values(render: Callable[..., str]) -> None:
    """Sensors render the state's values, and "None" (unknown) where it has none."""
    countdown = {"due": NOW + 599, "remaining": 599.0, "source": "mqtt"}
    running = json.loads(state_payload(
        status_row(countdown=countdown, relay="cut", alarm=True), shutoff_event(), UTC))
    idle = json.loads(state_payload(status_row(relay="unknown"), None, UTC))

    def shown(what: str, state: dict[str, Any]) -> str:
        return render(entity(what)["value_template"], value_json=state)

    assert (shown("countdown", running), shown("countdown", idle)) == ("10", "None")
    assert (shown("remaining", running), shown("remaining", idle)) == ("599", "None")
    assert shown("due", running) == "2025-06-15T15:16:39+00:00"
    assert (shown("due", idle), shown("last_cut", idle)) == ("None", "None")
    assert (shown("relay", running), shown("relay", idle)) == ("ON", "None")
    assert (shown("alarm", running), shown("alarm", idle)) == ("ON", "OFF")
    attributes = render(entity("last_cut")["json_attributes_template"], value_json=running)
    assert json.loads(attributes) == {"source": "timer", "result": "verified"}


def sensor_entity(what: str) -> dict[str, Any]:
    return by_id(messages(sensors=SENSORS))[f"stovectl_kitchen_{what}"]


@pytest.mark.parametrize(("value", "shown"), [(True, "ON"), (False, "OFF"), (None, "None")])
def test_sensor_and_flame_templates_show_unknown_as_unknown(
    render: Callable[..., str], value: bool | None, shown: str
) -> None:
    """A sensor's value and a burner's flame render ON, OFF, or None (unknown) when null."""
    sensor_state = json.loads(sensor_payload(sensor_row(value=value), UTC))
    burner_state = json.loads(state_payload(
        status_row(flame=value, flame_sensor="left_flame"), None, UTC))
    gas = sensor_entity("sensor_hall_gas_gas")
    flame = sensor_entity("left_flame")

    assert render(gas["value_template"], value_json=sensor_state) == shown
    assert render(flame["value_template"], value_json=burner_state) == shown
    assert shown in (gas["payload_on"], gas["payload_off"], "None")


@pytest.mark.parametrize(
    ("available", "shown"), [(True, "online"), (False, "offline"), (None, "online")])
def test_a_sensor_is_unavailable_only_once_seen_offline(
    render: Callable[..., str], available: bool | None, shown: str
) -> None:
    """The sensor's availability template says offline only for available = false."""
    state = json.loads(sensor_payload(sensor_row(available=available), UTC))
    [_, own] = sensor_entity("sensor_smoke_smoke")["availability"]

    assert render(own["value_template"], value_json=state) == shown
    assert shown in (own["payload_available"], own["payload_not_available"])


@pytest.mark.parametrize(("lock_reason", "shown"), [("hazard", "ON"), ("child", "OFF")])
def test_the_hazard_latch_is_on_while_a_hazard_lock_holds(
    render: Callable[..., str], lock_reason: str, shown: str
) -> None:
    """The latch reads ON while a burner is locked for a hazard, OFF for any other lock."""
    state = json.loads(hazard_payload(
        [status_row(mode="locked", lock_reason=lock_reason)], [sensor_row()]))

    assert render(sensor_entity("hazard_latch")["value_template"], value_json=state) == shown
