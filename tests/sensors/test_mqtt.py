"""MQTT sensors against a real Mosquitto: readings, shared topics, availability, garbage.

Each test reads sensors through the daemon's own ``MqttConnection`` and plays
the sensors with a second connection that publishes whatever the test wants,
garbage included. What the adapter tells the core is recorded by a fake
``SensorInput`` and awaited with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any

import pytest

from stovectl.mqtt.connection import MqttConnection
from stovectl.mqtt.options import ConnectionOptions
from stovectl.sensors.mqtt import MqttSensors
from stovectl.settings import MqttSensorSettings
from tests.support.broker import Broker, running_broker
from tests.support.sensor_input import RecordingInput

LOGGER = "stovectl.sensors.mqtt"
WAIT_SECONDS = 5.0
_numbers = itertools.count(1)

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with running_broker("anonymous") as started:
        yield started


def sensor(topic: str, sensor_id: str = "smoke", **fields: Any) -> MqttSensorSettings:
    return MqttSensorSettings.model_validate(
        {"source": "mqtt", "id": sensor_id, "kind": "smoke", "topic": topic, **fields}
    )


def fresh_topic() -> str:
    """A topic of the test's own: the module's broker keeps every test's retained messages."""
    return f"zigbee2mqtt/sensor{next(_numbers)}"


def options(broker: Broker) -> ConnectionOptions:
    return ConnectionOptions(broker.host, broker.port, f"sensors-test-{next(_numbers)}",
                             reconnect_max_seconds=0.3)


@contextlib.asynccontextmanager
async def connected(broker: Broker) -> AsyncIterator[MqttConnection]:
    connection = MqttConnection(options(broker))
    try:
        assert await connection.start(wait_seconds=WAIT_SECONDS), broker.log
        yield connection
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def reading(
    broker: Broker, sensors: Sequence[MqttSensorSettings]
) -> AsyncIterator[tuple[RecordingInput, MqttConnection]]:
    """The sensors attached to a started daemon connection, and a device connection.

    It returns once the broker has the daemon's subscriptions: a retained message
    on a topic subscribed after them has arrived (the broker takes them in order).
    """
    target = RecordingInput()
    async with connected(broker) as device:
        daemon = MqttConnection(options(broker))
        adapter = MqttSensors(sensors, daemon, target)
        adapter.attach()
        synced: asyncio.Queue[bytes] = asyncio.Queue()
        sync_topic = f"sensors-test/sync{next(_numbers)}"
        daemon.subscribe(sync_topic, lambda message: synced.put_nowait(message.payload))
        try:
            assert await daemon.start(wait_seconds=WAIT_SECONDS), broker.log
            await device.publish(sync_topic, b"sync", retain=True)
            async with asyncio.timeout(WAIT_SECONDS):
                await synced.get()
            yield target, device
        finally:
            await adapter.close()
            await daemon.close()


def test_a_reading_reaches_the_core_and_the_sensor_becomes_available(
    broker: Broker, real: Run
) -> None:
    """A payload on the topic is told as a reading, after telling the sensor is there."""
    topic = fresh_topic()

    async def scenario() -> None:
        async with reading(broker, [sensor(topic)]) as (target, device):
            await device.publish(topic, "ON")
            await target.until(lambda: target.readings("smoke") == [True], "smoke on")
            await device.publish(topic, "clear")
            await target.until(lambda: target.readings("smoke") == [True, False], "smoke off")
            assert target.of("smoke") == [("available", True), ("reading", True),
                                          ("reading", False)]

    real(scenario())


def test_a_retained_reading_is_known_from_the_start(broker: Broker, real: Run) -> None:
    """A detector's retained alarm, published before the daemon started, arrives on connect."""
    topic = fresh_topic()

    async def scenario() -> None:
        async with connected(broker) as early:
            await early.publish(topic, json.dumps({"smoke": True}), retain=True)
        async with reading(broker, [sensor(topic, field="smoke")]) as (target, _):
            await target.until(lambda: target.readings("smoke") == [True], "retained smoke")

    real(scenario())


def test_sensors_sharing_a_topic_each_read_their_field_once(broker: Broker, real: Run) -> None:
    """A Zigbee2MQTT multi-sensor: one message, one reading per configured field."""
    topic = fresh_topic()
    sensors = [
        sensor(topic, "motion", kind="presence", field="occupancy"),
        sensor(topic, "smoke", field="smoke"),
    ]

    async def scenario() -> None:
        async with reading(broker, sensors) as (target, device):
            await device.publish(topic, json.dumps(
                {"occupancy": True, "smoke": False, "battery": 91}))
            await target.until(lambda: len(target.calls) == 4, "both readings")
            await device.publish(topic, json.dumps({"occupancy": False, "smoke": False}))
            await target.until(lambda: len(target.calls) == 6, "both readings again")
            assert target.readings("motion") == [True, False]
            assert target.readings("smoke") == [False, False]

    real(scenario())


def test_a_probe_reads_through_its_hysteresis(broker: Broker, real: Run) -> None:
    """Degrees in the band between off_below and on_above change nothing."""
    topic = fresh_topic()
    probe = sensor(topic, "flame", kind="flame", burner="left", field="temperature",
                   on_above=80, off_below=60)

    async def scenario() -> None:
        async with reading(broker, [probe]) as (target, device):
            for degrees in (70.0, 120.5, 70.0, 40.0):
                await device.publish(topic, json.dumps({"temperature": degrees}))
            await target.until(lambda: target.readings("flame")[-1:] == [False], "cooled")
            # 70 first says nothing; 70 after 120.5 keeps "hot" (the core ignores repeats).
            assert target.of("flame") == [("available", True), ("reading", True),
                                          ("reading", True), ("reading", False)]

    real(scenario())


def test_garbage_is_warned_of_once_per_sensor_and_keeps_the_last_reading(
    broker: Broker, real: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad payloads change nothing and are logged once, until the sensor reads again."""
    topic = fresh_topic()
    sensors = [sensor(topic, "smoke", field="smoke"),
               sensor(topic, "marker", kind="presence", field="marker")]

    async def send(device: MqttConnection, smoke: Any, marker: bool) -> None:
        await device.publish(topic, json.dumps({"smoke": smoke, "marker": marker}))

    async def scenario() -> None:
        async with reading(broker, sensors) as (target, device):

            def markers(count: int) -> Callable[[], bool]:
                return lambda: len(target.readings("marker")) == count

            await send(device, True, True)
            for n, garbage in enumerate(["maybe", None, [1], "maybe"], start=2):
                await send(device, garbage, n % 2 == 0)
                # The marker shares the message: once it is read, so was the garbage.
                await target.until(markers(n), "marker")
            await send(device, False, True)
            await target.until(lambda: target.readings("smoke") == [True, False], "good again")
            await send(device, "maybe", True)
            await target.until(markers(7), "last marker")

    with caplog.at_level(logging.INFO, logger=LOGGER):
        real(scenario())
    said = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(said) == 3, said
    assert said[0].startswith("sensor 'smoke' sent 'maybe'") and "last reading stands" in said[0]
    assert said[1] == "sensor smoke reads again"
    assert said[2].startswith("sensor 'smoke' sent 'maybe'")
    assert all(r.levelno == logging.WARNING for r in caplog.records if "sent" in r.getMessage())


def test_malformed_payloads_never_reach_the_core(broker: Broker, real: Run) -> None:
    """Bad UTF-8, bad JSON, NaN and an empty payload are all dropped without a reading."""
    topic = fresh_topic()

    async def scenario() -> None:
        async with reading(broker, [sensor(topic, field="smoke")]) as (target, device):
            for payload in (b"\xff\xfe", b"{not json", b'{"smoke": NaN}', b"", b"[]",
                            b'{"smoke": 1e999}'):
                await device.publish(topic, payload)
            await device.publish(topic, b'{"smoke": "detected"}')
            await target.until(lambda: target.readings("smoke") == [True], "the good one")
            assert target.of("smoke") == [("available", True), ("reading", True)]

    real(scenario())


@pytest.mark.parametrize(
    ("online", "offline", "fields"),
    [
        (b"online", b"offline", {}),  # ESPHome, Zigbee2MQTT 1.x
        (b'{"state":"online"}', b'{"state":"offline"}', {}),  # Zigbee2MQTT 2.x
        (b"true", b"false", {}),  # Shelly
        (b"Online", b"Offline", {"payload_available": "Online",
                                  "payload_not_available": "Offline"}),  # Tasmota
    ],
)
def test_availability_is_read_in_every_firmware_spelling(
    broker: Broker, real: Run, online: bytes, offline: bytes, fields: dict[str, str]
) -> None:
    """The availability topic's words make the sensor available or not."""
    topic = fresh_topic()
    settings = sensor(topic, availability_topic=f"{topic}/availability", **fields)

    async def scenario() -> None:
        async with reading(broker, [settings]) as (target, device):
            await device.publish(f"{topic}/availability", offline)
            await target.until(lambda: target.availability("smoke") == [False], "offline")
            await device.publish(f"{topic}/availability", online)
            await target.until(lambda: target.availability("smoke") == [False, True], "online")

    real(scenario())


def test_an_unknown_availability_word_is_ignored_with_one_warning(
    broker: Broker, real: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """A word that is neither online nor offline changes nothing and is said once."""
    topic = fresh_topic()
    settings = sensor(topic, availability_topic=f"{topic}/status")

    async def scenario() -> None:
        async with reading(broker, [settings]) as (target, device):
            await device.publish(f"{topic}/status", "sleeping")
            await device.publish(f"{topic}/status", "sleeping")
            await device.publish(f"{topic}/status", "offline")
            await target.until(lambda: target.availability("smoke") == [False], "offline")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        real(scenario())
    said = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert said == ["sensor smoke: " + f"{topic}/status said b'sleeping', neither 'online' "
                    "nor 'offline'; ignored (said once)"]


def test_a_sensor_that_says_it_is_offline_is_not_made_available_by_a_reading(
    broker: Broker, real: Run
) -> None:
    """Its reading is kept for later, but availability stays the device's own word."""
    topic = fresh_topic()
    settings = sensor(topic, availability_topic=f"{topic}/availability")

    async def scenario() -> None:
        async with reading(broker, [settings]) as (target, device):
            await device.publish(f"{topic}/availability", "offline")
            await device.publish(topic, "ON")
            await target.until(lambda: target.readings("smoke") == [True], "the reading")
            assert target.of("smoke") == [("available", False), ("reading", True)]

    real(scenario())


def test_a_lost_broker_makes_every_sensor_unavailable_until_heard_again(real: Run) -> None:
    """When the broker goes, readings are stale; retained ones come back with it."""

    async def scenario(broker: Broker) -> None:
        topic = fresh_topic()
        async with reading(broker, [sensor(topic)]) as (target, device):
            await device.publish(topic, "ON", retain=True)
            await target.until(lambda: target.readings("smoke") == [True], "smoke")
            await asyncio.to_thread(broker.restart)
            await target.until(lambda: target.availability("smoke") == [True, False, True],
                               "unavailable, then back")
            assert target.of("smoke")[-2:] == [("available", True), ("reading", True)]

    with running_broker("anonymous") as own:
        real(scenario(own))


def test_nothing_is_told_after_close(broker: Broker, real: Run) -> None:
    """A closed adapter ignores what still arrives on its subscriptions."""
    topic = fresh_topic()

    async def scenario() -> None:
        target = RecordingInput()
        async with connected(broker) as daemon, connected(broker) as device:
            marker: asyncio.Queue[bytes] = asyncio.Queue()
            adapter = MqttSensors([sensor(topic)], daemon, target)
            adapter.attach()
            daemon.subscribe(topic, lambda message: marker.put_nowait(message.payload))
            await adapter.close()
            # Retained: it arrives whether the subscription reached the broker before or after.
            await device.publish(topic, "ON", retain=True)
            async with asyncio.timeout(WAIT_SECONDS):
                assert await marker.get() == b"ON"
        assert target.calls == []

    real(scenario())
