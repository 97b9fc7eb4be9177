"""Sensors read from MiOT properties of Mi Home devices on the LAN, by polling.

A Mi Home gas or smoke detector, or a flame probe on a MiOT board, pushes
nothing to the LAN: its properties are read with ``get_properties`` every
``poll_interval``. Everything the relays learnt about python-miio applies, so
the relays' ``MiioLane`` is used as it is: one serial lane per device (all the
sensors of one host share it, and one request reads them all), request ids
continued across restarts under a key no device id can take, a handshake
bounded by the sensor's ``timeout``, and any exception an unknown outcome. A
sensor on a relay's device is read through that relay's lane (``lanes``): two
lanes would number their requests apart, and the device drops ids it saw lately.

python-miio does not check per-item codes, so each item is checked here: an
item that is not the property asked for, a code other than 0, a missing or
unreadable value, all make that sensor unreadable this round, logged once until
it reads again. A sensor unread three rounds in a row is unavailable; its first
reading after that makes it available again. A device that does not answer at
all is logged once when its sensors go, and once when it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stovectl.core.sensing import SensorInput
from stovectl.core.tasks import BackgroundTasks
from stovectl.devices.miio import CODES, MiioLane, RequestIds
from stovectl.errors import ConfigError, DeviceError, shown
from stovectl.sensors.readings import interpret
from stovectl.settings import MiotSensorSettings

log = logging.getLogger(__name__)

MISSES_UNTIL_UNAVAILABLE = 3


@dataclass
class _Sensor:
    settings: MiotSensorSettings
    reading: bool | None = None
    available: bool | None = None
    """What the target was last told."""
    misses: int = 0
    """Rounds in a row without a reading."""
    unreadable: bool = False
    """Why it could not be read was logged; the next reading says it reads again."""


@dataclass
class _Device:
    host: str
    lane: MiioLane
    interval_seconds: float
    owns_lane: bool
    """False for a relay's lane: the relay starts and closes it."""
    sensors: list[_Sensor] = field(default_factory=list)
    silent: bool = False
    """Its going silent was logged; its next answer says it is back."""


class MiotSensors:
    """The configured MiOT sensors, one polling task and one lane per device."""

    def __init__(
        self,
        sensors: Sequence[MiotSensorSettings],
        ids: RequestIds | None,
        target: SensorInput,
        lanes: Mapping[str, MiioLane] | None = None,
    ) -> None:
        """``lanes``: the relays' lanes by host, for sensors on a relay's device."""
        self._target = target
        self._devices: dict[str, _Device] = {}
        shared = lanes or {}
        for settings in sensors:
            device = self._devices.get(settings.host)
            if device is None:
                lane = shared.get(settings.host)
                device = self._devices[settings.host] = _Device(
                    settings.host, lane or _lane(settings, ids),
                    settings.poll_interval.total_seconds(), owns_lane=lane is None,
                )
            else:
                _check_same_token(device.sensors[0].settings, settings)
                device.interval_seconds = min(
                    device.interval_seconds, settings.poll_interval.total_seconds()
                )
            device.sensors.append(_Sensor(settings))
        self._tasks = BackgroundTasks(log)

    async def start(self) -> None:
        """Start each device's lane and its polling; the first poll is at once."""
        for device in self._devices.values():
            if device.owns_lane:
                await device.lane.start()
            self._tasks.spawn(self._poll_forever(device), f"miot-sensors-{device.host}")

    async def close(self) -> None:
        await self._tasks.cancel_all()
        for device in self._devices.values():
            if device.owns_lane:
                await device.lane.close()

    async def _poll_forever(self, device: _Device) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self._poll(device)
            await asyncio.sleep(max(0.0, device.interval_seconds - (loop.time() - started)))

    async def _poll(self, device: _Device) -> None:
        """Read every sensor of ``device`` once, and tell the target what came of it."""
        asked = [
            {"did": s.settings.id, "siid": s.settings.siid, "piid": s.settings.piid}
            for s in device.sensors
        ]
        try:
            reply = await device.lane.send("get_properties", asked)
        except DeviceError as error:
            if not device.silent and any(
                s.misses + 1 >= MISSES_UNTIL_UNAVAILABLE for s in device.sensors
            ):
                device.silent = True
                log.warning("MiOT sensor device %s does not answer (%s); sensors %s are "
                            "unavailable until it does", device.host, error,
                            ", ".join(s.settings.id for s in device.sensors))
            for sensor in device.sensors:
                self._miss(sensor, None)
            return
        if device.silent:
            device.silent = False
            log.info("MiOT sensor device %s answers again", device.host)
        items = reply if isinstance(reply, list) else []
        for sensor in device.sensors:
            try:
                raw = _value(sensor.settings, items, reply)
                reading = interpret(sensor.settings, raw, sensor.reading)
            except ValueError as error:
                self._miss(sensor, error)
                continue
            self._read(sensor, reading)

    def _miss(self, sensor: _Sensor, problem: ValueError | None) -> None:
        if problem is not None and not sensor.unreadable:
            sensor.unreadable = True
            log.warning("%s; its last reading stands (said once until it reads again)",
                        problem)
        sensor.misses += 1
        if sensor.misses >= MISSES_UNTIL_UNAVAILABLE and sensor.available is not False:
            self._tell_available(sensor, False)

    def _read(self, sensor: _Sensor, reading: bool | None) -> None:
        settings = sensor.settings
        sensor.misses = 0
        if sensor.unreadable:
            sensor.unreadable = False
            log.info("sensor %s reads again", settings.id)
        if sensor.available is not True:
            self._tell_available(sensor, True)
        if reading is None:
            return  # inside the hysteresis band, with nothing to keep
        sensor.reading = reading
        self._target.sensor_reading(settings.id, reading)

    def _tell_available(self, sensor: _Sensor, available: bool) -> None:
        sensor.available = available
        self._target.sensor_available(sensor.settings.id, available)


def _lane(settings: MiotSensorSettings, ids: RequestIds | None) -> MiioLane:
    token = settings.token
    assert token is not None  # resolved at load
    timeout = settings.timeout.total_seconds()
    # The key is not an id a device could have, so it never meets a relay's ids.
    return MiioLane(f"sensors@{settings.host}", settings.host, token, timeout, timeout, ids,
                    f"[sensors {settings.host}]")


def _check_same_token(first: MiotSensorSettings, other: MiotSensorSettings) -> None:
    assert first.token is not None and other.token is not None  # resolved at load
    if first.token.get_secret_value().lower() != other.token.get_secret_value().lower():
        raise ConfigError(
            f"sensors {first.id!r} and {other.id!r} are on one device ({first.host}) "
            "but give it different tokens"
        )


def _value(settings: MiotSensorSettings, items: list[Any], reply: Any) -> Any:
    """The value the device gave for the sensor's property; ValueError if it gave none."""
    where = f"sensor {settings.id!r} (siid {settings.siid} piid {settings.piid})"
    if not items:
        raise ValueError(f"{where}: get_properties answered {shown(reply)}")
    mine = [i for i in items if isinstance(i, dict) and i.get("did") == settings.id]
    if len(mine) != 1:
        raise ValueError(f"{where}: the answer has {len(mine)} items for it: {shown(reply)}")
    item = mine[0]
    if (item.get("siid"), item.get("piid")) != (settings.siid, settings.piid):
        raise ValueError(f"{where}: the device answered for another property: {shown(item)}")
    code = item.get("code")
    if type(code) is not int or code != 0:
        meaning = CODES.get(code, "unknown code") if isinstance(code, int) else "no code"
        raise ValueError(f"{where}: code {code!r} ({meaning})")
    if "value" not in item:
        raise ValueError(f"{where}: the answer has no value: {shown(item)}")
    return item["value"]
