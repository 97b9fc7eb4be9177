"""stovectl's face on the broker: remote commands in; state, events and discovery out.

Commands on ``<base>/<burner>/set`` and ``<base>/all/set`` become controller
calls with source ``mqtt`` (DESIGN §4); the controller's policy applies rule 5
to them like to every remote source. Each command is parsed before anything
happens, a repeated command id is ignored (QoS 1 redelivery, a broker replaying
a persistent session), and every outcome or refusal is answered on the v5
response topic with the correlation data, and shows on the events stream.

Out go: retained state JSON per burner and per sensor, the hazard latch, and
availability per device (whenever they change, and all of it after every
reconnect), every event on
``<base>/events``, and the Home Assistant discovery messages (after every
reconnect, whenever ``homeassistant/status`` says ``online``, with the entities
of burners and sensors no longer configured removed).

Like the control socket, the bridge listens before it serves: commands the
broker delivers at connect (queued while the daemon was away) wait until the
controller has reconciled, then run in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from stovectl import __version__
from stovectl.core.controller import BurnerController
from stovectl.core.events import Event, Kind, Outcome
from stovectl.core.sensing import SensorState
from stovectl.core.store import Store
from stovectl.core.tasks import BackgroundTasks
from stovectl.errors import CommandRefused
from stovectl.mqtt.commands import CommandRejected, RemoteCommand, age_of, parse_command
from stovectl.mqtt.connection import Message, MqttConnection, MqttError
from stovectl.mqtt.discovery import build_discovery_messages, encode_discovery, removal_topics
from stovectl.mqtt.payloads import (
    event_payload,
    hazard_payload,
    reply_error,
    reply_ok,
    sensor_payload,
    state_payload,
)
from stovectl.mqtt.topics import Topics, ha_status_topic
from stovectl.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "mqtt"
STATE_TICK_SECONDS = 1.0
HISTORY_SCAN = 500
"""Events looked back through at start for each burner's last shutoff."""


class MqttBridge:
    """Connects the controller to the broker."""

    def __init__(
        self,
        settings: Settings,
        controller: BurnerController,
        connection: MqttConnection,
        store: Store,
    ) -> None:
        assert settings.mqtt is not None
        self._settings = settings
        self._mqtt = settings.mqtt
        self._controller = controller
        self._connection = connection
        self._store = store
        self.topics = Topics(settings.mqtt_base_topic)
        self._serving = False
        self._waiting: list[Message] = []
        self._published: dict[str, bytes] = {}
        self._publish_pending = False
        self._last_shutoff: dict[str, Event] = {}
        self._tasks = BackgroundTasks(log)
        self._warned_retained: set[str] = set()

    # -- life -------------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe and listen; call before the connection starts, so nothing is missed."""
        self._connection.subscribe(self.topics.set_filter, self._on_command)
        if self._mqtt.discovery:
            self._connection.subscribe(
                ha_status_topic(self._mqtt.discovery_prefix), self._on_homeassistant_status
            )
        self._connection.on_connect(self._on_connect)
        self._controller.events.subscribe(self._on_event)
        self._controller.sensors.on_change(self._on_sensor_change)

    async def serve(self) -> None:
        """Start acting on commands (after reconciliation) and publishing state."""
        self._load_last_shutoffs()
        self._serving = True
        waiting, self._waiting = self._waiting, []
        for message in waiting:
            self._spawn(self._execute(message), f"mqtt-command-{message.topic}")
        self._spawn(self._tick(), "mqtt-state")
        if self._connection.is_connected:
            self._on_connect()

    async def close(self) -> None:
        self._serving = False
        await self._tasks.cancel_all()

    # -- commands ---------------------------------------------------------------------

    def _on_command(self, message: Message) -> None:
        if not self._serving:
            self._waiting.append(message)
            return
        self._spawn(self._execute(message), f"mqtt-command-{message.topic}")

    async def _execute(self, message: Message) -> None:
        burner = self.topics.burner_of_set_topic(message.topic)
        if burner is None:
            return
        if message.retain and message.topic not in self._warned_retained:
            self._warned_retained.add(message.topic)
            log.warning("a retained command is on %s: commands must not be retained (its "
                        "publisher should clear it); all but cuts and locks are refused",
                        message.topic)
        command_id = None
        try:
            command = parse_command(burner, message.payload)
            command_id = command.command_id
            if command_id is not None and not self._store.first_sight_of_command(
                command_id, self._controller.now()
            ):
                log.info("ignored MQTT command %r on %s: its id was seen before",
                         command_id, message.topic)
                await self._reply(message, reply_error(
                    command_id, "duplicate", f"command {command_id!r} was handled already"))
                return
            # No lock around this: a cut must never wait behind another command (rule 1).
            # Order still holds, as each command sets its burners' intent before its
            # first pause, and tasks start in the order the messages arrived.
            outcomes = await self._run(command, message)
        except CommandRejected as rejected:
            known = burner if burner in self._controller.burner_ids else None
            self._controller.reject(SOURCE, rejected.code, str(rejected), known)
            await self._reply(message, reply_error(
                rejected.command_id or command_id, rejected.code, str(rejected)))
            return
        except CommandRefused as refusal:
            if not refusal.recorded:
                known = burner if burner in self._controller.burner_ids else None
                self._controller.reject(SOURCE, refusal.code, str(refusal), known)
            await self._reply(message, reply_error(command_id, refusal.code, str(refusal)))
            return
        await self._reply(message, reply_ok(command_id, outcomes))

    async def _run(self, command: RemoteCommand, message: Message) -> list[Outcome]:
        controller = self._controller
        actor = None if command.command_id is None else f"id {command.command_id}"
        names = command.burners
        if command.action == "off":
            return await controller.shutoff(names, SOURCE, actor)
        if command.action == "lock":
            return await controller.lock(names, SOURCE, command.reason or "remote", actor)
        if message.retain:
            controller.resolve(names)  # an unknown burner is named as such first
            # A retained message comes back at every reconnect and every restart: obeyed,
            # it would undo each later local lock or countdown (DESIGN §2 rule 5).
            raise CommandRejected(
                "retained", f"a retained {command.action} is refused: only cuts and locks "
                "may be retained; its publisher should clear it", command.command_id,
            )
        issued_at, age_known = age_of(command, message.message_expiry, controller.now())
        if command.action == "unlock":
            return await controller.unlock(
                names, SOURCE, actor, pin=command.pin, issued_at=issued_at, age_known=age_known
            )
        if command.action == "timer":
            assert command.seconds is not None  # parse_command requires it
            return controller.set_countdown(
                names, command.seconds, SOURCE, actor, extend=command.extend,
                issued_at=issued_at, age_known=age_known,
            )
        return controller.cancel_countdown(
            names, SOURCE, actor, issued_at=issued_at, age_known=age_known
        )

    async def _reply(self, request: Message, payload: bytes) -> None:
        if request.response_topic is None:
            return
        try:
            await self._connection.publish(
                request.response_topic, payload, correlation_data=request.correlation_data
            )
        except MqttError as error:
            log.warning("could not answer on %s: %s", request.response_topic, error)

    # -- state, events, discovery -----------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.kind is Kind.SHUTOFF and event.burner is not None:
            self._last_shutoff[event.burner] = event
        self._connection.publish_soon(self.topics.events, event_payload(event))
        self._publish_changes_soon()

    def _on_sensor_change(
        self, sensor: SensorState, before: bool | None, now: bool | None
    ) -> None:
        self._publish_changes_soon()

    def _publish_changes_soon(self) -> None:
        """Publish once the controller has finished what it is doing.

        An event is emitted part-way through a change (a flame_on before max-on starts
        counting, a hazard before the locks): publishing at once would put a state on
        the broker that never was, and one publish per event would repeat it.
        """
        if not self._serving or self._publish_pending:
            return
        self._publish_pending = True

        def publish() -> None:
            self._publish_pending = False
            if self._serving:
                self._publish_changes()

        asyncio.get_running_loop().call_soon(publish)

    def _on_connect(self) -> None:
        if not self._serving:
            return  # serve() publishes everything once the controller has reconciled
        self._published.clear()
        self._publish_changes()
        if self._mqtt.discovery or self._store.discovery_topics():
            self._spawn(self._announce(), "mqtt-discovery")

    def _on_homeassistant_status(self, message: Message) -> None:
        if message.payload.strip() != b"online" or not self._serving:
            return
        log.info("Home Assistant is online: announcing the entities again")
        self._published.clear()
        self._spawn(self._announce(), "mqtt-discovery")

    async def _announce(self) -> None:
        """Publish the discovery configs, and retire those no longer wanted (all of them
        once discovery is switched off)."""
        messages = []
        if self._mqtt.discovery:
            messages = build_discovery_messages(self._settings, version=__version__)
        wanted = {message.topic for message in messages}
        announced = self._store.discovery_topics()
        # Remembered before they go out: a daemon stopped half-way through still knows,
        # at its next start, which configs it may have left on the broker.
        self._store.save_discovery_topics(set(announced) | wanted)
        try:
            for topic in removal_topics(announced, messages):
                await self._connection.publish(topic, b"", retain=True)
            for message in messages:
                await self._connection.publish(
                    message.topic, encode_discovery(message), retain=True
                )
        except MqttError as error:
            log.warning("Home Assistant discovery was not published: %s", error)
            return
        self._store.save_discovery_topics(wanted)
        self._publish_changes()

    def _publish_changes(self) -> None:
        """Publish (retained) each burner and sensor state, device availability and the
        hazard latch that changed."""
        if not self._connection.is_connected:
            return
        availability: dict[str, bool] = {}
        burners = self._controller.status()
        for row in burners:
            payload = state_payload(row, self._last_shutoff.get(row["id"]))
            self._publish_retained(self.topics.burner_state(row["id"]), payload)
            if row["device_online"] is not None:
                availability[row["device"]] = availability.get(row["device"], True) and bool(
                    row["device_online"])
        for device, online in availability.items():
            self._publish_retained(self.topics.device_availability(device),
                                   b"online" if online else b"offline")
        sensors = self._controller.sensors.status()
        for sensor in sensors:
            self._publish_retained(self.topics.sensor_state(sensor["id"]),
                                   sensor_payload(sensor))
        self._publish_retained(self.topics.hazard, hazard_payload(burners, sensors))

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        if self._published.get(topic) == payload:
            return
        self._published[topic] = payload
        self._connection.publish_soon(topic, payload, retain=True)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATE_TICK_SECONDS)
            try:
                self._publish_changes()
            except Exception:
                log.exception("publishing state failed")

    def _load_last_shutoffs(self) -> None:
        for event in self._controller.history(limit=HISTORY_SCAN):
            if event.kind is Kind.SHUTOFF and event.burner is not None:
                self._last_shutoff[event.burner] = event

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coroutine, name)

