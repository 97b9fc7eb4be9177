"""Sensors that publish on MQTT (Zigbee2MQTT, ESPHome, Tasmota, Shelly, a probe of one's own).

Each sensor's topic is subscribed once on the daemon's broker connection,
however many sensors read it: a Zigbee2MQTT multi-sensor publishes occupancy
and smoke in one JSON object, and each configured field is one sensor. What
arrives is read by ``readings`` and handed to the core's ``SensorInput``; the
connection already calls us on the event loop.

A sensor is only as available as the path to it. Its availability topic is
read as the relays read theirs (``mqtt_presets.availability``: the configured
words, Shelly's ``true``/``false``, Zigbee2MQTT 2.x's ``{"state": ...}``). A
sensor without one is available once it speaks. When the broker connection
drops, every MQTT sensor is unavailable (its reading would be stale) until it
is heard again; subscribing again on reconnect brings retained messages anew.

A payload that cannot be read is logged once per sensor, until the sensor reads
again, and changes nothing: the last reading stands. An empty payload (a
retained message being cleared) says nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from stovectl.core.sensing import SensorInput
from stovectl.devices.mqtt_presets import availability
from stovectl.errors import shown
from stovectl.mqtt.connection import Message, MqttConnection
from stovectl.sensors.readings import interpret_payload
from stovectl.settings import MqttSensorSettings

log = logging.getLogger(__name__)

SHELLY_WORDS = ("true", "false")
"""Availability words every sensor also understands, beside its configured ones."""


@dataclass
class _Sensor:
    settings: MqttSensorSettings
    reading: bool | None = None
    available: bool | None = None
    """What the target was last told."""
    device_says: bool | None = None
    """What the availability topic last said since the broker connection came up."""
    unreadable: bool = False
    """A bad payload was logged; the next good reading says it reads again."""
    odd_availability: bool = False


class MqttSensors:
    """The configured MQTT sensors, read from the daemon's broker connection."""

    def __init__(
        self,
        sensors: Sequence[MqttSensorSettings],
        connection: MqttConnection,
        target: SensorInput,
    ) -> None:
        self._sensors = [_Sensor(settings) for settings in sensors]
        self._connection = connection
        self._target = target
        self._attached = False
        self._closed = False

    def attach(self) -> None:
        """Subscribe and listen; call before the connection starts, so nothing is missed."""
        if self._attached:
            return
        self._attached = True
        # Availability first, so its retained word arrives before retained readings.
        for topic, sensors in _by_topic(self._sensors, availability_topics=True).items():
            self._connection.subscribe(topic, partial(self._on_availability, sensors))
        for topic, sensors in _by_topic(self._sensors, availability_topics=False).items():
            self._connection.subscribe(topic, partial(self._on_state, sensors))
        self._connection.on_disconnect(self._on_disconnect)

    async def close(self) -> None:
        """Stop listening: the connection cannot unsubscribe, so messages are ignored."""
        self._closed = True

    # -- on the loop, from the connection ---------------------------------------------

    def _on_state(self, sensors: list[_Sensor], message: Message) -> None:
        if self._closed or not message.payload:
            return
        for sensor in sensors:
            self._read(sensor, message.payload)

    def _read(self, sensor: _Sensor, payload: bytes) -> None:
        settings = sensor.settings
        try:
            reading = interpret_payload(settings, payload, settings.field, sensor.reading)
        except ValueError as error:
            if not sensor.unreadable:
                sensor.unreadable = True
                log.warning("%s; its last reading stands (said once until it reads again)",
                            error)
            return
        if sensor.unreadable:
            sensor.unreadable = False
            log.info("sensor %s reads again", settings.id)
        if sensor.available is not True and sensor.device_says is not False:
            self._tell_available(sensor, True)  # it speaks, so it is there
        if reading is None:
            return  # inside the hysteresis band, with nothing to keep
        sensor.reading = reading
        self._target.sensor_reading(settings.id, reading)

    def _on_availability(self, sensors: list[_Sensor], message: Message) -> None:
        if self._closed:
            return
        for sensor in sensors:
            said = _availability(sensor.settings, message.payload)
            if said is None:
                if not sensor.odd_availability:
                    sensor.odd_availability = True
                    log.warning(
                        "sensor %s: %s said %s, neither %r nor %r; ignored (said once)",
                        sensor.settings.id, message.topic, shown(message.payload),
                        sensor.settings.payload_available,
                        sensor.settings.payload_not_available,
                    )
                continue
            sensor.device_says = said
            if said is not sensor.available:
                self._tell_available(sensor, said)

    def _on_disconnect(self) -> None:
        if self._closed:
            return
        for sensor in self._sensors:
            sensor.device_says = None  # what it said may have changed while we were away
            if sensor.available is not False:
                self._tell_available(sensor, False)

    def _tell_available(self, sensor: _Sensor, available: bool) -> None:
        sensor.available = available
        self._target.sensor_available(sensor.settings.id, available)


def _availability(settings: MqttSensorSettings, payload: bytes) -> bool | None:
    said = availability(payload, settings.payload_available, settings.payload_not_available)
    return said if said is not None else availability(payload, *SHELLY_WORDS)


def _by_topic(sensors: list[_Sensor], *, availability_topics: bool) -> dict[str, list[_Sensor]]:
    """The sensors reading each state (or availability) topic, in config order."""
    found: dict[str, list[_Sensor]] = {}
    for sensor in sensors:
        settings = sensor.settings
        topic = settings.availability_topic if availability_topics else settings.topic
        if topic:
            found.setdefault(topic, []).append(sensor)
    return found
