"""An MQTT relay (Tasmota, Zigbee2MQTT, Shelly Gen2, ESPHome or generic) on a real broker.

The daemon's MQTT relay talks to it exactly as to a device in a kitchen: the
device holds its own broker connection, with the firmware's last will on its
availability topic, obeys commands on the firmware's topics and publishes the
firmware's state reports (``mqtt_firmware`` spells both). It owns the relay's
state and the firmware's timers (Tasmota's PulseTime setting, Shelly's
``toggle_after``, Zigbee's ``on_time``), all on the asyncio loop that
``MqttConnection`` hands messages to. Its channels drive callbacks as the miIO
simulator's do, so it can be wired to the simulated stove.

Fault switches are plain attributes, set at any time: ``stuck`` (answers and
reports, but the relay does not move), ``refuse`` (writes are refused the
firmware's way), ``silent`` (switches, but says nothing about its state),
``loss_in`` (probability an incoming message is dropped), ``delay`` (seconds
before acting on a message, order kept); ``go_offline`` / ``come_online`` drop
the connection uncleanly (the broker publishes the will) and restore it.
``commands`` records every message that reached it, ``toggles`` those that
asked for a toggle, which it obeys as the real firmware would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from stovectl.devices.base import RelayState
from stovectl.mqtt.connection import Message, MqttConnection, MqttError
from stovectl.mqtt.options import ConnectionOptions
from stovectl.settings.mqtt import MqttDeviceSettings
from stovectl.sim.mqtt_dialects import build_firmware
from stovectl.sim.mqtt_firmware import (
    Kind,
    Outgoing,
    Request,
    Snapshot,
    pulse_time_seconds,
)
from stovectl.sim.world import Wiring

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
DROP_TIMEOUT_SECONDS = 5.0
FLUSH_TIMEOUT_SECONDS = 1.0
TELE_PERIOD_SECONDS = 300.0  # Tasmota's default TelePeriod


class ReceivedCommand(NamedTuple):
    """A message as it reached the device, before loss or delay."""

    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode(errors="replace")


class SimulatedMqttDevice:
    """One relay device of ``settings.preset``, connected to the broker in ``options``."""

    def __init__(
        self,
        settings: MqttDeviceSettings,
        options: ConnectionOptions,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        legacy_availability: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.firmware = build_firmware(settings, legacy_availability)
        available = self.firmware.availability
        # Firmwares connect with a clean session and a retained last will of their own.
        self.options = dataclasses.replace(
            options,
            will_topic=None if available is None else available.topic,
            will_payloads=options.will_payloads if available is None
            else (available.online, available.offline),
            clean_start=True,
            session_expiry_seconds=0,
        )
        self.connect_timeout = connect_timeout
        # Loss is simulated, never security: a seeded PRNG keeps runs reproducible.
        self._rng = random.Random(settings.id) if rng is None else rng  # noqa: S311
        channels = range(1, settings.channels + 1)
        self._states = dict.fromkeys(channels, RelayState.OFF)
        self._sources = dict.fromkeys(channels, "init")
        self._pulse_times: dict[int, int] = {}  # Tasmota's PulseTime setting, per channel
        self._returns: dict[int, asyncio.TimerHandle] = {}
        self._wiring: list[Wiring] = []
        self._inbox: deque[tuple[float, Request]] = deque()
        self._inbox_timer: asyncio.TimerHandle | None = None
        self._tele_timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: MqttConnection | None = None
        self._closed = False
        self.stuck = False
        self.refuse = False
        self.silent = False
        self.loss_in = 0.0
        self.delay = 0.0
        self.tele_period = TELE_PERIOD_SECONDS
        self.commands: list[ReceivedCommand] = []
        self.toggles: list[ReceivedCommand] = []

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def is_online(self) -> bool:
        return self._connection is not None and self._connection.is_connected

    # Life.

    async def start(self) -> None:
        """Connect, say online, publish the states; MqttError if the broker does not accept it."""
        if self._loop is not None:
            raise RuntimeError(f"device {self.id!r} already started")
        self._loop = asyncio.get_running_loop()
        await self._connect()
        self._tele_timer = self._loop.call_later(self.tele_period, self._tele)

    async def close(self) -> None:
        """Say offline (retained) and disconnect cleanly; safe to call twice."""
        self._closed = True
        for timer in [*self._returns.values(), self._inbox_timer, self._tele_timer]:
            if timer is not None:
                timer.cancel()
        self._returns.clear()
        self._inbox.clear()
        connection, self._connection = self._connection, None
        if self._sending:
            await asyncio.wait(self._sending, timeout=FLUSH_TIMEOUT_SECONDS)
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        if connection is not None:
            await connection.close()

    async def go_offline(self) -> None:
        """Lose the connection without a DISCONNECT, so the broker publishes the last will."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        await connection.abort(DROP_TIMEOUT_SECONDS)

    async def come_online(self) -> None:
        """Connect again after ``go_offline``: online, then the states, as at start."""
        if self._loop is None or self._closed:
            raise RuntimeError(f"device {self.id!r} is not running")
        if self._connection is None:
            await self._connect()

    async def _connect(self) -> None:
        connection = MqttConnection(self.options)
        for topic_filter in self.firmware.subscriptions():
            connection.subscribe(topic_filter, self._receive)
        connection.on_connect(lambda: self._send(self.firmware.connect_reports(self._snapshot())))
        self._connection = connection
        if not await connection.start(wait_seconds=self.connect_timeout):
            self._connection = None
            await connection.close()
            where = f"{self.options.host}:{self.options.port}"
            raise MqttError(
                f"the MQTT broker at {where} did not accept device {self.id!r} within "
                f"{self.connect_timeout:g}s"
            )
        # The connect listener has queued availability and states: wait until they are out.
        if self._sending:
            await asyncio.wait(self._sending, timeout=CONNECT_TIMEOUT_SECONDS)

    def _tele(self) -> None:
        """Tasmota's periodic tele/STATE; a ``tele_period`` of 0 turns it off."""
        assert self._loop is not None
        if self.tele_period > 0 and not self.silent:
            self._send(self.firmware.periodic_reports(self._snapshot()))
        period = self.tele_period if self.tele_period > 0 else TELE_PERIOD_SECONDS
        self._tele_timer = self._loop.call_later(period, self._tele)

    # The relay.

    def wire(self, on_switch: Wiring) -> None:
        """Call ``on_switch(channel, state)`` now for every channel, then on every change."""
        self._wiring.append(on_switch)
        for channel, state in self._states.items():
            on_switch(channel, state)

    def state(self, channel: int) -> RelayState:
        """The true state of a channel, as a multimeter would tell."""
        self._check_channel(channel)
        return self._states[channel]

    def pulse_time(self, channel: int) -> int:
        """Tasmota: the channel's PulseTime setting (0 = none)."""
        self._check_channel(channel)
        return self._pulse_times.get(channel, 0)

    def switch_by_hand(self, channel: int, state: RelayState) -> None:
        """Someone presses its button, or uses its app: it switches and reports."""
        self._check_channel(channel)
        was = self._states[channel]
        self._switch(channel, state, "button", None)
        self._report([channel], {channel: was})

    def _check_channel(self, channel: int) -> None:
        if channel not in self._states:
            raise ValueError(f"device {self.id!r} has no channel {channel}")

    def _switch(self, channel: int, state: RelayState, source: str, after: float | None) -> None:
        """Put a channel in ``state``; any pending timed return gives way to this switch."""
        self._cancel_return(channel)
        changed = self._states[channel] is not state
        self._states[channel], self._sources[channel] = state, source
        if after is None and state is self.firmware.pulse_state:
            after = pulse_time_seconds(self._pulse_times.get(channel, 0)) or None
        if after is not None and self._loop is not None:
            self._returns[channel] = self._loop.call_later(
                after, self._timed_return, channel, state.inverse()
            )
        if changed:
            for on_switch in self._wiring:
                on_switch(channel, state)

    def _cancel_return(self, channel: int) -> None:
        timer = self._returns.pop(channel, None)
        if timer is not None:
            timer.cancel()

    def _timed_return(self, channel: int, state: RelayState) -> None:
        self._returns.pop(channel, None)
        self._switch(channel, state, "timer", None)
        self._report([channel])

    def _remaining(self, channel: int) -> float:
        timer = self._returns.get(channel)
        if timer is None or self._loop is None:
            return 0.0
        return max(timer.when() - self._loop.time(), 0.0)

    # The wire.

    def _receive(self, message: Message) -> None:
        received = ReceivedCommand(message.topic, message.payload, message.retain)
        self.commands.append(received)
        request = self.firmware.decode(message.topic, message.payload)
        if request is None:
            log.debug("simulated %s ignores %s", self.id, message.topic)
            return
        if request.is_toggle:
            self.toggles.append(received)
        if self.loss_in > 0 and self._rng.random() < self.loss_in:
            return
        if self.delay <= 0 and not self._inbox:
            self._act(request)
            return
        assert self._loop is not None
        due = self._loop.time() + max(self.delay, 0.0)
        if self._inbox:  # never overtake a message still waiting: MQTT keeps the order
            due = max(due, self._inbox[-1][0])
        self._inbox.append((due, request))
        if self._inbox_timer is None:
            self._inbox_timer = self._loop.call_at(due, self._act_on_due)

    def _act_on_due(self) -> None:
        assert self._loop is not None
        self._inbox_timer = None
        self._act(self._inbox.popleft()[1])
        while self._inbox and self._inbox[0][0] <= self._loop.time():
            self._act(self._inbox.popleft()[1])
        if self._inbox:
            self._inbox_timer = self._loop.call_at(self._inbox[0][0], self._act_on_due)

    def _act(self, request: Request) -> None:
        firmware = self.firmware
        if request.kind is Kind.INVALID or (self.refuse and request.is_write):
            self._send(firmware.refusal(request))
        elif request.kind is Kind.QUERY:
            if not self.silent:
                self._send(firmware.query_answer(request, self._snapshot()))
        elif request.kind is Kind.PULSE_TIME:
            channel = request.channels[0]
            if request.pulse_time is not None:
                # Setting PulseTime ends a pulse under way, as Tasmota does.
                self._pulse_times[channel] = request.pulse_time
                self._cancel_return(channel)
            setting = self._pulse_times.get(channel, 0)
            self._send(firmware.pulse_time_answer(channel, setting, self._remaining(channel)))
        else:
            was = dict(self._states)
            for switch in request.switches:
                state = was[switch.channel].inverse() if switch.state is None else switch.state
                if not self.stuck:
                    self._switch(switch.channel, state, "MQTT", switch.return_after)
            self._send(firmware.switch_answer(request, was))
            self._report([switch.channel for switch in request.switches], was)

    def _report(self, channels: Sequence[int], was: Mapping[int, RelayState] | None = None) -> None:
        """Publish the channels' states; ``was``: only those changed, if the firmware says so."""
        if was is not None and not self.firmware.reports_unchanged:
            channels = [c for c in channels if self._states[c] is not was[c]]
        if not self.silent and channels:
            self._send(self.firmware.state_reports(self._snapshot(), channels))

    def _snapshot(self) -> Snapshot:
        return Snapshot(dict(self._states), dict(self._sources), time.time())

    def _send(self, messages: Iterable[Outgoing]) -> None:
        connection = self._connection
        messages = list(messages)
        if connection is None or not connection.is_connected or not messages:
            return  # a device without its connection says nothing, as a real one
        assert self._loop is not None
        # gather starts one task per publish, in order, and each hands its message to paho
        # at once: the broker gets them in this order.
        task = self._loop.create_task(
            _publish_all(connection, messages), name=f"mqtt-sim-{self.id}-publish"
        )
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)


async def _publish_all(connection: MqttConnection, messages: list[Outgoing]) -> None:
    results = await asyncio.gather(
        *(connection.publish(m.topic, m.payload, retain=m.retain) for m in messages),
        return_exceptions=True,
    )
    for message, result in zip(messages, results, strict=True):
        if isinstance(result, MqttError):
            log.warning("simulated device could not publish %s: %s", message.topic, result)
        elif isinstance(result, BaseException):
            raise result
