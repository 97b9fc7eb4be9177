"""Specification of the MQTT relay, over a real Mosquitto broker, against simulated firmware.

Each test starts its own broker, a ``SimulatedMqttDevice`` of the preset under
test with its own connection, and the relay on stovectl's connection. Nothing
sleeps to synchronise: a ``Watch`` on the relay's own connection sees each
message in the same dispatch as the relay, so once it has seen a message the
relay has too; an observer Probe subscribed to ``#`` with retain-as-published
sees every message as it was published, up to a barrier it sends itself
(Mosquitto handles messages one at a time, in order). Only where the behaviour
under test is the passage of time (a device-side pulse, a lock that must not
end) does a test wait, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import paho.mqtt.client as paho
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from stovectl.devices.base import RelayState
from stovectl.devices.mqtt import MqttRelay
from stovectl.devices.mqtt_presets import Report, build_preset
from stovectl.errors import DeviceRefused, DeviceUnavailable
from stovectl.mqtt.connection import Message, MqttConnection
from stovectl.mqtt.options import ConnectionOptions
from stovectl.settings.mqtt import MqttDeviceSettings
from stovectl.sim.mqtt_device import SimulatedMqttDevice
from tests.support.broker import PASSWORDS, Broker, free_port, running_broker
from tests.support.mqtt_probe import REPLY_TIMEOUT_SECONDS, Probe

T = TypeVar("T")
ON, OFF = RelayState.ON, RelayState.OFF
BASE = "stovectl/kitchen"
PULSE_SECONDS = 0.5
MARGIN_SECONDS = 0.7
"""How long past a pulse's end a device that was told to stay has to prove it stays."""
WAIT_SECONDS = 5.0
SHORT_TIMEOUT = "300ms"
_numbers = itertools.count(1)

DEVICES: dict[str, dict[str, Any]] = {
    "tasmota": {"topic": "hob", "channels": 2},
    "zigbee2mqtt": {"topic": "zigbee2mqtt/hob_relay"},
    "shelly": {"topic": "shelly/hob", "channels": 2},
    "esphome": {"topic": "esphome/hob", "channels": 2},
    "generic": {
        "channels": 2,
        "command_topic": "relays/hob/{channel}/set",
        "state_topic": "relays/hob/{channel}/state",
        "availability_topic": "relays/hob/status",
    },
}
PRESETS = list(DEVICES)
# The state each preset's device returns from by itself, and the extra settings it needs.
PULSES: list[Any] = [
    pytest.param("tasmota", ON, {}, id="tasmota"),
    pytest.param("tasmota", OFF, {"power_on_state_5": True}, id="tasmota-power-on-state-5"),
    pytest.param("zigbee2mqtt", ON, {}, id="zigbee2mqtt"),
    pytest.param("shelly", OFF, {}, id="shelly-off"),
    pytest.param("shelly", ON, {}, id="shelly-on"),
]


def device_settings(preset: str, **fields: Any) -> MqttDeviceSettings:
    values = {"kind": "mqtt", "id": "hob", "preset": preset, **DEVICES[preset], **fields}
    return MqttDeviceSettings.model_validate(values)


def options(broker: Broker, role: str, **fields: Any) -> ConnectionOptions:
    return ConnectionOptions(
        host=broker.host, port=broker.port, client_id=f"{role}-{next(_numbers)}",
        clean_start=True, session_expiry_seconds=0, reconnect_max_seconds=0.5, **fields,
    )


@pytest.fixture
def observer(broker: Broker) -> Iterator[Probe]:
    """A Probe that receives every message on ``broker`` with its retain flag as published."""
    probe = Probe(broker)
    probe.start()
    assert not probe.connack().is_failure
    _result, mid = probe.client.subscribe(
        "#", options=SubscribeOptions(qos=1, retainAsPublished=True)
    )
    assert probe.subacks.get(timeout=REPLY_TIMEOUT_SECONDS)[0] == mid
    yield probe
    probe.close()


def heard(probe: Probe) -> list[paho.MQTTMessage]:
    """Every message the probe received until a barrier it publishes now comes back."""
    barrier = f"test/barrier/{uuid.uuid4().hex}"
    probe.publish(barrier, b"")
    messages: list[paho.MQTTMessage] = []
    while True:
        try:
            message = probe.messages.get(timeout=REPLY_TIMEOUT_SECONDS)
        except queue.Empty:
            raise AssertionError("the barrier never came back") from None
        if message.topic == barrier:
            return messages
        messages.append(message)


class Watch:
    """Parses every message the relay gets, in the same dispatch, on the relay's connection.

    It subscribes to the relay's own filters, adding a handler to each rather than a
    subscription: an overlapping one (``#``) would make the broker send copies.
    """

    def __init__(self, settings: MqttDeviceSettings, connection: MqttConnection) -> None:
        self._preset = build_preset(settings, BASE)
        self._waiting: list[tuple[Callable[[Report], bool], asyncio.Future[None]]] = []
        for topic_filter in self._preset.filters:
            connection.subscribe(topic_filter, self.on_message)

    def on_message(self, message: Message) -> None:
        report = self._preset.parse(message)
        for predicate, future in self._waiting:
            if not future.done() and predicate(report):
                future.set_result(None)

    def expect(self, predicate: Callable[[Report], bool]) -> asyncio.Future[None]:
        """A future done once a message satisfies ``predicate``; ask before acting."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((predicate, future))
        return future

    def expect_state(self, channel: int, state: RelayState) -> asyncio.Future[None]:
        return self.expect(lambda report: report.states.get(channel) is state)

    def expect_available(self, available: bool) -> asyncio.Future[None]:
        return self.expect(lambda report: report.available is available)


@dataclass
class Rig:
    relay: MqttRelay
    device: SimulatedMqttDevice
    connection: MqttConnection
    watch: Watch
    settings: MqttDeviceSettings


@contextlib.asynccontextmanager
async def rig(
    broker: Broker, preset: str, faults: dict[str, Any] | None = None, **fields: Any
) -> AsyncIterator[Rig]:
    """A started simulated device (with ``faults`` set), then the relay on a connection of its own.

    Everything is closed afterwards.
    """
    settings = device_settings(preset, **fields)
    device = SimulatedMqttDevice(settings, options(broker, "device"))
    connection = MqttConnection(options(broker, "stovectl"))
    relay = MqttRelay(settings, connection, BASE)
    try:
        await device.start()
        for name, value in (faults or {}).items():
            setattr(device, name, value)
        await relay.start()
        watch = Watch(settings, connection)
        assert await connection.start(wait_seconds=WAIT_SECONDS)
        yield Rig(relay, device, connection, watch, settings)
    finally:
        await relay.close()
        await device.close()
        await connection.close()


def command_topics(settings: MqttDeviceSettings) -> set[str]:
    """Every topic the relay publishes commands or queries on (a re-subscription publishes
    nothing)."""
    preset = build_preset(settings, BASE)
    return {command.topic for n in range(1, settings.channels + 1)
            for command in [*preset.write(n, ON), *preset.query(n)] if not command.resubscribe}


async def within(awaitable: Awaitable[T], seconds: float = WAIT_SECONDS) -> T:
    return await asyncio.wait_for(awaitable, seconds)


# -- writing and reading -------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_write_is_verified_by_the_next_report(
    real: Callable[[Awaitable[None]], None], broker: Broker, preset: str
) -> None:
    """A write reaches the device and the read after it returns the state the device reports."""

    async def scenario() -> None:
        async with rig(broker, preset) as r:
            channel = r.settings.channels
            await r.relay.write(channel, ON)
            states = await r.relay.read()
            assert states[channel] is ON
            assert r.device.state(channel) is ON
            assert states == {n: r.device.state(n) for n in range(1, channel + 1)}
            await r.relay.write(channel, OFF)
            assert (await r.relay.read())[channel] is OFF
            assert r.device.state(channel) is OFF

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_a_stuck_relay_reads_its_old_state(
    real: Callable[[Awaitable[None]], None], broker: Broker, preset: str
) -> None:
    """A device that answers but does not move is read back in its old state, not the asked one."""

    async def scenario() -> None:
        async with rig(broker, preset, timeout=SHORT_TIMEOUT) as r:
            r.device.stuck = True
            await r.relay.write(1, ON)
            assert (await r.relay.read())[1] is OFF
            assert r.device.state(1) is OFF

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_only_a_report_after_the_write_verifies_it(
    real: Callable[[Awaitable[None]], None], broker: Broker, preset: str
) -> None:
    """A device that switches but never reports is never verified, whatever it said before.

    Where the state is retained (Zigbee2MQTT, ESPHome, generic), the read answers with
    the last report there is, after waiting for a newer one: the old state, so the
    write is not verified. Elsewhere there is no report at all.
    """

    async def scenario() -> None:
        # Silent before the relay listens, so no answer to a query is on its way later:
        # retained states (Zigbee2MQTT, ESPHome, generic) are the only reports it gets.
        async with rig(broker, preset, {"silent": True}, timeout=SHORT_TIMEOUT) as r:
            if preset in ("zigbee2mqtt", "esphome", "generic"):
                assert (await r.relay.read())[1] is OFF
            else:
                with pytest.raises(DeviceUnavailable, match="no state report"):
                    await r.relay.read()
            await r.relay.write(1, ON)
            if preset in ("esphome", "generic"):  # asked by re-subscribing: the old state
                assert (await r.relay.read())[1] is OFF
            else:
                with pytest.raises(DeviceUnavailable, match=r"no state report within 0\.3s"):
                    await r.relay.read()
            assert r.device.state(1) is ON

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_a_switch_by_hand_is_read(
    real: Callable[[Awaitable[None]], None], broker: Broker, preset: str
) -> None:
    """A device switched behind stovectl's back reports it, and the next read shows it."""

    async def scenario() -> None:
        async with rig(broker, preset) as r:
            assert (await r.relay.read())[1] is OFF
            seen = r.watch.expect_state(1, ON)
            r.device.switch_by_hand(1, ON)
            await within(seen)
            assert (await r.relay.read())[1] is ON

    real(scenario())


def test_an_answer_older_than_the_write_does_not_hide_its_report(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """A report the device gave before taking the write is superseded by the write's own."""

    async def scenario() -> None:
        async with rig(broker, "tasmota") as r:
            assert (await r.relay.read())[1] is OFF
            offline = r.watch.expect_available(False)
            await r.device.go_offline()
            await within(offline)
            r.device.delay = 0.2  # it answers the relay's query (OFF) after the write is sent
            online = r.watch.expect_available(True)
            await r.device.come_online()
            await within(online)
            old_answer = r.watch.expect_state(1, OFF)
            await r.relay.write(1, ON)
            assert (await r.relay.read())[1] is ON
            assert old_answer.done()
            assert r.device.state(1) is ON

    real(scenario())


def test_an_unverified_device_reads_only_what_it_reported(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """With verify = false, writes are only acknowledged and reads never wait for reports."""

    async def scenario() -> None:
        async with rig(broker, "generic", state_topic="", verify=False) as r:
            assert not r.relay.capabilities.read_back
            switched = asyncio.Event()
            r.device.wire(lambda channel, state: switched.set() if state is ON else None)
            await r.relay.write(1, ON)
            await within(switched.wait())
            assert await r.relay.read() == {}

    real(scenario())


def test_fresh_states_are_read_without_traffic(
    real: Callable[[Awaitable[None]], None], broker: Broker, observer: Probe
) -> None:
    """While every channel has reported since its last write, a read publishes nothing."""

    async def scenario() -> None:
        async with rig(broker, "tasmota") as r:
            await r.relay.read()
            await asyncio.to_thread(heard, observer)
            assert await r.relay.read() == {1: OFF, 2: OFF}
            published = await asyncio.to_thread(heard, observer)
            assert [m.topic for m in published if m.topic in command_topics(r.settings)] == []

    real(scenario())


def test_a_relay_started_on_a_live_connection_asks_at_once(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """A relay started after the broker connection queries the device without waiting for a read."""

    async def scenario() -> None:
        settings = device_settings("shelly")
        device = SimulatedMqttDevice(settings, options(broker, "device"))
        connection = MqttConnection(options(broker, "stovectl"))
        relay = MqttRelay(settings, connection, BASE)
        watch = Watch(settings, connection)
        try:
            await device.start()
            assert await connection.start(wait_seconds=WAIT_SECONDS)
            answered = watch.expect(lambda report: report.reply is not None and 1 in report.states)
            await relay.start()
            await within(answered)
            assert [c.text for c in device.commands if "GetStatus" in c.text]
        finally:
            await relay.close()
            await device.close()
            await connection.close()

    real(scenario())


# -- pulses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "state", "fields"), PULSES)
def test_a_pulse_returns_by_itself_and_a_lock_does_not(
    real: Callable[[Awaitable[None]], None],
    broker: Broker,
    preset: str,
    state: RelayState,
    fields: dict[str, Any],
) -> None:
    """After a pulse the device switches back by itself; a plain write during a pulse stays."""

    async def scenario() -> None:
        async with rig(broker, preset, **fields) as r:
            relay, back = r.relay, state.inverse()
            assert relay.capabilities.device_pulse
            assert relay.pulse_supported(1, state)
            assert not relay.pulse_supported(1, back) or preset == "shelly"
            await relay.write(1, back)
            assert (await relay.read())[1] is back

            await relay.pulse(1, state, PULSE_SECONDS)
            assert (await relay.read())[1] is state
            # Asked only now: the device said ``state`` since, so older reports are in.
            returned = r.watch.expect_state(1, back)
            await within(returned)
            assert (await relay.read())[1] is back
            assert r.device.state(1) is back

            await relay.pulse(1, state, PULSE_SECONDS)
            await relay.write(1, state)  # a lock, while the pulse is under way
            assert (await relay.read())[1] is state
            returned = r.watch.expect_state(1, back)
            with pytest.raises(TimeoutError):
                await within(returned, PULSE_SECONDS + MARGIN_SECONDS)
            assert r.device.state(1) is state
            assert (await relay.read())[1] is state

    real(scenario())


@pytest.mark.parametrize(
    ("preset", "fields", "state"),
    [
        pytest.param("tasmota", {}, OFF, id="tasmota-off"),
        pytest.param("tasmota", {"device_pulse": False}, ON, id="tasmota-no-device-pulse"),
        pytest.param("zigbee2mqtt", {}, OFF, id="zigbee2mqtt-off"),
        pytest.param("zigbee2mqtt", {"channels": 2}, ON, id="zigbee2mqtt-two-channels"),
        pytest.param("esphome", {}, ON, id="esphome"),
        pytest.param("generic", {}, OFF, id="generic"),
    ],
)
def test_an_impossible_pulse_is_refused_before_sending(
    real: Callable[[Awaitable[None]], None],
    broker: Broker,
    observer: Probe,
    preset: str,
    fields: dict[str, Any],
    state: RelayState,
) -> None:
    """A pulse the firmware cannot return from is refused, and nothing reaches the device."""

    async def scenario() -> None:
        async with rig(broker, preset, **fields) as r:
            assert not r.relay.pulse_supported(1, state)
            await r.relay.read()
            await asyncio.to_thread(heard, observer)
            with pytest.raises(DeviceRefused, match="cannot pulse"):
                await r.relay.pulse(1, state, PULSE_SECONDS)
            published = await asyncio.to_thread(heard, observer)
            ours = command_topics(r.settings)
            assert [m.topic for m in published if m.topic in ours] == []

    real(scenario())


# -- refusals, losses and absences -----------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_an_offline_device_is_unavailable_until_it_is_back(
    real: Callable[[Awaitable[None]], None], broker: Broker, preset: str
) -> None:
    """After the device's last will, reads fail; once it is back, reads show fresh states."""

    async def scenario() -> None:
        async with rig(broker, preset) as r:
            assert (await r.relay.read())[1] is OFF
            offline = r.watch.expect_available(False)
            await r.device.go_offline()
            await within(offline)
            with pytest.raises(DeviceUnavailable, match="the device says it is offline"):
                await r.relay.read()

            online = r.watch.expect_available(True)
            await r.device.come_online()
            await within(online)
            seen = r.watch.expect_state(1, ON)
            r.device.switch_by_hand(1, ON)
            await within(seen)
            assert (await r.relay.read())[1] is ON

    real(scenario())


def test_a_tasmota_write_missed_while_away_is_not_verified_by_its_return(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """A lock written while the relay is away is not verified by the state it reports on its
    return (its pulse still running): the PulseTime answer is awaited, and a second write
    (the actuator's retry) is verified once the device took it."""

    async def scenario() -> None:
        async with rig(broker, "tasmota", timeout=SHORT_TIMEOUT) as r:
            await r.relay.pulse(1, ON, 30)
            assert (await r.relay.read())[1] is ON
            offline = r.watch.expect_available(False)
            await r.device.go_offline()
            await within(offline)
            await r.relay.write(1, ON)  # the lock: PulseTime1 0, POWER1 ON, lost
            online = r.watch.expect_available(True)
            await r.device.come_online()
            await within(online)
            with pytest.raises(DeviceUnavailable, match=r"no answer .* \(PulseTime1=0\)"):
                await r.relay.read()
            assert r.device.pulse_time(1) == 130  # the pulse runs on: not verified, rightly

            await r.relay.write(1, ON)
            assert (await r.relay.read())[1] is ON
            assert r.device.pulse_time(1) == 0

    real(scenario())


def test_zigbee2mqtt_1x_availability_words_are_understood(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """A Zigbee2MQTT 1.x bridge says plain offline, and reads fail just the same."""

    async def scenario() -> None:
        settings = device_settings("zigbee2mqtt")
        device = SimulatedMqttDevice(settings, options(broker, "device"), legacy_availability=True)
        connection = MqttConnection(options(broker, "stovectl"))
        relay = MqttRelay(settings, connection, BASE)
        try:
            await device.start()
            await relay.start()
            watch = Watch(settings, connection)
            assert await connection.start(wait_seconds=WAIT_SECONDS)
            assert (await relay.read())[1] is OFF
            offline = watch.expect_available(False)
            await device.go_offline()
            await within(offline)
            with pytest.raises(DeviceUnavailable, match="offline"):
                await relay.read()
        finally:
            await relay.close()
            await device.close()
            await connection.close()

    real(scenario())


def test_a_shelly_refusal_is_device_refused(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """A Shelly's RPC error reply becomes DeviceRefused with its code and message."""

    async def scenario() -> None:
        async with rig(broker, "shelly") as r:
            r.device.refuse = True
            with pytest.raises(DeviceRefused, match=r"error -103 \(.+\)"):
                await r.relay.write(1, ON)
            with pytest.raises(DeviceRefused, match="-103"):
                await r.relay.pulse(1, ON, PULSE_SECONDS)
            assert r.device.state(1) is OFF

    real(scenario())


def test_a_shelly_without_reply_is_unavailable(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """A Switch.Set that gets no reply within the timeout is DeviceUnavailable, maybe acted."""

    async def scenario() -> None:
        async with rig(broker, "shelly", timeout=SHORT_TIMEOUT) as r:
            r.device.loss_in = 1.0
            with pytest.raises(DeviceUnavailable, match=r"no RPC reply within 0\.3s") as caught:
                await r.relay.write(1, ON)
            assert caught.value.may_have_acted

    real(scenario())


def test_a_tasmota_refusal_is_read_back_as_the_old_state(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """A Tasmota answering Command Error is not a state: the read shows the relay unchanged."""

    async def scenario() -> None:
        async with rig(broker, "tasmota", timeout=SHORT_TIMEOUT) as r:
            r.device.refuse = True
            await r.relay.write(1, ON)
            assert (await r.relay.read())[1] is OFF

    real(scenario())


def test_a_publish_the_acl_denies_is_refused_by_the_broker(
    real: Callable[[Awaitable[None]], None],
) -> None:
    """A command topic the broker's ACL denies is DeviceRefused naming the topic and reason 135."""

    async def scenario(broker: Broker) -> None:
        settings = MqttDeviceSettings.model_validate({
            "kind": "mqtt", "id": "hob", "preset": "generic",
            "command_topic": "denied/relay/set", "state_topic": "relays/hob/state",
        })
        connection = MqttConnection(
            options(broker, "stovectl", username="stovectl", password=PASSWORDS["stovectl"])
        )
        relay = MqttRelay(settings, connection, BASE)
        try:
            await relay.start()
            assert await connection.start(wait_seconds=WAIT_SECONDS)
            with pytest.raises(DeviceRefused) as caught:
                await relay.write(1, OFF)
            message = str(caught.value)
            assert "'denied/relay/set'" in message
            assert "not authorised" in message
            assert "135" in message
        finally:
            await relay.close()
            await connection.close()

    with running_broker("password") as broker:
        real(scenario(broker))


def test_without_the_broker_nothing_is_sent(real: Callable[[Awaitable[None]], None]) -> None:
    """With the broker away, start succeeds and writes, pulses and reads fail as never sent."""

    async def scenario() -> None:
        away = ConnectionOptions(host="127.0.0.1", port=free_port(), client_id="stovectl-away",
                                 reconnect_max_seconds=0.5)
        connection = MqttConnection(away)
        relay = MqttRelay(device_settings("tasmota"), connection, BASE)
        try:
            await relay.start()
            assert not await connection.start()
            attempts: list[Callable[[], Awaitable[None]]] = [
                lambda: relay.write(1, OFF), lambda: relay.pulse(1, ON, PULSE_SECONDS)
            ]
            for attempt in attempts:
                with pytest.raises(DeviceUnavailable, match="not connected to the broker") as no:
                    await attempt()
                assert no.value.may_have_acted is False
            with pytest.raises(DeviceUnavailable, match="not connected to the broker"):
                await relay.read()
        finally:
            await relay.close()
            await relay.close()
            await connection.close()

    real(scenario())


def test_a_broker_restart_makes_states_stale_until_asked_again(
    real: Callable[[Awaitable[None]], None], broker: Broker
) -> None:
    """While the broker is away reads fail; after reconnecting the relay asks and reads afresh."""

    async def scenario() -> None:
        async with rig(broker, "tasmota") as r:
            assert (await r.relay.read())[1] is OFF
            lost, back = asyncio.Event(), asyncio.Event()
            r.connection.on_disconnect(lost.set)
            r.connection.on_connect(back.set)
            # The device reconnects on its own; whichever of the two is back first, the
            # relay's query or the device's own reports on connecting make the state fresh.
            device_back = r.watch.expect_available(True)
            broker.kill9()
            await within(lost.wait())
            with pytest.raises(DeviceUnavailable, match="not connected") as caught:
                await r.relay.write(1, ON)
            assert caught.value.may_have_acted is False
            with pytest.raises(DeviceUnavailable, match="not connected"):
                await r.relay.read()

            broker.start()
            await within(back.wait())
            await within(device_back)
            assert (await r.relay.read())[1] is OFF

    real(scenario())


# -- what goes on the wire -------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_commands_are_never_retained_nor_toggles(
    real: Callable[[Awaitable[None]], None], broker: Broker, observer: Probe, preset: str
) -> None:
    """Every write, pulse and query goes out with retain false, and none asks for a toggle."""

    async def scenario() -> None:
        async with rig(broker, preset) as r:
            relay = r.relay
            await relay.write(1, ON)
            await relay.read()
            if relay.pulse_supported(1, ON):
                await relay.pulse(1, ON, PULSE_SECONDS)
            await relay.write(1, OFF)
            await relay.read()
            messages = await asyncio.to_thread(heard, observer)
            assert r.device.toggles == []

        ours = command_topics(r.settings)
        sent = [m for m in messages if m.topic in ours]
        assert len(sent) >= 2, [m.topic for m in messages]
        assert [m.topic for m in sent if m.retain] == []
        assert all(m.qos == 1 for m in sent)

    real(scenario())


def test_unavailability_is_logged_once_each_way(
    real: Callable[[Awaitable[None]], None], broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A device going offline and coming back is logged once each, without a traceback."""

    caplog.set_level(logging.INFO, logger="stovectl.devices.mqtt")

    async def scenario() -> None:
        async with rig(broker, "esphome") as r:
            for _ in range(2):
                offline = r.watch.expect_available(False)
                await r.device.go_offline()
                await within(offline)
                with pytest.raises(DeviceUnavailable):
                    await r.relay.read()
                online = r.watch.expect_available(True)
                await r.device.come_online()
                await within(online)

    real(scenario())
    records = [r for r in caplog.records if r.name == "stovectl.devices.mqtt"]
    assert [r.getMessage() for r in records] == [
        "device hob says it is offline", "device hob is back online",
    ] * 2
    assert all(r.exc_info is None for r in records)


@pytest.mark.parametrize("preset", ["esphome", "generic"])
def test_writing_the_state_a_device_already_has_is_verified(
    real: Callable[[Awaitable[None]], None], broker: Broker, preset: str
) -> None:
    """ESPHome reports no unchanged state; re-subscribing brings its retained one back."""

    async def scenario() -> None:
        async with rig(broker, preset) as r:
            assert (await r.relay.read())[1] is OFF
            await r.relay.write(1, OFF)
            assert (await r.relay.read())[1] is OFF
            await r.relay.write(1, ON)
            assert (await r.relay.read())[1] is ON
            await r.relay.write(1, ON)
            assert (await r.relay.read())[1] is ON

    real(scenario())
