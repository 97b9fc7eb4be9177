"""Simulated MQTT sensors on a real Mosquitto, read back by the daemon's own sensor adapter.

Each test starts a simulated sensor device on the module's broker, on topics of
its own, and reads it with ``MqttSensors`` into a recording ``SensorInput``, so
what is checked is what the daemon would understand; a raw subscription checks
the wire format where it matters (retained, JSON or plain words). The stove runs
on a fake clock, so heating takes no time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any

import pytest

from stovectl.mqtt.connection import Message, MqttConnection, MqttError
from stovectl.mqtt.options import ConnectionOptions
from stovectl.sensors.mqtt import MqttSensors
from stovectl.settings import MqttSensorSettings
from stovectl.sim.mqtt_sensors import SimulatedMqttSensor
from stovectl.sim.stove import Stove
from tests.support.broker import Broker, free_port, running_broker
from tests.support.sensor_input import RecordingInput

WAIT_SECONDS = 5.0
INTERVAL_SECONDS = 0.05
_numbers = itertools.count(1)

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with running_broker("anonymous") as started:
        yield started


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sensor(topic: str, sensor_id: str, kind: str = "presence", **fields: Any
           ) -> MqttSensorSettings:
    return MqttSensorSettings.model_validate(
        {"source": "mqtt", "id": sensor_id, "kind": kind, "topic": topic, **fields})


def fresh_topic() -> str:
    return f"zigbee2mqtt/simsensor{next(_numbers)}"


def options(broker: Broker) -> ConnectionOptions:
    return ConnectionOptions(broker.host, broker.port, f"sim-sensor-test-{next(_numbers)}",
                             reconnect_max_seconds=0.3)


@contextlib.asynccontextmanager
async def simulated(
    broker: Broker, sensors: Sequence[MqttSensorSettings], stove: Stove | None = None
) -> AsyncIterator[SimulatedMqttSensor]:
    device = SimulatedMqttSensor(sensors, options(broker), stove, interval=INTERVAL_SECONDS)
    await device.start()
    try:
        yield device
    finally:
        await device.close()


@contextlib.asynccontextmanager
async def daemon_reading(
    broker: Broker, sensors: Sequence[MqttSensorSettings]
) -> AsyncIterator[RecordingInput]:
    """The daemon's adapter reading ``sensors``; retained messages make start order moot."""
    target = RecordingInput()
    connection = MqttConnection(options(broker))
    adapter = MqttSensors(sensors, connection, target)
    adapter.attach()
    try:
        assert await connection.start(wait_seconds=WAIT_SECONDS)
        yield target
    finally:
        await adapter.close()
        await connection.close()


async def retained(broker: Broker, topic: str) -> Message:
    """The retained message on ``topic``, as a fresh subscriber gets it."""
    arrived: asyncio.Queue[Message] = asyncio.Queue()
    connection = MqttConnection(options(broker))
    connection.subscribe(topic, arrived.put_nowait)
    try:
        assert await connection.start(wait_seconds=WAIT_SECONDS)
        async with asyncio.timeout(WAIT_SECONDS):
            return await arrived.get()
    finally:
        await connection.close()


def test_a_detector_publishes_retained_zigbee2mqtt_json(broker: Broker, real: Run) -> None:
    """set() publishes {"<field>": true}, retained, so a late subscriber learns it."""
    topic = fresh_topic()

    async def scenario() -> None:
        async with simulated(broker, [sensor(topic, "motion", field="occupancy")]) as device:
            device.set(True)
            await device.flush()
            message = await retained(broker, topic)
        assert message.retain
        assert json.loads(message.payload) == {"occupancy": True}

    real(scenario())


def test_a_detector_without_a_field_publishes_its_words(broker: Broker, real: Run) -> None:
    """Without a field it says payload_on and payload_off, which the daemon reads."""
    topic = fresh_topic()
    gas = sensor(topic, "gas", "gas", payload_on="GAS", payload_off="NORMAL")

    async def scenario() -> None:
        async with simulated(broker, [gas]) as device, daemon_reading(broker, [gas]) as target:
            await target.until(lambda: target.readings("gas") == [False], "no gas")
            device.set(True)
            await target.until(lambda: target.readings("gas") == [False, True], "gas")
            await device.flush()
            assert (await retained(broker, topic)).payload == b"GAS"

    real(scenario())


def test_sensors_sharing_a_topic_publish_one_object(broker: Broker, real: Run) -> None:
    """A multi-sensor's every message carries all its fields, as Zigbee2MQTT sends them."""
    topic = fresh_topic()
    sensors = [sensor(topic, "motion", field="occupancy"),
               sensor(topic, "smoke", "smoke", field="smoke")]

    async def scenario() -> None:
        async with simulated(broker, sensors) as device, \
                daemon_reading(broker, sensors) as target:
            device.set(True, "smoke")
            await target.until(lambda: target.readings("smoke")[-1:] == [True], "smoke")
            assert target.readings("motion")[-1] is False
            assert json.loads(device.payload()) == {"occupancy": False, "smoke": True}
            with pytest.raises(ValueError, match="name the sensor"):
                device.set(True)

    real(scenario())


def test_availability_follows_the_connection(broker: Broker, real: Run) -> None:
    """Online on connect; a dropped connection makes the broker say offline; back, online."""
    topic = fresh_topic()
    smoke = sensor(topic, "smoke", "smoke", field="smoke",
                   availability_topic=f"{topic}/availability")

    async def scenario() -> None:
        async with simulated(broker, [smoke]) as device, \
                daemon_reading(broker, [smoke]) as target:
            await target.until(lambda: target.availability("smoke") == [True], "online")
            await device.go_offline()
            await target.until(lambda: target.availability("smoke") == [True, False], "gone")
            device.set(True)  # unheard: it is offline
            await device.come_online()
            await target.until(lambda: target.readings("smoke")[-1:] == [True], "back")
            assert target.availability("smoke") == [True, False, True]

    real(scenario())


def test_a_flame_probe_publishes_the_thermocouple_temperature(broker: Broker, real: Run) -> None:
    """Degrees every interval, {"temperature": ...}; lit and heated, the daemon reads flame."""
    topic = fresh_topic()
    probe = sensor(topic, "flame", "flame", burner="left", field="temperature",
                   on_above=80, off_below=60)
    clock = FakeClock()
    stove = Stove(["left"], clock)

    async def scenario() -> None:
        async with simulated(broker, [probe], stove), \
                daemon_reading(broker, [probe]) as target:
            await target.until(lambda: target.readings("flame")[-1:] == [False], "cold")
            stove.push_knob("left")
            clock.now += 10  # heated, at the next periodic publish
            await target.until(lambda: target.readings("flame")[-1:] == [True], "hot")
            assert json.loads((await retained(broker, topic)).payload)["temperature"] > 300

    real(scenario())


def test_a_plain_probe_publishes_a_bare_number(broker: Broker) -> None:
    """Without a field the probe's payload is the number alone, one decimal."""
    probe = sensor(fresh_topic(), "flame", "flame", burner="left", on_above=80)
    device = SimulatedMqttSensor([probe], options(broker), Stove(["left"], FakeClock()))
    assert device.payload() == "25.0"


def test_a_flame_switch_says_its_words_at_once(broker: Broker, real: Run) -> None:
    """Without on_above a flame sensor publishes ON when lit and OFF when out, at once."""
    topic = fresh_topic()
    flame = sensor(topic, "flame", "flame", burner="left")
    stove = Stove(["left"], FakeClock())

    async def scenario() -> None:
        async with simulated(broker, [flame], stove), \
                daemon_reading(broker, [flame]) as target:
            await target.until(lambda: target.readings("flame") == [False], "out")
            stove.push_knob("left")
            await target.until(lambda: target.readings("flame") == [False, True], "lit")
            stove.turn_off("left")
            await target.until(lambda: target.readings("flame") == [False, True, False], "off")

    real(scenario())


@pytest.mark.parametrize(
    ("sensors", "complaint"),
    [
        ([sensor("a/b", "one"), sensor("a/b", "two")], "each needs a field of its own"),
        ([sensor("a/b", "one", field="x"), sensor("a/c", "two", field="y")], "share one topic"),
        ([sensor("a/b", "flame", "flame", burner="back")], "'back' is not on the simulated"),
    ],
)
def test_devices_that_cannot_be_simulated_are_refused(
    broker: Broker, sensors: list[MqttSensorSettings], complaint: str
) -> None:
    """Fieldless sensors on one topic, several topics, a burner not on the stove: ValueError."""
    with pytest.raises(ValueError, match=complaint):
        SimulatedMqttSensor(sensors, options(broker), Stove(["left"], FakeClock()))


def test_no_broker_is_an_mqtt_error(real: Run) -> None:
    """A broker that does not answer within connect_timeout fails start, naming it."""
    port = free_port()
    device = SimulatedMqttSensor(
        [sensor(fresh_topic(), "motion")],
        ConnectionOptions("127.0.0.1", port, "lonely-sensor"), connect_timeout=0.2,
    )

    async def scenario() -> None:
        with pytest.raises(MqttError, match=f"127.0.0.1:{port} did not accept"):
            await device.start()
        await device.close()

    real(scenario())
