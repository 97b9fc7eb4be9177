"""A sensor on a real broker, publishing as real ones do, for ``stovectl simulate`` and tests.

The daemon's MQTT sensors read it exactly as they read a Zigbee2MQTT detector
or an ESPHome probe: it holds its own broker connection, with a retained last
will ``payload_not_available`` on its availability topic (``payload_available``
on each connect), and publishes its readings on its topic:

* a flame probe (``on_above`` set) publishes its burner's thermocouple
  temperature from the simulated stove, ``123.4`` or ``{"<field>": 123.4}``,
  every ``interval`` and at once when the flame changes;
* a flame sensor without ``on_above`` publishes ``payload_on``/``payload_off``
  (JSON ``true``/``false`` in its field) when the flame changes;
* presence, gas and smoke publish what ``set`` says, the same way.

Sensors that share a topic are one device (a Zigbee2MQTT multi-sensor): every
message is one JSON object with all their fields, as Zigbee2MQTT sends it.

Readings are published retained, as ESPHome does by default and Zigbee2MQTT
does with ``retain: true``: a daemon that starts, or reconnects, while gas is
detected learns it at once instead of at the detector's next change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from functools import partial

from stovectl.mqtt.connection import MqttConnection, MqttError
from stovectl.mqtt.options import ConnectionOptions
from stovectl.settings import MqttSensorSettings
from stovectl.sim.sensors import TICK_SECONDS, FlameWatch
from stovectl.sim.stove import BurnerSnapshot, Stove

INTERVAL_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 5.0
DROP_TIMEOUT_SECONDS = 5.0


class SimulatedMqttSensor:
    """One sensor device: the sensors of ``sensors``, all publishing on one topic."""

    def __init__(
        self,
        sensors: Sequence[MqttSensorSettings],
        options: ConnectionOptions,
        stove: Stove | None = None,
        *,
        interval: float = INTERVAL_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self.sensors = {sensor.id: sensor for sensor in sensors}
        _check_one_device(list(self.sensors.values()))
        first = sensors[0]
        self.topic = first.topic
        self.availability_topic = next((s.availability_topic for s in sensors
                                        if s.availability_topic), "")
        self.options = dataclasses.replace(
            options,
            will_topic=self.availability_topic or None,
            will_payloads=(first.payload_available, first.payload_not_available),
            clean_start=True,
            session_expiry_seconds=0,
        )
        self.interval = interval
        self.connect_timeout = connect_timeout
        self._values = {s.id: False for s in sensors if s.kind != "flame"}
        self._watches: dict[str, FlameWatch] = {}
        for sensor in sensors:
            if sensor.burner is None:
                continue
            if stove is None or sensor.burner not in stove.burner_ids:
                raise ValueError(f"sensor {sensor.id!r}: burner {sensor.burner!r} is not on "
                                 "the simulated stove")
            self._watches[sensor.id] = FlameWatch(stove, sensor.burner, tick_seconds)
        self._flames = {sid: watch.snapshot().flame for sid, watch in self._watches.items()}
        self._probes = any(self.sensors[sid].on_above is not None for sid in self._watches)
        self._connection: MqttConnection | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def is_online(self) -> bool:
        return self._connection is not None and self._connection.is_connected

    # Life.

    async def start(self) -> None:
        """Connect, say available, publish; MqttError if the broker does not accept it."""
        for sensor_id, watch in self._watches.items():
            watch.listen(partial(self._saw, sensor_id))
            watch.start()
        await self._connect()
        if self._probes:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._periodic)

    async def close(self) -> None:
        """Say not available (retained) and disconnect; safe to call twice."""
        self._closed = True
        for watch in self._watches.values():
            watch.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def go_offline(self) -> None:
        """Lose the connection without a DISCONNECT: the broker publishes the last will."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.abort(DROP_TIMEOUT_SECONDS)

    async def come_online(self) -> None:
        """Connect again after ``go_offline``: available, then the readings."""
        if self._closed:
            raise RuntimeError(f"sensor device on {self.topic!r} is closed")
        if self._connection is None:
            await self._connect()

    async def flush(self) -> None:
        """Wait until what was published so far has reached the broker."""
        if self._connection is not None:
            await self._connection.drain()

    async def _connect(self) -> None:
        connection = MqttConnection(self.options)
        connection.on_connect(self._publish)
        self._connection = connection
        if not await connection.start(wait_seconds=self.connect_timeout):
            self._connection = None
            await connection.close()
            where = f"{self.options.host}:{self.options.port}"
            raise MqttError(f"the MQTT broker at {where} did not accept the simulated "
                            f"sensor on {self.topic!r} within {self.connect_timeout:g}s")
        await connection.drain()

    # Readings.

    def set(self, value: bool, sensor_id: str | None = None) -> None:
        """Presence, gas or smoke detected (True) or gone; publishes it at once."""
        if sensor_id is None:
            if len(self._values) != 1:
                raise ValueError(f"name the sensor to set: one of {sorted(self._values)}")
            [sensor_id] = self._values
        if sensor_id not in self._values:
            raise ValueError(f"{sensor_id!r} is no presence, gas or smoke sensor of this device")
        self._values[sensor_id] = value
        self._publish()

    def payload(self) -> str:
        """What the device publishes now."""
        readings = {sid: self._reading(sid) for sid in self.sensors}
        if len(self.sensors) == 1:
            [(sensor_id, reading)] = readings.items()
            sensor = self.sensors[sensor_id]
            if not sensor.field:
                if isinstance(reading, float):
                    return f"{reading:.1f}"
                return sensor.payload_on if reading else sensor.payload_off
        return json.dumps({self.sensors[sid].field: reading for sid, reading in readings.items()})

    def describe(self) -> str:
        words = ", ".join(f"{s.kind} {s.id}" + (f" [{s.field}]" if s.field else "")
                          for s in self.sensors.values())
        available = f", availability {self.availability_topic}" if self.availability_topic else ""
        return f"{self.topic}: {words}{available}"

    def _reading(self, sensor_id: str) -> bool | float:
        watch = self._watches.get(sensor_id)
        if watch is None:
            return self._values[sensor_id]
        snapshot = watch.snapshot()
        if self.sensors[sensor_id].on_above is not None:
            return round(snapshot.thermocouple_c, 1)
        return snapshot.flame

    def _saw(self, sensor_id: str, snapshot: BurnerSnapshot) -> None:
        if snapshot.flame is not self._flames[sensor_id]:
            self._flames[sensor_id] = snapshot.flame
            self._publish()

    def _periodic(self) -> None:
        self._publish()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._periodic)

    def _publish(self) -> None:
        connection = self._connection
        if connection is not None and connection.is_connected:
            connection.publish_soon(self.topic, self.payload(), retain=True)


def _check_one_device(sensors: list[MqttSensorSettings]) -> None:
    if not sensors:
        raise ValueError("a simulated sensor device needs at least one sensor")
    if len({s.topic for s in sensors}) != 1:
        raise ValueError("the sensors of one simulated device share one topic")
    fields = [s.field for s in sensors]
    if len(sensors) > 1 and (not all(fields) or len(set(fields)) != len(fields)):
        raise ValueError(f"sensors {', '.join(s.id for s in sensors)} share topic "
                         f"{sensors[0].topic!r}: each needs a field of its own")
