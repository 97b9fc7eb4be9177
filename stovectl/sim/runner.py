"""``stovectl simulate``: the config's Mi Home and MQTT relays, simulated.

A daemon configured for miIO or MQTT relays can be tried, shown and tested end
to end without hardware. Every ``kind = "miio"`` device of the config becomes a
``SimulatedMiioDevice`` on its configured address, speaking the real protocol
over UDP with the configured token, model and channel mapping; every ``kind =
"mqtt"`` device becomes a ``SimulatedMqttDevice`` of its preset, connected to the
config's ``[mqtt]`` broker with the config's credentials and TLS files. Their
channels are wired to one simulated stove through each burner's ``cut_state``,
with the same wiring the in-process world uses (``world.wire_stove``). Only
loopback addresses (127.0.0.0/8) are simulated for miIO: answering as a device on
a real network would impersonate, or collide with, a relay in someone's kitchen.
An MQTT device only speaks through the broker the daemon itself uses.

The config's sensors are simulated too: each ``source = "mqtt"`` sensor
publishes on its topic through the same broker (``SimulatedMqttSensor``; sensors
sharing a topic are one device), and each ``source = "miot"`` sensor's property
is served on its host, by the relay simulator already there or by a sensor
device of its own (``SimulatedMiotSensor``), on loopback only as well. Flame
sensors follow their burners on the simulated stove.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import ipaddress
import signal
import time
from collections.abc import Callable, Sequence
from functools import partial

import click
from pydantic import SecretStr

from stovectl.devices.base import RelayState
from stovectl.mqtt.connection import MqttError
from stovectl.mqtt.options import ConnectionOptions, options_from_settings
from stovectl.settings import (
    BurnerSettings,
    MiioDeviceSettings,
    MiotSensorSettings,
    MqttDeviceSettings,
    MqttSensorSettings,
    MqttSettings,
    Settings,
)
from stovectl.sim.miio_device import SimulatedMiioDevice
from stovectl.sim.miot_sensors import SimulatedMiotSensor
from stovectl.sim.mqtt_device import SimulatedMqttDevice
from stovectl.sim.mqtt_sensors import SimulatedMqttSensor
from stovectl.sim.stove import StovePhysics
from stovectl.sim.world import Switchable, wire_stove

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
DEVICE_ID_MASK = 0x7FFF_FFFF
SENSOR_MODEL = "stovectl.sensor.sim"
"""The model a simulated MiOT sensor device says it is: plainly not a vendor's."""

Say = Callable[[str], None]


class SimulationRefused(Exception):
    """The config cannot be simulated as it stands; the message says why and what to do."""


def device_id_for(config_id: str, taken: set[int]) -> int:
    """A miIO device id derived from the config id: stable across runs, unique among ``taken``."""
    digest = hashlib.sha256(config_id.encode()).digest()
    device_id = int.from_bytes(digest[:4], "big") & DEVICE_ID_MASK or 1
    while device_id in taken:  # two ids hashing alike: step on, deterministically
        device_id = device_id % DEVICE_ID_MASK + 1
    taken.add(device_id)
    return device_id


def check_loopback(owner: str, host: str) -> None:
    """Refuse a host outside 127.0.0.0/8; ``owner`` names the device or sensor."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or address not in LOOPBACK:
        raise SimulationRefused(
            f"{owner} has host {host!r}, not a loopback address: "
            "stovectl simulates devices only on 127.0.0.0/8, never on a real network "
            '(give each simulated device its own, e.g. host = "127.0.1.2")'
        )


def check_hosts(devices: Sequence[MiioDeviceSettings]) -> None:
    """Refuse a host outside 127.0.0.0/8, and two devices on one address."""
    owners: dict[str, str] = {}
    for device in devices:
        check_loopback(f"device {device.id!r}", device.host)
        if device.host in owners:
            raise SimulationRefused(
                f"devices {owners[device.host]!r} and {device.id!r} share host {device.host}: "
                "python-miio always talks to port 54321, so each simulated device needs a "
                "loopback address of its own"
            )
        owners[device.host] = device.id


def mqtt_options(mqtt: MqttSettings, device_id: str) -> ConnectionOptions:
    """The broker connection of a simulated MQTT device: the config's broker and login."""
    return options_from_settings(
        mqtt, "", will_topic=None, client_id=f"stovectl-sim-{device_id}"
    )


class Simulation:
    """The config's miIO and MQTT devices as simulators, wired to one simulated stove."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        physics: StovePhysics | None = None,
    ) -> None:
        configured = [d for d in settings.devices if isinstance(d, MiioDeviceSettings)]
        over_mqtt = [d for d in settings.devices if isinstance(d, MqttDeviceSettings)]
        sensors = [s for s in settings.sensors
                   if isinstance(s, MqttSensorSettings | MiotSensorSettings)]
        if not configured and not over_mqtt and not sensors:
            raise SimulationRefused(
                'the config has no kind = "miio" or kind = "mqtt" device, and no mqtt or '
                'miot sensor, to simulate (kind = "simulated" devices and source = '
                '"simulated" sensors run inside the daemon itself)'
            )
        check_hosts(configured)
        taken: set[int] = set()
        self.devices = {
            device.id: _simulator(device, device_id_for(device.id, taken))
            for device in configured
        }
        self.mqtt_devices: dict[str, SimulatedMqttDevice] = {}
        self._broker = ""
        if over_mqtt:
            mqtt = settings.mqtt
            assert mqtt is not None  # an mqtt device without [mqtt] does not load
            self._broker = f"{mqtt.host}:{mqtt.broker_port}"
            timeout = mqtt.connect_timeout.total_seconds()
            self.mqtt_devices = {
                device.id: SimulatedMqttDevice(
                    device, mqtt_options(mqtt, device.id), connect_timeout=timeout
                )
                for device in over_mqtt
            }
        self._burners = settings.burners
        self._switchables: dict[str, Switchable] = {**self.devices, **self.mqtt_devices}
        self.stove = wire_stove(settings.burners, self._switchables, clock, physics)
        self.sensor_devices: dict[str, SimulatedMiioDevice] = {}
        """The MiOT sensor devices of their own, by host (not those on a relay's host)."""
        self.miot_sensors = self._miot_sensors(
            [s for s in sensors if isinstance(s, MiotSensorSettings)], configured, taken
        )
        self.mqtt_sensors = self._mqtt_sensors(
            settings, [s for s in sensors if isinstance(s, MqttSensorSettings)]
        )
        """By sensor id: sensors that share a topic share one simulated device."""

    def _miot_sensors(
        self,
        sensors: list[MiotSensorSettings],
        relays: list[MiioDeviceSettings],
        taken: set[int],
    ) -> dict[str, SimulatedMiotSensor]:
        relay_on = {relay.host: relay for relay in relays}
        tokens = {relay.host: _token(relay.token) for relay in relays}
        simulated = {}
        for sensor in sensors:
            check_loopback(f"sensor {sensor.id!r}", sensor.host)
            relay = relay_on.get(sensor.host)
            token = tokens.setdefault(sensor.host, _token(sensor.token))
            if token.lower() != _token(sensor.token).lower():
                shared = f"relay {relay.id!r}" if relay else "another sensor"
                raise SimulationRefused(
                    f"sensor {sensor.id!r} is on host {sensor.host} with {shared}, but with "
                    "another token: one device has one token"
                )
            if relay is not None:
                device = self.devices[relay.id]
            elif sensor.host in self.sensor_devices:
                device = self.sensor_devices[sensor.host]
            else:
                device = self.sensor_devices[sensor.host] = SimulatedMiioDevice(
                    sensor.host, token, device_id_for(f"sensors@{sensor.host}", taken),
                    SENSOR_MODEL, channels=(),
                )
            try:
                simulated[sensor.id] = SimulatedMiotSensor(sensor, device, self.stove)
            except ValueError as error:
                raise SimulationRefused(
                    f"sensor {sensor.id!r} cannot be simulated: {error}") from None
        return simulated

    def _mqtt_sensors(
        self, settings: Settings, sensors: list[MqttSensorSettings]
    ) -> dict[str, SimulatedMqttSensor]:
        if not sensors:
            return {}
        mqtt = settings.mqtt
        assert mqtt is not None  # an mqtt sensor without [mqtt] does not load
        self._broker = f"{mqtt.host}:{mqtt.broker_port}"
        by_topic: dict[str, list[MqttSensorSettings]] = {}
        for sensor in sensors:
            by_topic.setdefault(sensor.topic, []).append(sensor)
        simulated = {}
        for group in by_topic.values():
            try:
                device = SimulatedMqttSensor(
                    group, mqtt_options(mqtt, f"sensor-{group[0].id}"), self.stove,
                    connect_timeout=mqtt.connect_timeout.total_seconds(),
                )
            except ValueError as error:
                raise SimulationRefused(
                    f"the sensors on {group[0].topic!r} cannot be simulated: {error}") from None
            simulated.update(dict.fromkeys(device.sensors, device))
        return simulated

    def burners_on(self, device_id: str) -> dict[int, list[BurnerSettings]]:
        """The burners wired to each channel of a device, by channel."""
        channels: dict[int, list[BurnerSettings]] = {}
        for burner in self._burners:
            if burner.device == device_id:
                channels.setdefault(burner.channel, []).append(burner)
        return channels

    def _channels(self, device_id: str, count: int) -> str:
        """How many channels, and what each is wired to: "2 channels: left, unwired"."""
        wired = self.burners_on(device_id)
        names = ", ".join(
            "+".join(b.id for b in wired[channel]) if channel in wired else "unwired"
            for channel in range(1, count + 1)
        )
        return f"{count} channel{'s' if count != 1 else ''}: {names}"

    def describe(self) -> list[str]:
        """One line per device (model or preset, address or topics, its channels' burners),
        then one per simulated sensor device (address or topic, what it serves)."""
        lines = []
        for device_id, device in self.devices.items():
            lines.append(
                f"simulating relay {device.model} at {device.host}:{device.port} "
                f"({self._channels(device_id, device.spec.channel_count)})"
            )
        for device_id, relay in self.mqtt_devices.items():
            lines.append(
                f"simulating {relay.settings.preset} relay {device_id!r} via the MQTT broker "
                f"at {self._broker}: {relay.firmware.describe()} "
                f"({self._channels(device_id, relay.settings.channels)})"
            )
        relay_ids = {id(device): device_id for device_id, device in self.devices.items()}
        for sensor in self.miot_sensors.values():
            host, on_relay = sensor.device.host, relay_ids.get(id(sensor.device))
            on = f" (on relay {on_relay!r})" if on_relay else ""
            lines.append(f"simulating MiOT sensor at {host}:{sensor.device.port}{on}: "
                         f"{sensor.describe()}")
        for publisher in dict.fromkeys(self.mqtt_sensors.values()):
            lines.append(f"simulating MQTT sensors via the MQTT broker at {self._broker}: "
                         f"{publisher.describe()}")
        return lines

    def report_switches(self, say: Say) -> None:
        """Say each burner's loop state now, and whenever its relay switches."""
        for device_id, device in self._switchables.items():
            # Wired after the stove, so the stove has followed the switch when this runs.
            device.wire(partial(self._report, self.burners_on(device_id), say))

    def _report(
        self, wired: dict[int, list[BurnerSettings]], say: Say, channel: int, state: RelayState
    ) -> None:
        for burner in wired.get(channel, ()):
            closed = self.stove.snapshot(burner.id).loop_closed
            loop = "armed (loop closed)" if closed else "CUT (loop open)"
            say(f"{burner.id}: relay channel {channel} {state}: {loop}")

    async def start(self) -> None:
        """Bind every miIO address, connect every MQTT device; on failure undo all of it."""
        try:
            listening = {**self.devices, **{f"sensors@{host}": device
                                            for host, device in self.sensor_devices.items()}}
            for device_id, device in listening.items():
                try:
                    await device.start()
                except OSError as error:
                    reason = (
                        "the address is in use (another simulator?)"
                        if error.errno == errno.EADDRINUSE else error.strerror or str(error)
                    )
                    raise OSError(
                        error.errno,
                        f"device {device_id!r}: cannot listen on "
                        f"{device.host}:{device.port}: {reason}",
                    ) from None
            for sensor in self.miot_sensors.values():
                sensor.start()
            for device_id, relay in self.mqtt_devices.items():
                try:
                    await relay.start()
                except MqttError as error:
                    raise SimulationRefused(
                        f"device {device_id!r}: {error}; is the broker running, and are the "
                        "[mqtt] host, port, credentials and TLS files right?"
                    ) from None
            for sensors in dict.fromkeys(self.mqtt_sensors.values()):
                try:
                    await sensors.start()
                except MqttError as error:
                    raise SimulationRefused(
                        f"sensors on {sensors.topic!r}: {error}; is the broker running?"
                    ) from None
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for sensor in self.miot_sensors.values():
            sensor.close()
        for sensors in dict.fromkeys(self.mqtt_sensors.values()):
            await sensors.close()
        for device in [*self.devices.values(), *self.sensor_devices.values()]:
            await device.close()
        for relay in self.mqtt_devices.values():
            await relay.close()


def _token(token: SecretStr | None) -> str:
    assert token is not None  # resolved at load
    return token.get_secret_value()


def _simulator(device: MiioDeviceSettings, device_id: int) -> SimulatedMiioDevice:
    channels = None if device.channels is None else [(c.siid, c.piid) for c in device.channels]
    try:
        return SimulatedMiioDevice(
            device.host, _token(device.token), device_id, device.model, channels
        )
    except ValueError as error:
        raise SimulationRefused(f"device {device.id!r} cannot be simulated: {error}") from None


async def serve(simulation: Simulation, say: Say) -> None:
    """Run the simulation until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await simulation.start()
        for line in simulation.describe():
            say(line)
        simulation.report_switches(say)
        await stopping.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await simulation.close()


def run_simulation(settings: Settings, say: Say | None = None) -> int:
    """``stovectl simulate``: 0 after SIGINT/SIGTERM, 2 if the config cannot be simulated."""
    say = say or click.echo
    try:
        simulation = Simulation(settings)
        asyncio.run(serve(simulation, say))
    except SimulationRefused as refusal:
        click.echo(f"stovectl: cannot simulate: {refusal}", err=True)
        return EXIT_USAGE
    except OSError as error:
        click.echo(f"stovectl: {error.strerror or error}", err=True)
        return EXIT_FAILED
    return EXIT_OK
