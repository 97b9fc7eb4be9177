"""The one place that builds stovectl's object graph, starts it and stops it.

Start order: claim the control socket (a second daemon stops here, before it
touches a relay), store, relays, the MQTT bridge's subscriptions, the broker
connection (waiting up to ``connect_timeout``, so MQTT relays can be read), the
announcer (so an alarm during reconciliation is said aloud), controller
(reconciles intent with the relays, then acts on what the sensors said so
far), the simulated and MiOT sensors, calendar schedules, then act on MQTT
commands and answer on the socket — so no command is accepted before reconciliation (DESIGN §2 rule
6). Stop order is the reverse. SIGTERM and SIGINT stop it
cleanly; every burner stays in its intended state, and pending re-arms and
countdowns are already on disk for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stovectl.announce.announcer import Announcer
from stovectl.control.server import ControlServer
from stovectl.core.controller import BurnerController
from stovectl.core.events import Event, Kind, Result
from stovectl.core.store import Store
from stovectl.daemon.systemd import ServiceManager, keep_alive
from stovectl.devices.base import Relay
from stovectl.settings import (
    DeviceSettings,
    MiioDeviceSettings,
    MiotSensorSettings,
    MqttDeviceSettings,
    MqttSensorSettings,
    Settings,
    SimulatedDeviceSettings,
)
from stovectl.sim.world import SimulatedWorld

if TYPE_CHECKING:
    from stovectl.core.schedules import Schedules
    from stovectl.mqtt.bridge import MqttBridge
    from stovectl.mqtt.connection import MqttConnection
    from stovectl.sensors.miot import MiotSensors
    from stovectl.sensors.mqtt import MqttSensors

log = logging.getLogger("stovectl")

DATABASE_NAME = "stovectl.db"


@dataclass(frozen=True)
class DeviceContext:
    """What a relay factory may need besides its own settings."""

    world: SimulatedWorld
    store: Store
    mqtt: MqttConnection | None = None
    base_topic: str = ""


def _simulated(device: DeviceSettings, context: DeviceContext) -> Relay:
    assert isinstance(device, SimulatedDeviceSettings)
    return context.world.devices[device.id]


def _miio(device: DeviceSettings, context: DeviceContext) -> Relay:
    assert isinstance(device, MiioDeviceSettings)
    # Imported here: python-miio costs ~200 ms and ~48 MB, only for those who use it.
    from stovectl.devices.miio import MiioRelay  # noqa: PLC0415

    return MiioRelay(device, context.store)


def _mqtt(device: DeviceSettings, context: DeviceContext) -> Relay:
    assert isinstance(device, MqttDeviceSettings)
    assert context.mqtt is not None  # settings refuse an mqtt device without [mqtt]
    from stovectl.devices.mqtt import MqttRelay  # noqa: PLC0415  # paho only for its users

    return MqttRelay(device, context.mqtt, context.base_topic)


RELAY_FACTORIES: Mapping[str, Callable[[DeviceSettings, DeviceContext], Relay]] = {
    "simulated": _simulated,
    "miio": _miio,
    "mqtt": _mqtt,
}


def build_mqtt(settings: Settings) -> MqttConnection | None:
    """The broker connection for the ``[mqtt]`` section, or None without one."""
    if settings.mqtt is None:
        return None
    # Imported here: paho is loaded only by daemons that talk MQTT.
    from stovectl.mqtt.connection import MqttConnection  # noqa: PLC0415
    from stovectl.mqtt.options import options_from_settings  # noqa: PLC0415

    base = settings.mqtt_base_topic
    return MqttConnection(options_from_settings(
        settings.mqtt, f"stovectl-{settings.stove.id}", will_topic=f"{base}/status"
    ))


def build_announcer(settings: Settings, store: Store) -> Announcer | None:
    """The announcer for the ``[speaker]`` section, or None when there is no speaker."""
    if settings.speaker is None:
        return None
    # Imported here: the speaker speaks miIO, and python-miio is heavy (see _miio).
    from stovectl.announce.xiaoai import XiaoaiSpeaker  # noqa: PLC0415

    names = {burner.id: burner.name for burner in settings.burners}
    return Announcer(settings.speaker, names, XiaoaiSpeaker(settings.speaker, store))


def log_event(event: Event) -> None:
    """Log each event once, for the operator reading journald."""
    if event.kind in (Kind.ALARM, Kind.DEVICE_OFFLINE, Kind.RECOVERED, Kind.DEVICE_ONLINE):
        return  # logged where they are detected, with their context
    level = logging.INFO
    if event.result is Result.FAILED or event.kind is Kind.TAMPER:
        level = logging.ERROR
    elif event.result is Result.REFUSED:
        level = logging.WARNING
    who = f" by {event.actor}" if event.actor else ""
    log.log(level, "%s [%s%s] %s", event.kind, event.source, who, event.message)


class Daemon:
    """stovectl's running parts, wired together."""

    def __init__(self, settings: Settings, socket_path: Path, state_dir: Path) -> None:
        self.settings = settings
        self.socket_path = socket_path
        self.store = Store(state_dir / DATABASE_NAME)
        self.world = SimulatedWorld(settings)
        self.mqtt = build_mqtt(settings)
        context = DeviceContext(self.world, self.store, self.mqtt, settings.mqtt_base_topic)
        self.relays: dict[str, Relay] = {
            device.id: RELAY_FACTORIES[device.kind](device, context)
            for device in settings.devices
        }
        self.controller = BurnerController(settings, self.relays, self.store)
        self.controller.events.subscribe(log_event)
        self.announcer = build_announcer(settings, self.store)
        if self.announcer is not None:
            self.controller.events.subscribe(self.announcer.hear)
        self.schedules: Schedules | None = None
        if settings.schedules:
            from stovectl.core.schedules import Schedules  # noqa: PLC0415  # APScheduler only for those

            self.schedules = Schedules(settings.schedules, self.controller, self.store)
        self.server = ControlServer(
            self.controller, socket_path, self._extra_status, settings.daemon.socket_group
        )
        self.bridge: MqttBridge | None = None
        if self.mqtt is not None:
            from stovectl.mqtt.bridge import MqttBridge  # noqa: PLC0415  # see build_mqtt

            self.bridge = MqttBridge(settings, self.controller, self.mqtt, self.store)
        self.mqtt_sensors: MqttSensors | None = None
        mqtt_sensors = [s for s in settings.sensors if isinstance(s, MqttSensorSettings)]
        if mqtt_sensors and self.mqtt is not None:
            from stovectl.sensors.mqtt import MqttSensors  # noqa: PLC0415  # see build_mqtt

            self.mqtt_sensors = MqttSensors(mqtt_sensors, self.mqtt, self.controller.sensors)
        self.miot_sensors: MiotSensors | None = None
        miot_sensors = [s for s in settings.sensors if isinstance(s, MiotSensorSettings)]
        if miot_sensors:
            from stovectl.devices.miio import MiioRelay  # noqa: PLC0415  # python-miio, see _miio
            from stovectl.sensors.miot import MiotSensors  # noqa: PLC0415

            # A sensor on a relay's device shares its lane: one device, one sequence of ids.
            lanes = {
                device.host: relay.lane
                for device in settings.devices
                if isinstance(device, MiioDeviceSettings)
                and isinstance(relay := self.relays[device.id], MiioRelay)
            }
            self.miot_sensors = MiotSensors(
                miot_sensors, self.store, self.controller.sensors, lanes
            )
        self._stopping = asyncio.Event()

    def _extra_status(self) -> dict[str, Any]:
        schedules = self.schedules.status() if self.schedules is not None else []
        if self.mqtt is None or self.settings.mqtt is None:
            return {"schedules": schedules}
        mqtt = self.settings.mqtt
        return {"schedules": schedules, "mqtt": {
            "connected": self.mqtt.is_connected,
            "broker": f"{mqtt.host}:{mqtt.broker_port}",
            "base_topic": self.settings.mqtt_base_topic,
        }}

    async def start(self) -> None:
        await self.server.bind()
        self.store.open()
        for relay in self.relays.values():
            await relay.start()
        if self.mqtt is not None:
            assert self.settings.mqtt is not None and self.bridge is not None
            self.bridge.attach()
            if self.mqtt_sensors is not None:
                self.mqtt_sensors.attach()
            wait = self.settings.mqtt.connect_timeout.total_seconds()
            if not await self.mqtt.start(wait_seconds=wait):
                log.warning("the MQTT broker at %s:%s did not answer within %ss; going on "
                            "without it, and retrying", self.settings.mqtt.host,
                            self.settings.mqtt.broker_port, f"{wait:g}")
        if self.announcer is not None:
            await self.announcer.start()
        await self.controller.start()
        self.world.attach_sensors(self.controller.sensors)
        if self.miot_sensors is not None:
            await self.miot_sensors.start()
        if self.schedules is not None:
            await self.schedules.start()
        if self.bridge is not None:
            await self.bridge.serve()
        await self.server.serve()
        log.info("listening on %s", self.socket_path)

    async def stop(self) -> None:
        """Stop in the reverse order of start; safe after a start that failed half-way."""
        await self.server.close()
        if self.bridge is not None:
            await self.bridge.close()
        if self.schedules is not None:
            await self.schedules.close()
        if self.miot_sensors is not None:
            await self.miot_sensors.close()
        if self.mqtt_sensors is not None:
            await self.mqtt_sensors.close()
        self.world.close_sensors()
        await self.controller.close()
        if self.announcer is not None:
            await self.announcer.close()
        for relay in self.relays.values():
            await relay.close()
        if self.mqtt is not None:
            await self.mqtt.close()
        self.store.close()

    def request_stop(self) -> None:
        self._stopping.set()

    def status_line(self) -> str:
        """One line for ``systemctl status``: burners by mode, devices answering, MQTT."""
        return status_line(
            self.controller.status(), self.controller.devices_online(),
            None if self.mqtt is None else self.mqtt.is_connected,
        )

    def problems(self) -> list[str]:
        """What keeps the watchdog from being pinged: loops that stopped turning."""
        return self.controller.heartbeats.overdue()

    async def run(self, service: ServiceManager | None = None) -> None:
        """Start, tell systemd, serve until SIGTERM or SIGINT, then stop cleanly."""
        service = service or ServiceManager()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        watchdog: asyncio.Task[None] | None = None
        try:
            await self.start()
            # The socket listens and every device was probed (controller.start): ready.
            service.ready(self.status_line())
            self.controller.events.subscribe(lambda _event: service.status(self.status_line()))
            watchdog = asyncio.create_task(
                keep_alive(service, self.problems, self.status_line), name="watchdog"
            )
            await self._stopping.wait()
            log.info("stopping; every burner stays in its intended state")
            service.stopping()
        finally:
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            await self.stop()
            service.close()


def status_line(
    burners: list[dict[str, Any]], devices: Mapping[str, bool | None], mqtt: bool | None
) -> str:
    """``3 burners: 2 armed, 1 locked; 2/2 devices online; MQTT connected``."""
    modes = {"armed": 0, "pulse": 0, "locked": 0}
    for burner in burners:
        modes[burner["mode"]] += 1
    words = {"armed": "armed", "pulse": "cut", "locked": "locked"}
    counted = ", ".join(f"{n} {words[mode]}" for mode, n in modes.items() if n)
    line = f"{len(burners)} burner{'s' if len(burners) != 1 else ''}: {counted}"
    if alarms := sum(1 for burner in burners if burner["alarm"]):
        line += f", {alarms} ALARM"
    online = sum(1 for answering in devices.values() if answering)
    line += f"; {online}/{len(devices)} device{'s' if len(devices) != 1 else ''} online"
    if mqtt is not None:
        line += f"; MQTT {'connected' if mqtt else 'disconnected'}"
    return line
