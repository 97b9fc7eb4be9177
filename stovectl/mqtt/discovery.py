"""Home Assistant MQTT discovery: the entities a stove shows there, as retained configs.

Each burner gets a shut-off button, a lock (its unlock carries the code as the
PIN, with an issue time), a lock button (locking through the lock entity asks
for the code once one is set), a countdown number, sensors for the countdown
and the last shutoff, and binary sensors for the relay, the alarm and (with a
flame sensor) the flame; each relay device a connectivity sensor; each gas,
smoke and presence sensor a binary sensor of its class; the stove an all-off
button and, with gas or smoke sensors, the hazard latch. Every entity
reads its state from what the daemon publishes, so none is optimistic: Home
Assistant shows what the relay was seen to do, never what it was asked to do.

Pure: the caller publishes the messages retained, and an empty retained
payload on each of ``removal_topics`` to retire entities no longer configured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stovectl.mqtt.payloads import encode_json
from stovectl.mqtt.topics import Topics, discovery_config_topic
from stovectl.settings import BurnerSettings, SensorSettings, Settings

DEFAULT_PREFIX = "homeassistant"
ONLINE = "online"
OFFLINE = "offline"
COUNTDOWN_MAX_MINUTES = 24 * 60
"""The countdown number's range ends where a remote timer's does (24 hours)."""

LOCK_COMMAND_TEMPLATE = (
    "{% if value == 'LOCK' %}LOCK{% else %}"
    '{"action":"unlock","pin":{{ code | to_json }},"ts":{{ now().timestamp() | int }}}'
    "{% endif %}"
)
"""Home Assistant renders it with ``value`` = payload_lock or payload_unlock and the
entered ``code`` (null when none): a lock goes out as plain LOCK, an unlock as
JSON with the PIN and the issue time the policy needs to judge its age."""
LOCK_VALUE_TEMPLATE = (
    "{% if value_json.locked %}"
    "{% if value_json.relay == 'cut' %}LOCKED{% elif value_json.alarm %}JAMMED"
    "{% else %}LOCKING{% endif %}"
    "{% else %}UNLOCKED{% endif %}"
)
"""Locked only once the relay is seen cut (rule 2); jammed while a lock's cut fails."""
REMOTE_CODE_FORMAT = "^.+$"
"""Any non-empty code: the PIN's length and alphabet stay out of the retained config."""
TIMER_COMMAND_TEMPLATE = '{"action":"timer","seconds":{{ (value * 60) | int }}}'
COUNTDOWN_MINUTES_TEMPLATE = (
    "{% if value_json.countdown_remaining is none %}None{% else %}"
    "{{ (value_json.countdown_remaining / 60) | round(0, 'ceil') | int }}{% endif %}"
)
"""Whole minutes, rounded up; None (Home Assistant's "unknown") when no countdown runs."""
FLAME_TEMPLATE = (
    "{% if value_json.flame is none %}None"
    "{% elif value_json.flame %}ON{% else %}OFF{% endif %}"
)
"""ON, OFF, or None (Home Assistant's "unknown") while the flame sensor cannot tell."""
SENSOR_VALUE_TEMPLATE = (
    "{% if value_json.value is none %}None"
    "{% elif value_json.value %}ON{% else %}OFF{% endif %}"
)
"""ON, OFF, or None (Home Assistant's "unknown") while the sensor is offline or unheard."""
SENSOR_AVAILABILITY_TEMPLATE = "{{ 'offline' if value_json.available == false else 'online' }}"
"""Unavailable only once the sensor was seen to go away; unheard-of reads as unknown."""
SENSOR_DEVICE_CLASSES = {"gas": "gas", "smoke": "smoke", "presence": "occupancy"}
"""Home Assistant's binary sensor class per sensor kind; a flame shows on its burner."""


@dataclass(frozen=True)
class DiscoveryMessage:
    topic: str
    payload: dict[str, Any]
    """JSON-ready; ``encode_discovery`` makes the bytes."""


def encode_discovery(message: DiscoveryMessage) -> bytes:
    return encode_json(message.payload)


def removal_topics(previous: Iterable[str], current: Iterable[DiscoveryMessage]) -> list[str]:
    """Topics published before and not wanted now, in their first-seen order."""
    wanted = {message.topic for message in current}
    return list(dict.fromkeys(topic for topic in previous if topic not in wanted))


def build_discovery_messages(settings: Settings, *, version: str) -> list[DiscoveryMessage]:
    """Every entity config for this stove; none when MQTT or discovery is off."""
    if settings.mqtt is None or not settings.mqtt.discovery:
        return []
    builder = _Builder(settings, version)
    messages = [
        builder.entity(
            "button", "all_off", "All burners off",
            command_topic=builder.topics.all_set, payload_press="OFF", retain=False,
            icon="mdi:fire-off",
        )
    ]
    for burner in settings.burners:
        messages.extend(_burner_messages(builder, burner))
    for device in settings.devices:
        messages.append(builder.entity(
            "binary_sensor", f"device_{device.id}_online", f"Relay {device.id} connection",
            state_topic=builder.topics.device_availability(device.id),
            payload_on=ONLINE, payload_off=OFFLINE, device_class="connectivity",
            entity_category="diagnostic",
        ))
    messages.extend(_sensor_messages(builder, settings.sensors))
    return messages


def _sensor_messages(
    builder: _Builder, sensors: Iterable[SensorSettings]
) -> list[DiscoveryMessage]:
    """A binary sensor per gas, smoke and presence sensor, and the hazard latch.

    Each reads what the daemon republishes (``<base>/sensors/<id>/state``), so a
    sensor on MiOT shows like one on MQTT, and is available only while both the
    daemon and the sensor are.
    """
    messages = []
    hazard_sensors = False
    for sensor in sensors:
        device_class = SENSOR_DEVICE_CLASSES.get(sensor.kind)
        if device_class is None:
            continue
        hazard_sensors = hazard_sensors or sensor.is_hazard
        state_topic = builder.topics.sensor_state(sensor.id)
        messages.append(builder.entity(
            # Ends in its kind (gas, smoke, presence), which no burner entity ends in.
            "binary_sensor", f"sensor_{sensor.id}_{sensor.kind}", sensor.name,
            state_topic=state_topic, value_template=SENSOR_VALUE_TEMPLATE,
            payload_on="ON", payload_off="OFF", device_class=device_class,
            json_attributes_topic=state_topic,
            availability_extra={
                "topic": state_topic, "value_template": SENSOR_AVAILABILITY_TEMPLATE,
                "payload_available": ONLINE, "payload_not_available": OFFLINE,
            },
        ))
    if hazard_sensors:
        hazard = builder.topics.hazard
        messages.append(builder.entity(
            # Latched until a local unlock, though the gas or smoke may be gone.
            "binary_sensor", "hazard_latch", "Hazard lock", state_topic=hazard,
            value_template="{{ 'ON' if value_json.locked else 'OFF' }}",
            payload_on="ON", payload_off="OFF", device_class="safety",
            json_attributes_topic=hazard,
        ))
    return messages


def _burner_messages(builder: _Builder, burner: BurnerSettings) -> list[DiscoveryMessage]:
    topics = builder.topics
    set_topic = topics.burner_set(burner.id)
    state_topic = topics.burner_state(burner.id)
    name = burner.name

    def what(suffix: str) -> str:
        return f"{burner.id}_{suffix}"

    remote = builder.settings.remote
    unlock_offered = remote.allow_relax and remote.pin is not None
    lock: dict[str, Any] = {
        "command_topic": set_topic, "command_template": LOCK_COMMAND_TEMPLATE,
        "payload_lock": "LOCK", "payload_unlock": "UNLOCK",
        "state_topic": state_topic, "value_template": LOCK_VALUE_TEMPLATE,
        "state_locked": "LOCKED", "state_unlocked": "UNLOCKED",
        "state_locking": "LOCKING", "state_jammed": "JAMMED",
        "json_attributes_topic": state_topic, "optimistic": False, "retain": False,
    }
    if unlock_offered:
        lock["code_format"] = REMOTE_CODE_FORMAT
    return [
        builder.entity(
            "button", what("shutoff"), f"{name} shut off", command_topic=set_topic,
            payload_press="OFF", retain=False, icon="mdi:fire-off",
        ),
        builder.entity(
            "button", what("lock_button"), f"{name} lock now", command_topic=set_topic,
            payload_press="LOCK", retain=False, icon="mdi:lock",
        ),
        builder.entity("lock", what("lock"), f"{name} lock", **lock),
        builder.entity(
            "number", what("countdown"), f"{name} countdown", command_topic=set_topic,
            command_template=TIMER_COMMAND_TEMPLATE, state_topic=state_topic,
            value_template=COUNTDOWN_MINUTES_TEMPLATE, payload_reset="None",
            min=1, max=COUNTDOWN_MAX_MINUTES, step=1, mode="box",
            unit_of_measurement="min", optimistic=False, retain=False, icon="mdi:timer-outline",
        ),
        builder.entity(
            "sensor", what("remaining"), f"{name} countdown remaining", state_topic=state_topic,
            value_template="{{ value_json.countdown_remaining }}", device_class="duration",
            unit_of_measurement="s",
        ),
        builder.entity(
            "sensor", what("due"), f"{name} shuts off at", state_topic=state_topic,
            value_template="{{ value_json.countdown_due }}", device_class="timestamp",
        ),
        builder.entity(
            "sensor", what("last_cut"), f"{name} last shutoff", state_topic=state_topic,
            value_template="{{ value_json.last_shutoff }}", device_class="timestamp",
            json_attributes_topic=state_topic,
            json_attributes_template=(
                '{{ {"source": value_json.last_shutoff_source, '
                '"result": value_json.last_shutoff_result} | to_json }}'
            ),
        ),
        builder.entity(
            "binary_sensor", what("relay"), f"{name} gas cut", state_topic=state_topic,
            value_template=(
                "{% if value_json.relay == 'cut' %}ON"
                "{% elif value_json.relay == 'armed' %}OFF{% else %}None{% endif %}"
            ),
            payload_on="ON", payload_off="OFF", icon="mdi:pipe-valve",
        ),
        builder.entity(
            "binary_sensor", what("alarm"), f"{name} alarm", state_topic=state_topic,
            value_template="{{ 'ON' if value_json.alarm else 'OFF' }}",
            payload_on="ON", payload_off="OFF", device_class="problem",
        ),
        *_flame_messages(builder, burner),
    ]


def _flame_messages(builder: _Builder, burner: BurnerSettings) -> list[DiscoveryMessage]:
    """The burner's flame, as its sensor sees it; nothing for a burner without one."""
    if builder.settings.flame_sensor(burner.id) is None:
        return []
    return [builder.entity(
        "binary_sensor", f"{burner.id}_flame", f"{burner.name} flame",
        state_topic=builder.topics.burner_state(burner.id), value_template=FLAME_TEMPLATE,
        payload_on="ON", payload_off="OFF", device_class="running", icon="mdi:fire",
    )]


def _device_id(stove_id: str) -> str:
    return f"stovectl_{stove_id}"


class _Builder:
    """The parts every entity config shares: device, origin, availability, ids, QoS."""

    def __init__(self, settings: Settings, version: str) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        mqtt = settings.mqtt
        self.prefix = mqtt.discovery_prefix if mqtt is not None else DEFAULT_PREFIX
        self.stove_id = settings.stove.id
        self.device = {
            "identifiers": [_device_id(settings.stove.id)],
            "name": settings.stove.name,
            "model": "stovectl",
            "manufacturer": "stovectl",
            "sw_version": version,
        }
        self.origin = {"name": "stovectl", "sw_version": version}
        self.availability = [{
            "topic": self.topics.status,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
        }]

    def entity(
        self,
        component: str,
        what: str,
        name: str,
        availability_extra: dict[str, str] | None = None,
        **config: Any,
    ) -> DiscoveryMessage:
        """One entity's config; ``availability_extra`` is a second condition (all must hold)."""
        object_id = f"{_device_id(self.stove_id)}_{what}"
        availability = [dict(entry) for entry in self.availability]
        if availability_extra is not None:
            availability.append(dict(availability_extra))
            config["availability_mode"] = "all"
        payload: dict[str, Any] = {
            "name": name,
            "unique_id": object_id,
            # Home Assistant entity ids allow no '-'; unique ids and topics keep it.
            "default_entity_id": f"{component}.{object_id.replace('-', '_')}",
            **config,
            # Copies: a caller that edits one payload must not edit them all.
            "device": dict(self.device),
            "origin": dict(self.origin),
            "availability": availability,
            "qos": 1,
        }
        return DiscoveryMessage(
            discovery_config_topic(self.prefix, component, object_id), payload
        )
