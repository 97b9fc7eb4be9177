"""Specification of the simulated MQTT relays, driven through a real Mosquitto.

Each test starts a device on the module's broker, on topics of its own, and plays
the controller with a paho probe (tests.support.mqtt_probe): it subscribes,
publishes commands and waits for the device's messages with a timeout. The
probe blocks, so it runs in ``asyncio.to_thread`` beside the device's loop.
Silence can only be shown by waiting: those tests wait a short window for a
message that must not come.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
from paho.mqtt.client import MQTTMessage

from stovectl.devices.base import RelayState
from stovectl.mqtt.connection import MqttError
from stovectl.mqtt.options import ConnectionOptions
from stovectl.settings.mqtt import MqttDeviceSettings
from stovectl.sim.mqtt_device import SimulatedMqttDevice
from tests.support.broker import Broker, free_port, running_broker
from tests.support.mqtt_probe import Probe

ON, OFF = RelayState.ON, RelayState.OFF
PRESETS = ["tasmota", "zigbee2mqtt", "shelly", "esphome", "generic"]
WITH_QUERY = ["tasmota", "zigbee2mqtt", "shelly"]
TOGGLING = ["tasmota", "zigbee2mqtt", "shelly", "esphome"]
RETAINING = ["zigbee2mqtt", "esphome", "generic"]
CLIENT = "stovectl/hob/shelly-relay"  # the Shelly RPC source the daemon would choose
WAIT_SECONDS = 5.0
SILENCE_SECONDS = 0.5
PULSE_SECONDS = 0.3
EARLY_TOLERANCE_SECONDS = 0.05  # timers may fire up to a clock tick early
_numbers = itertools.count(1)

Run = Callable[[Coroutine[Any, Any, Any]], Any]


# The set-up: a broker for the module, a loop and a probe per test.


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with running_broker("anonymous") as started:
        yield started


@pytest.fixture
def probe(broker: Broker) -> Iterator[Probe]:
    client = Probe(broker)
    client.start()
    try:
        assert not client.connack().is_failure
        yield client
    finally:
        client.close()


def base_topic(preset: str) -> str:
    """Topics of the test's own: the module's broker keeps every test's retained messages."""
    return {"tasmota": "hob{}", "zigbee2mqtt": "zigbee2mqtt/hob{}", "shelly": "shelly/hob{}",
            "esphome": "esphome/hob{}", "generic": "relays/hob{}"}[preset].format(next(_numbers))


def device_settings(preset: str, channels: int = 1, **fields: Any) -> MqttDeviceSettings:
    topic = base_topic(preset)
    if preset == "generic":
        fields = {"command_topic": f"{topic}/{{channel}}/set",
                  "state_topic": f"{topic}/{{channel}}/state",
                  "availability_topic": f"{topic}/available", **fields}
    return MqttDeviceSettings.model_validate(
        {"kind": "mqtt", "id": "relay", "preset": preset, "topic": topic, "channels": channels,
         **fields})


def options(broker: Broker) -> ConnectionOptions:
    return ConnectionOptions(broker.host, broker.port, f"sim-device-{next(_numbers)}")


@contextlib.asynccontextmanager
async def running(
    broker: Broker, preset: str, channels: int = 1, **fields: Any
) -> AsyncIterator[SimulatedMqttDevice]:
    device = SimulatedMqttDevice(device_settings(preset, channels, **fields), options(broker))
    await device.start()
    try:
        yield device
    finally:
        await device.close()


# The controller's side, per preset.


def watched(device: SimulatedMqttDevice) -> list[str]:
    """Topic filters that see everything the device publishes."""
    topic = device.settings.topic
    return {
        "tasmota": [f"stat/{topic}/#", f"tele/{topic}/#"],
        "zigbee2mqtt": [topic, f"{topic}/availability"],
        "shelly": [f"{topic}/status/#", f"{topic}/events/#", f"{topic}/online", f"{CLIENT}/rpc"],
        "esphome": [f"{topic}/#"],
        "generic": [f"{topic}/#"],
    }[device.settings.preset]


def command(device: SimulatedMqttDevice, state: RelayState | str, channel: int = 1,
            **extra: Any) -> tuple[str, bytes]:
    """The topic and payload that ask ``device`` to switch ``channel`` (or toggle it)."""
    topic, word = device.settings.topic, str(state).upper()
    match device.settings.preset:
        case "tasmota":
            return f"cmnd/{topic}/POWER{channel}", word.encode()
        case "zigbee2mqtt":
            key = "state" if device.settings.channels == 1 else f"state_l{channel}"
            return f"{topic}/set", json.dumps({key: word, **extra}).encode()
        case "shelly":
            method, params = "Switch.Set", {"id": channel - 1, "on": state is ON, **extra}
            if word == "TOGGLE":
                method, params = "Switch.Toggle", {"id": channel - 1}
            body = {"id": next(_numbers), "src": CLIENT, "method": method, "params": params}
            return f"{topic}/rpc", json.dumps(body).encode()
        case "esphome":
            return f"{topic}/switch/{device.settings.esphome_switches[channel - 1]}/command", \
                word.encode()
        case _:
            return f"{topic}/{channel}/set", word.encode()


def report_topic(device: SimulatedMqttDevice, channel: int = 1) -> str:
    """Where ``device`` reports the state of ``channel``."""
    topic = device.settings.topic
    return {
        "tasmota": f"stat/{topic}/POWER" if device.settings.channels == 1
        else f"stat/{topic}/POWER{channel}",
        "zigbee2mqtt": topic,
        "shelly": f"{topic}/status/switch:{channel - 1}",
        "esphome": f"{topic}/switch/{device.settings.esphome_switches[channel - 1]}/state",
        "generic": f"{topic}/{channel}/state",
    }[device.settings.preset]


def reported_state(device: SimulatedMqttDevice, message: MQTTMessage, channel: int = 1) -> str:
    """The state a report says, as ON or OFF."""
    match device.settings.preset:
        case "zigbee2mqtt":
            key = "state" if device.settings.channels == 1 else f"state_l{channel}"
            return str(json.loads(message.payload)[key])
        case "shelly":
            return "ON" if json.loads(message.payload)["output"] else "OFF"
        case _:
            return str(message.payload.decode())


def availability(device: SimulatedMqttDevice) -> tuple[str, str, str]:
    """The device's availability topic and its online and offline words."""
    topic = device.settings.topic
    return {
        "tasmota": (f"tele/{topic}/LWT", "Online", "Offline"),
        "zigbee2mqtt": (f"{topic}/availability", '{"state":"online"}', '{"state":"offline"}'),
        "shelly": (f"{topic}/online", "true", "false"),
        "esphome": (f"{topic}/status", "online", "offline"),
        "generic": (f"{topic}/available", "online", "offline"),
    }[device.settings.preset]


class Controller:
    """The probe, awaited from the device's loop."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    async def watch(self, *topic_filters: str) -> None:
        for topic_filter in topic_filters:
            await asyncio.to_thread(self.probe.subscribe, topic_filter)

    async def send(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        if not retain:
            await asyncio.to_thread(self.probe.publish, topic, data)
            return
        info = self.probe.client.publish(topic, data, qos=1, retain=True)
        await asyncio.to_thread(info.wait_for_publish, WAIT_SECONDS)

    async def expect(self, topic: str, within_seconds: float = WAIT_SECONDS) -> MQTTMessage:
        """The next message on ``topic``; others are passed over."""
        deadline = time.monotonic() + within_seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no message on {topic} within {within_seconds}s")
            try:
                message = await asyncio.to_thread(self.probe.next_message, left)
            except AssertionError:
                continue
            if message.topic == topic:
                return message

    async def expect_text(self, topic: str) -> str:
        return (await self.expect(topic)).payload.decode()

    async def expect_json(self, topic: str) -> Any:
        return json.loads((await self.expect(topic)).payload)

    async def assert_quiet(self, topic: str, seconds: float = SILENCE_SECONDS) -> None:
        with pytest.raises(AssertionError, match="no message"):
            message = await self.expect(topic, seconds)
            pytest.fail(f"unexpected {message.payload!r} on {topic}")


@contextlib.asynccontextmanager
async def session(
    broker: Broker, probe: Probe, preset: str, channels: int = 1, *, settle: bool = True,
    **fields: Any,
) -> AsyncIterator[tuple[SimulatedMqttDevice, Controller]]:
    """A device, and a controller watching all it publishes (past its start-up reports)."""
    settings = device_settings(preset, channels, **fields)
    device = SimulatedMqttDevice(settings, options(broker))
    controller = Controller(probe)
    await controller.watch(*watched(device))
    await device.start()
    if settle:
        await controller.expect(report_topic(device, channels))
    try:
        yield device, controller
    finally:
        await device.close()


@contextlib.contextmanager
def late_probe(broker: Broker) -> Iterator[Controller]:
    """A second controller, for what a subscriber arriving later gets."""
    client = Probe(broker)
    client.start()
    try:
        assert not client.connack().is_failure
        yield Controller(client)
    finally:
        client.close()


async def until(condition: Callable[[], bool]) -> None:
    """Poll an observable condition of the device, on its loop, until true or WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not true within {WAIT_SECONDS}s"
        await asyncio.sleep(0.01)  # polling an observable with a deadline, not a guess


def record(device: SimulatedMqttDevice) -> list[tuple[int, RelayState]]:
    switches: list[tuple[int, RelayState]] = []
    device.wire(lambda channel, state: switches.append((channel, state)))
    return switches


# Every preset: availability, commands, reports.


@pytest.mark.parametrize("preset", PRESETS)
def test_availability_is_online_at_start_offline_by_the_will_and_online_again(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """Start says online; go_offline makes the broker publish the will; come_online, online."""

    async def scenario() -> None:
        async with session(broker, probe, preset, settle=False) as (device, controller):
            topic, online, offline = availability(device)
            assert await controller.expect_text(topic) == online
            await device.go_offline()
            assert await controller.expect_text(topic) == offline
            assert not device.is_online
            # The broker saw the connection end without a DISCONNECT: a crash, not a goodbye.
            assert f"Client {device.options.client_id} closed its connection" in broker.log
            await device.come_online()
            assert await controller.expect_text(topic) == online
            assert device.is_online

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_a_command_switches_the_relay_and_the_state_report_follows(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """ON then OFF: the relay follows each command and the firmware's report says so."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            switches = record(device)
            for state in (ON, OFF):
                await controller.send(*command(device, state))
                report = await controller.expect(report_topic(device))
                assert reported_state(device, report) == state.upper()
                assert device.state(1) is state
            assert switches == [(1, OFF), (1, ON), (1, OFF)]
            assert [c.retain for c in device.commands] == [False, False]

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_every_channel_starts_off_and_is_reported_at_start(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """At start each channel is OFF, and the device publishes that once connected."""

    async def scenario() -> None:
        async with session(broker, probe, preset, settle=False) as (device, controller):
            assert reported_state(device, await controller.expect(report_topic(device))) == "OFF"
            assert device.state(1) is OFF

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_state_is_retained_only_where_the_firmware_retains_it(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """A late subscriber gets the state at once from Zigbee2MQTT, ESPHome and generic only."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            device.switch_by_hand(1, ON)
            assert reported_state(device, await controller.expect(report_topic(device))) == "ON"
            with late_probe(broker) as late:
                await late.watch(report_topic(device))
                if preset in RETAINING:
                    message = await late.expect(report_topic(device))
                    assert message.retain and reported_state(device, message) == "ON"
                else:
                    await late.assert_quiet(report_topic(device))

    real(scenario())


@pytest.mark.parametrize("preset", WITH_QUERY)
def test_a_query_is_answered_with_the_state(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """Tasmota's empty POWER1, Zigbee2MQTT's get and Shelly's Switch.GetStatus get the state."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            device.switch_by_hand(1, ON)
            await controller.expect(report_topic(device))
            topic = device.settings.topic
            if preset == "tasmota":
                await controller.send(f"cmnd/{topic}/POWER1", b"")
                assert await controller.expect_json(f"stat/{topic}/RESULT") == {"POWER": "ON"}
                assert await controller.expect_text(f"stat/{topic}/POWER") == "ON"
            elif preset == "zigbee2mqtt":
                await controller.send(f"{topic}/get", '{"state":""}')
                assert await controller.expect_json(topic) == {"state": "ON", "linkquality": 120}
            else:
                await controller.send(f"{topic}/rpc", json.dumps({
                    "id": 7, "src": CLIENT, "method": "Switch.GetStatus", "params": {"id": 0}}))
                assert await controller.expect_json(f"{CLIENT}/rpc") == {
                    "id": 7, "src": topic, "dst": CLIENT,
                    "result": {"id": 0, "source": "button", "output": True}}

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_switching_by_hand_is_reported_and_wired(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """The button switches the relay, calls the wiring and publishes the new state."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            switches = record(device)
            device.switch_by_hand(1, ON)
            assert reported_state(device, await controller.expect(report_topic(device))) == "ON"
            assert switches == [(1, OFF), (1, ON)]

    real(scenario())


@pytest.mark.parametrize("preset", TOGGLING)
def test_a_toggle_is_obeyed_and_recorded(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """TOGGLE, Switch.Toggle or {"state":"TOGGLE"} flips the relay, and ``toggles`` keeps it."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            topic, payload = command(device, "toggle")
            await controller.send(topic, payload)
            assert reported_state(device, await controller.expect(report_topic(device))) == "ON"
            assert device.toggles == [(topic, payload, False)]

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_a_retained_command_is_obeyed_and_recorded_as_retained(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """A retained command reaches the device on subscribe too: ``commands`` shows the flag."""

    async def scenario() -> None:
        settings = device_settings(preset)
        device = SimulatedMqttDevice(settings, options(broker))
        controller = Controller(probe)
        await controller.send(*command(device, ON), retain=True)
        await controller.watch(report_topic(device))
        await device.start()
        try:
            while reported_state(device, await controller.expect(report_topic(device))) != "ON":
                pass
            assert [c.retain for c in device.commands] == [True]
        finally:
            await device.close()
            await controller.send(command(device, ON)[0], b"", retain=True)  # clear it

    real(scenario())


# Faults.


@pytest.mark.parametrize("preset", PRESETS)
def test_a_stuck_relay_answers_and_reports_but_does_not_move(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """Stuck, the device answers the command, but its relay and what it reports stay OFF."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            device.stuck = True
            await controller.send(*command(device, ON))
            if preset == "shelly":  # the reply says it was off; nothing changed, so no status
                assert (await controller.expect_json(f"{CLIENT}/rpc"))["result"] == {
                    "was_on": False}
                await controller.assert_quiet(report_topic(device))
            elif preset == "esphome":  # it reports changes only, and nothing changed
                await controller.assert_quiet(report_topic(device))
            else:
                report = await controller.expect(report_topic(device))
                assert reported_state(device, report) == "OFF"
            assert device.state(1) is OFF

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_a_silent_device_switches_but_reports_nothing(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """Silent, the relay follows the command and no state report comes."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            device.silent = True
            await controller.send(*command(device, ON))
            await controller.assert_quiet(report_topic(device))
            assert device.state(1) is ON

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_lost_commands_reach_the_device_but_do_nothing(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """With loss_in 1 every command is recorded as arrived, then dropped: no switch, no report."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            device.loss_in = 1.0
            await controller.send(*command(device, ON))
            await controller.assert_quiet(report_topic(device))
            assert device.state(1) is OFF
            assert len(device.commands) == 1

    real(scenario())


def test_partial_loss_is_reproducible(real: Run, broker: Broker, probe: Probe) -> None:
    """With loss_in 0.5 some of 20 commands are lost, the same ones on every run (seeded)."""

    async def lost_pattern() -> list[bool]:
        async with session(broker, probe, "esphome") as (device, controller):
            device.loss_in = 0.5
            pattern = []
            for n in range(20):
                state = ON if n % 2 == 0 else OFF
                await controller.send(*command(device, state))
                # Ignored by the firmware (and never lost): once it has arrived, so has the
                # command before it, which the device acts on as it arrives.
                await controller.send(*command(device, "garbage"))
                await until(lambda arrived=2 * (n + 1): len(device.commands) == arrived)
                pattern.append(device.state(1) is not state)
            return pattern

    first, second = real(lost_pattern()), real(lost_pattern())
    assert first == second
    assert 0 < sum(first) < 20


def test_a_refusing_tasmota_answers_command_error(real: Run, broker: Broker, probe: Probe) -> None:
    """Refusing, Tasmota answers POWER and PulseTime writes with {"Command":"Error"}."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota") as (device, controller):
            topic = device.settings.topic
            device.refuse = True
            await controller.send(f"cmnd/{topic}/PulseTime1", "3")
            assert await controller.expect_json(f"stat/{topic}/RESULT") == {"Command": "Error"}
            await controller.send(*command(device, ON))
            assert await controller.expect_json(f"stat/{topic}/RESULT") == {"Command": "Error"}
            assert (device.state(1), device.pulse_time(1)) == (OFF, 0)

    real(scenario())


def test_a_refusing_shelly_answers_an_rpc_error(real: Run, broker: Broker, probe: Probe) -> None:
    """Refusing, a Shelly answers Switch.Set with error -103 on the caller's topic."""

    async def scenario() -> None:
        async with session(broker, probe, "shelly") as (device, controller):
            device.refuse = True
            await controller.send(*command(device, ON))
            reply = await controller.expect_json(f"{CLIENT}/rpc")
            assert reply["error"]["code"] == -103 and "result" not in reply
            assert device.state(1) is OFF

    real(scenario())


@pytest.mark.parametrize("preset", ["zigbee2mqtt", "esphome", "generic"])
def test_other_refusing_firmwares_ignore_the_command(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """Refusing, Zigbee2MQTT, ESPHome and generic devices neither switch nor report."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            device.refuse = True
            await controller.send(*command(device, ON))
            await controller.assert_quiet(report_topic(device))
            assert device.state(1) is OFF

    real(scenario())


@pytest.mark.parametrize("preset", PRESETS)
def test_a_delayed_device_acts_late_and_in_order(
    real: Run, broker: Broker, probe: Probe, preset: str
) -> None:
    """With delay, ON and OFF are acted on no sooner than the delay, in the order sent."""

    async def scenario() -> None:
        async with session(broker, probe, preset) as (device, controller):
            switches = record(device)
            device.delay = PULSE_SECONDS
            sent = time.monotonic()
            await controller.send(*command(device, ON))
            await controller.send(*command(device, OFF))
            assert reported_state(device, await controller.expect(report_topic(device))) == "ON"
            assert time.monotonic() - sent >= PULSE_SECONDS - EARLY_TOLERANCE_SECONDS
            assert reported_state(device, await controller.expect(report_topic(device))) == "OFF"
            assert switches == [(1, OFF), (1, ON), (1, OFF)]

    real(scenario())


# Device-side pulses.


async def expect_return(
    controller: Controller, device: SimulatedMqttDevice, state: RelayState, since: float
) -> None:
    """The report of the timed return to ``state``, no sooner than PULSE_SECONDS after ``since``."""
    message = await controller.expect(report_topic(device))
    assert reported_state(device, message) == state.upper()
    assert time.monotonic() - since >= PULSE_SECONDS - EARLY_TOLERANCE_SECONDS
    assert device.state(1) is state


def test_tasmota_pulse_time_turns_off_after_on(real: Run, broker: Broker, probe: Probe) -> None:
    """PulseTime1 3 then POWER1 ON: ON is reported, and OFF 0.3 s later by itself."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota") as (device, controller):
            topic = device.settings.topic
            await controller.send(f"cmnd/{topic}/PulseTime1", "3")
            assert await controller.expect_json(f"stat/{topic}/RESULT") == {
                "PulseTime1": {"Set": 3, "Remaining": 0}}
            sent = time.monotonic()
            await controller.send(*command(device, ON))
            assert await controller.expect_text(report_topic(device)) == "ON"
            await expect_return(controller, device, OFF, sent)

    real(scenario())


def test_tasmota_pulse_time_is_a_setting_for_every_later_on(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """PulseTime stays set: a later bare POWER1 ON (or the button) turns off by itself again."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota") as (device, controller):
            topic = device.settings.topic
            await controller.send(f"cmnd/{topic}/PulseTime1", "3")
            await controller.expect(f"stat/{topic}/RESULT")
            for switch_on in ("command", "button"):
                sent = time.monotonic()
                if switch_on == "command":
                    await controller.send(*command(device, ON))
                else:
                    device.switch_by_hand(1, ON)
                assert await controller.expect_text(report_topic(device)) == "ON"
                await expect_return(controller, device, OFF, sent)
            assert device.pulse_time(1) == 3

    real(scenario())


def test_tasmota_power_on_state_5_turns_on_after_off(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """With PowerOnState 5, PulseTime applies after OFF: the relay turns ON 0.3 s later."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota", power_on_state_5=True) as (device, ctl):
            device.switch_by_hand(1, ON)
            await ctl.expect(report_topic(device))
            await ctl.send(f"cmnd/{device.settings.topic}/PulseTime1", "3")
            sent = time.monotonic()
            await ctl.send(*command(device, OFF))
            assert await ctl.expect_text(report_topic(device)) == "OFF"
            await expect_return(ctl, device, ON, sent)

    real(scenario())


def test_tasmota_pulse_time_0_then_power_cancels_a_pulse(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """A plain write (PulseTime1 0, then POWER1 ON) ends the pulse under way: ON stays ON."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota") as (device, controller):
            topic = device.settings.topic
            await controller.send(f"cmnd/{topic}/PulseTime1", "3")
            await controller.send(*command(device, ON))
            assert await controller.expect_text(report_topic(device)) == "ON"
            await controller.send(f"cmnd/{topic}/PulseTime1", "0")
            await controller.send(*command(device, ON))
            assert await controller.expect_text(report_topic(device)) == "ON"
            await controller.assert_quiet(report_topic(device), 2 * PULSE_SECONDS)
            assert (device.state(1), device.pulse_time(1)) == (ON, 0)

    real(scenario())


def test_tasmota_reports_the_pulse_time_remaining(real: Run, broker: Broker, probe: Probe) -> None:
    """An empty PulseTime1 during a 20 s pulse answers Set 120 and the time left, encoded."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota") as (device, controller):
            topic = device.settings.topic
            await controller.send(f"cmnd/{topic}/PulseTime1", "120")
            await controller.expect(f"stat/{topic}/RESULT")
            device.switch_by_hand(1, ON)
            await controller.send(f"cmnd/{topic}/PulseTime1", "")
            while "PulseTime1" not in (answer := await controller.expect_json(
                    f"stat/{topic}/RESULT")):
                pass
            assert answer["PulseTime1"]["Set"] == 120
            assert 115 <= answer["PulseTime1"]["Remaining"] <= 120

    real(scenario())


@pytest.mark.parametrize("on", [True, False])
def test_shelly_toggle_after_switches_back_either_way(
    real: Run, broker: Broker, probe: Probe, on: bool
) -> None:
    """Switch.Set with toggle_after 0.3 switches, answers was_on, and switches back by itself."""

    async def scenario() -> None:
        async with session(broker, probe, "shelly") as (device, controller):
            before = OFF if on else ON
            device.switch_by_hand(1, before)
            sent = time.monotonic()
            await controller.send(*command(device, before.inverse(), toggle_after=PULSE_SECONDS))
            reply = await controller.expect_json(f"{CLIENT}/rpc")
            assert reply["result"] == {"was_on": before is ON}
            while reported_state(device, await controller.expect(report_topic(device))) == \
                    before.upper():
                pass  # the button's report
            await expect_return(controller, device, before, sent)

    real(scenario())


def test_shelly_set_without_toggle_after_cancels_the_timer(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """A plain Switch.Set after one with toggle_after keeps its state: the timer is gone."""

    async def scenario() -> None:
        async with session(broker, probe, "shelly") as (device, controller):
            await controller.send(*command(device, ON, toggle_after=PULSE_SECONDS))
            assert (await controller.expect_json(report_topic(device)))["output"] is True
            await controller.send(*command(device, ON))
            assert (await controller.expect_json(f"{CLIENT}/rpc"))["result"] == {"was_on": True}
            await controller.assert_quiet(report_topic(device), 2 * PULSE_SECONDS)
            assert device.state(1) is ON

    real(scenario())


def test_zigbee2mqtt_on_time_turns_off_by_itself(real: Run, broker: Broker, probe: Probe) -> None:
    """{"state":"ON","on_time":1} reports ON, then OFF a second later."""

    async def scenario() -> None:
        async with session(broker, probe, "zigbee2mqtt") as (device, controller):
            sent = time.monotonic()
            await controller.send(*command(device, ON, on_time=1))
            assert reported_state(device, await controller.expect(report_topic(device))) == "ON"
            await expect_return(controller, device, OFF, sent)
            assert time.monotonic() - sent >= 1 - EARLY_TOLERANCE_SECONDS

    real(scenario())


def test_zigbee2mqtt_plain_state_cancels_on_time(real: Run, broker: Broker, probe: Probe) -> None:
    """A plain {"state":"ON"} after one with on_time leaves the relay on."""

    async def scenario() -> None:
        async with session(broker, probe, "zigbee2mqtt") as (device, controller):
            await controller.send(*command(device, ON, on_time=1))
            await controller.expect(report_topic(device))
            await controller.send(*command(device, ON))
            await controller.expect(report_topic(device))
            await controller.assert_quiet(report_topic(device), 1.5)
            assert device.state(1) is ON

    real(scenario())


# Several channels, and what else each firmware says.


def test_zigbee2mqtt_two_channels_use_state_l1_and_state_l2(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """A two-channel relay obeys state_l2 alone, and reports both channels in one message."""

    async def scenario() -> None:
        async with session(broker, probe, "zigbee2mqtt", channels=2) as (device, controller):
            topic = device.settings.topic
            await controller.send(*command(device, ON, channel=2))
            assert await controller.expect_json(topic) == {
                "state_l1": "OFF", "state_l2": "ON", "linkquality": 120}
            assert (device.state(1), device.state(2)) == (OFF, ON)
            await controller.send(f"{topic}/set", '{"state_l1":"ON","state_l2":"OFF"}')
            assert await controller.expect_json(topic) == {
                "state_l1": "ON", "state_l2": "OFF", "linkquality": 120}
            await controller.send(f"{topic}/get", '{"state_l1":""}')
            assert (await controller.expect_json(topic))["state_l1"] == "ON"

    real(scenario())


def test_zigbee2mqtt_ignores_a_key_it_does_not_have(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """A two-channel relay ignores {"state": ...}, as Zigbee2MQTT does."""

    async def scenario() -> None:
        async with session(broker, probe, "zigbee2mqtt", channels=2) as (device, controller):
            await controller.send(f"{device.settings.topic}/set", '{"state":"ON"}')
            await controller.assert_quiet(device.settings.topic)
            assert (device.state(1), device.state(2)) == (OFF, OFF)

    real(scenario())


def test_zigbee2mqtt_1x_availability_is_plain_words(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """With legacy_availability the device says plain online and offline, as Zigbee2MQTT 1.x."""

    async def scenario() -> None:
        settings = device_settings("zigbee2mqtt")
        device = SimulatedMqttDevice(settings, options(broker), legacy_availability=True)
        controller = Controller(probe)
        await controller.watch(f"{settings.topic}/availability")
        await device.start()
        try:
            assert await controller.expect_text(f"{settings.topic}/availability") == "online"
            await device.go_offline()
            assert await controller.expect_text(f"{settings.topic}/availability") == "offline"
        finally:
            await device.close()

    real(scenario())


def test_tasmota_two_channels_report_power_n(real: Run, broker: Broker, probe: Probe) -> None:
    """POWER2 ON switches channel 2 only; RESULT and stat/POWER2 name it."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota", channels=2) as (device, controller):
            topic = device.settings.topic
            await controller.send(*command(device, ON, channel=2))
            assert await controller.expect_json(f"stat/{topic}/RESULT") == {"POWER2": "ON"}
            assert await controller.expect_text(f"stat/{topic}/POWER2") == "ON"
            assert (device.state(1), device.state(2)) == (OFF, ON)

    real(scenario())


def test_tasmota_answers_an_unknown_command_with_error(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """POWER3 on a two-relay device, or a bad payload, gets {"Command":"Error"} and no switch."""

    async def scenario() -> None:
        async with session(broker, probe, "tasmota", channels=2) as (device, controller):
            topic = device.settings.topic
            for command_topic, payload in [("POWER3", "ON"), ("POWER1", "MAYBE"),
                                           ("PulseTime1", "70000")]:
                await controller.send(f"cmnd/{topic}/{command_topic}", payload)
                assert await controller.expect_json(f"stat/{topic}/RESULT") == {
                    "Command": "Error"}
            assert (device.state(1), device.state(2), device.pulse_time(1)) == (OFF, OFF, 0)

    real(scenario())


def test_tasmota_publishes_tele_state_periodically(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """tele/<topic>/STATE carries every POWER<n>, at connect and every tele_period."""

    async def scenario() -> None:
        settings = device_settings("tasmota", 2)
        device = SimulatedMqttDevice(settings, options(broker))
        device.tele_period = PULSE_SECONDS
        controller = Controller(probe)
        await controller.watch(f"tele/{settings.topic}/STATE")
        await device.start()
        try:
            first = await controller.expect_json(f"tele/{settings.topic}/STATE")
            assert (first["POWER1"], first["POWER2"]) == ("OFF", "OFF")
            device.switch_by_hand(2, ON)
            # One report may have been on its way already; the one after has the switch.
            for _ in range(2):
                later = await controller.expect_json(f"tele/{settings.topic}/STATE")
            assert (later["POWER1"], later["POWER2"]) == ("OFF", "ON")
            assert "Time" in later
        finally:
            await device.close()

    real(scenario())


def test_shelly_reports_status_on_change_only(real: Run, broker: Broker, probe: Probe) -> None:
    """A Set to the state the switch already has is answered, but publishes no status."""

    async def scenario() -> None:
        async with session(broker, probe, "shelly") as (device, controller):
            await controller.send(*command(device, OFF))
            assert (await controller.expect_json(f"{CLIENT}/rpc"))["result"] == {"was_on": False}
            await controller.assert_quiet(report_topic(device))
            device.switch_by_hand(1, OFF)
            await controller.assert_quiet(report_topic(device))

    real(scenario())


def test_shelly_replies_carry_id_source_and_destination(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """A Switch.Set answers {"id","src","dst","result":{"was_on"}}; an unknown method, error 404."""

    async def scenario() -> None:
        async with session(broker, probe, "shelly", channels=2) as (device, controller):
            topic = device.settings.topic
            request = {"id": 41, "src": CLIENT, "method": "Switch.Set",
                       "params": {"id": 1, "on": True}}
            await controller.send(f"{topic}/rpc", json.dumps(request))
            assert await controller.expect_json(f"{CLIENT}/rpc") == {
                "id": 41, "src": topic, "dst": CLIENT, "result": {"was_on": False}}
            assert (device.state(1), device.state(2)) == (OFF, ON)
            event = await controller.expect_json(f"{topic}/events/rpc")
            assert event["method"] == "NotifyStatus"
            assert event["params"]["switch:1"] == {"id": 1, "source": "MQTT", "output": True}
            await controller.send(f"{topic}/rpc", json.dumps({**request, "method": "Switch.Fly"}))
            assert (await controller.expect_json(f"{CLIENT}/rpc"))["error"]["code"] == 404

    real(scenario())


def test_esphome_channels_are_its_switch_objects(real: Run, broker: Broker, probe: Probe) -> None:
    """Each channel has its switch's command and state topics, by the configured object ids."""

    async def scenario() -> None:
        switches = ["burner_left", "burner_right"]
        async with session(broker, probe, "esphome", 2, switches=switches) as (device, ctl):
            topic = device.settings.topic
            await ctl.send(f"{topic}/switch/burner_right/command", "ON")
            assert await ctl.expect_text(f"{topic}/switch/burner_right/state") == "ON"
            assert (device.state(1), device.state(2)) == (OFF, ON)

    real(scenario())


def test_generic_reports_a_json_field_per_channel(real: Run, broker: Broker, probe: Probe) -> None:
    """With state_field, one JSON report on the shared state topic holds every channel's field."""

    async def scenario() -> None:
        topic = base_topic("generic")
        fields = {"command_topic": f"{topic}/relay{{channel}}/set", "state_topic": topic,
                  "state_field": "relay{channel}", "payload_on": "1", "payload_off": "0",
                  "state_on": "closed", "state_off": "open"}
        async with session(broker, probe, "generic", 2, settle=False, **fields) as (device, ctl):
            await ctl.watch(topic)
            await ctl.send(f"{topic}/relay2/set", "1")
            while (report := await ctl.expect_json(topic))["relay2"] != "closed":
                pass  # the start-up report
            assert report == {"relay1": "open", "relay2": "closed"}
            assert (device.state(1), device.state(2)) == (OFF, ON)

    real(scenario())


# Life.


def test_a_state_changed_while_offline_is_reported_on_reconnect(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """Switched by hand while offline, the device reports the new state when it is back."""

    async def scenario() -> None:
        async with session(broker, probe, "esphome") as (device, controller):
            await device.go_offline()
            device.switch_by_hand(1, ON)
            await controller.assert_quiet(report_topic(device))
            await device.come_online()
            assert await controller.expect_text(report_topic(device)) == "ON"

    real(scenario())


def test_close_says_offline_and_disconnects_cleanly_twice(
    real: Run, broker: Broker, probe: Probe
) -> None:
    """close() publishes offline itself and sends DISCONNECT; a second close does nothing."""

    async def scenario() -> None:
        async with session(broker, probe, "shelly", settle=False) as (device, controller):
            topic, online, offline = availability(device)
            assert await controller.expect_text(topic) == online
            await device.close()
            assert await controller.expect_text(topic) == offline
            await device.close()
            assert f"Received DISCONNECT from {device.options.client_id}" in broker.log

    real(scenario())


def test_start_fails_when_the_broker_does_not_answer(real: Run) -> None:
    """Nothing listening on the port: start raises MqttError naming the broker and the device."""

    async def scenario() -> None:
        port = free_port()
        settings = device_settings("tasmota")
        device = SimulatedMqttDevice(
            settings, ConnectionOptions("127.0.0.1", port, "sim-nobody"), connect_timeout=0.5
        )
        with pytest.raises(MqttError, match=rf"127\.0\.0\.1:{port}.*'relay'"):
            await device.start()
        await device.close()

    real(scenario())
