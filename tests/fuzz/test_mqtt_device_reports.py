"""Bad reports from MQTT relays and sensors: never a state or reading the device did not send.

Each of the five relay presets runs as the daemon runs it: a long-lived
``MqttRelay`` on an ``InProcessBroker``, on virtual time, with the test playing
the device. Per example the device hears a write, obeys it or not, and sends a
drawn mix of junk (arbitrary bytes, JSON of any shape, near misses such as
``on``, ``ON\\n``, ``"ON"``, ``{"POWER1": "on"}``, availability words) and true
reports of its state, and answers queries or not; Shelly's RPC replies are
drawn too. Junk never spells a state (no exact ``ON``/``OFF``, no boolean), so
the rule is simple: a read returns exactly the device's true states, and only
once a true report of the written channel came after the write; otherwise a
DeviceError. Nothing else may escape a handler or a call.

MQTT sensors get the same treatment through ``MqttSensors``: whatever arrives
on their topics, the core is told a reading only when ``sensors.readings``
(fuzzed on its own in tests/sensors/test_readings.py) makes one of the payload,
exactly that reading, and never from junk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stovectl.devices.base import RelayState
from stovectl.devices.mqtt import MqttRelay
from stovectl.errors import DeviceError
from stovectl.mqtt.connection import Message
from stovectl.sensors.mqtt import MqttSensors
from stovectl.sensors.readings import interpret_payload
from stovectl.settings import MqttSensorSettings
from stovectl.settings.mqtt import MqttDeviceSettings
from tests.fuzz.campaign import NUMBERS, TEXT, LogGuard, Tally, budget
from tests.fuzz.inprocess_broker import InProcessBroker, Published
from tests.support.sensor_input import RecordingInput
from tests.support.virtual_time import VirtualTimeLoop

ON, OFF = RelayState.ON, RelayState.OFF
BASE = "stovectl/fuzzhob"
CHANNELS = 2
DEVICES: dict[str, dict[str, Any]] = {
    "tasmota": {"topic": "hob"},
    "zigbee2mqtt": {"topic": "zigbee2mqtt/hob_relay"},
    "shelly": {"topic": "shelly/hob"},
    "esphome": {"topic": "esphome/hob"},
    "generic": {
        "command_topic": "relays/hob/{channel}/set",
        "state_topic": "relays/hob/{channel}/state",
        "availability_topic": "relays/hob/status",
    },
}
SHELLY_SOURCE = f"{BASE}/shelly-fuzz-shelly"
CALL_WITHIN_SECONDS = 30.0


# -- junk that never spells a state ----------------------------------------------------

STATE_WORDS = frozenset({"ON", "OFF"})
NEAR_MISSES = ["on", "On", "off", "ON ", " OFF", "ON\n", "true", "false", "1", "0", "online",
               "offline", "Online", "Offline", "", "null"]
SAFE_TEXT = TEXT.filter(lambda text: text not in STATE_WORDS) | st.sampled_from(NEAR_MISSES)
REPORT_KEYS = ["POWER", "POWER1", "POWER2", "state", "state_l1", "state_l2", "id", "output",
               "result", "error", "method", "params", "switch:0", "switch:1", "src"]
SAFE_JSON = st.recursive(
    st.none() | NUMBERS | SAFE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(REPORT_KEYS) | TEXT, inner, max_size=4),
    max_leaves=8,
)
JUNK_PAYLOADS = st.one_of(
    st.binary(max_size=64).filter(lambda data: data not in (b"ON", b"OFF")),
    SAFE_JSON.map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    st.sampled_from(NEAR_MISSES).map(str.encode),
    st.sampled_from([b'"ON"', b'{"POWER1": "on"}', b'{"state": "On"}', b'{"output": 1}',
                     b'{"id": 0, "output": "true"}', b'{"state_l1": ["ON"]}', b"\xff\xfe"]),
)


def topics_of(preset: str) -> list[str]:
    """Every topic the device reports on (wildcards filled in), and some it does not."""
    relay_topics = {
        "tasmota": ["tele/hob/LWT", "stat/hob/POWER1", "stat/hob/POWER2", "stat/hob/POWER",
                    "stat/hob/RESULT", "tele/hob/STATE", "stat/hob/STATUS"],
        "zigbee2mqtt": ["zigbee2mqtt/hob_relay/availability", "zigbee2mqtt/hob_relay"],
        "shelly": ["shelly/hob/online", "shelly/hob/status/switch:0",
                   "shelly/hob/status/switch:1", "shelly/hob/events/rpc",
                   f"{SHELLY_SOURCE}/rpc"],
        "esphome": ["esphome/hob/status", "esphome/hob/switch/relay1/state",
                    "esphome/hob/switch/relay2/state"],
        "generic": ["relays/hob/status", "relays/hob/1/state", "relays/hob/2/state"],
    }[preset]
    return [*relay_topics, "unrelated/topic", f"{BASE}/left/set"]


def truth(preset: str, channel: int, state: RelayState) -> Message:
    """A true report of one channel's state, in the firmware's own words."""
    word = state.name.encode()
    if preset == "tasmota":
        return Message(f"stat/hob/POWER{channel}", word)
    if preset == "zigbee2mqtt":
        return Message("zigbee2mqtt/hob_relay", json.dumps({f"state_l{channel}": state.name})
                       .encode())
    if preset == "shelly":
        status = {"id": channel - 1, "output": state is ON}
        return Message(f"shelly/hob/status/switch:{channel - 1}", json.dumps(status).encode())
    if preset == "esphome":
        return Message(f"esphome/hob/switch/relay{channel}/state", word)
    return Message(f"relays/hob/{channel}/state", word)


@dataclass(frozen=True)
class Item:
    """One message the device sends: junk, or a true report of ``channel``."""

    channel: int | None = None
    topic_index: int = 0
    payload: bytes = b""


ITEMS = st.one_of(
    st.builds(Item, st.none(), st.integers(0, 50), JUNK_PAYLOADS),
    st.builds(Item, st.none(), st.integers(0, 50), JUNK_PAYLOADS),
    st.builds(Item, st.integers(1, CHANNELS)),
)


@dataclass(frozen=True)
class Plan:
    preset: str
    channel: int
    wanted: RelayState
    obeys: bool
    answers_queries: bool
    rpc_reply: str
    """Shelly: how the device answers an RPC: ok, error, junk, or nothing."""
    before: list[Item] = field(default_factory=list)
    after: list[Item] = field(default_factory=list)


plans = st.builds(
    Plan,
    preset=st.sampled_from(sorted(DEVICES)),
    channel=st.integers(1, CHANNELS),
    wanted=st.sampled_from([ON, OFF]),
    obeys=st.sampled_from([True, True, True, False]),
    answers_queries=st.booleans(),
    rpc_reply=st.sampled_from(["ok", "ok", "error", "junk", "nothing"]),
    before=st.lists(ITEMS, max_size=4),
    after=st.lists(ITEMS, max_size=6),
)


# -- the relays and the device the test plays -------------------------------------------


class PlayedDevice:
    """One preset's relay on an InProcessBroker, and the device's true state."""

    def __init__(self, preset: str, loop_broker: InProcessBroker) -> None:
        self.preset = preset
        self.broker = loop_broker
        settings = MqttDeviceSettings.model_validate({
            "kind": "mqtt", "id": f"fuzz-{preset}", "preset": preset, "channels": CHANNELS,
            "timeout": "1s", **DEVICES[preset],
        })
        self.relay = MqttRelay(settings, loop_broker, BASE)  # type: ignore[arg-type]  # a stand-in
        self.truth = dict.fromkeys(range(1, CHANNELS + 1), OFF)
        self.plan: Plan | None = None
        self.reported_after_write: set[int] = set()
        self.writing = False
        loop_broker.on_publish = self._heard

    def send(self, message: Message) -> None:
        self.broker.deliver(message)

    def report(self, channel: int) -> None:
        if self.writing:
            self.reported_after_write.add(channel)
        self.send(truth(self.preset, channel, self.truth[channel]))

    def _heard(self, published: Published) -> None:
        """The device takes a command as it arrives, and answers a moment later."""
        plan, topic, payload = self.plan, published.topic, published.payload
        if plan is None or not (topic.endswith(("/set", "/rpc", "/command", "/get"))
                                or topic.startswith("cmnd/")):
            return
        loop = asyncio.get_running_loop()
        if self.preset == "shelly" and topic == "shelly/hob/rpc":
            request = json.loads(payload)
            if request["method"] == "Switch.Set" and plan.obeys:
                self.truth[request["params"]["id"] + 1] = (
                    ON if request["params"]["on"] else OFF)
            loop.call_soon(self._rpc, plan, request)
        elif topic.endswith("/get") or (topic.startswith("cmnd/") and payload == b""):
            if plan.answers_queries:
                loop.call_soon(lambda: [self.report(channel) for channel in self.truth])
        elif "PulseTime" not in topic and plan.obeys:
            self.truth[plan.channel] = plan.wanted

    def _rpc(self, plan: Plan, request: dict[str, Any]) -> None:
        reply_topic = f"{request['src']}/rpc"
        params = request["params"]
        if request["method"] == "Switch.GetStatus":
            if plan.answers_queries:
                channel = params["id"] + 1
                if self.writing:
                    self.reported_after_write.add(channel)
                result = {"id": params["id"], "output": self.truth[channel] is ON}
                self.send(Message(reply_topic, json.dumps(
                    {"id": request["id"], "result": result}).encode()))
            return
        answer: Any = {
            "ok": {"id": request["id"], "result": {"was_on": False}},
            "error": {"id": request["id"], "error": {"code": -103, "message": "refused"}},
            "junk": {"id": str(request["id"]), "result": None},
        }.get(plan.rpc_reply)
        if answer is not None:
            self.send(Message(reply_topic, json.dumps(answer).encode()))


class Relays:
    """All five presets, each on a broker of its own, on one virtual-time loop."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner(loop_factory=VirtualTimeLoop)
        self.devices = self.runner.run(self._start())

    async def _start(self) -> dict[str, PlayedDevice]:
        devices = {preset: PlayedDevice(preset, InProcessBroker()) for preset in DEVICES}
        for device in devices.values():
            await device.relay.start()
        return devices

    def close(self) -> None:
        for device in self.devices.values():
            self.runner.run(device.relay.close())
        self.runner.close()

    async def example(self, plan: Plan) -> tuple[Any, BaseException | None, PlayedDevice]:
        device = self.devices[plan.preset]
        device.plan, device.reported_after_write, device.writing = plan, set(), False
        topics = topics_of(plan.preset)

        def send(items: list[Item]) -> None:
            for item in items:
                if item.channel is None:
                    device.send(Message(topics[item.topic_index % len(topics)], item.payload))
                else:
                    device.report(item.channel)

        send(plan.before)
        try:
            async with asyncio.timeout(CALL_WITHIN_SECONDS):
                device.writing = True
                with contextlib.suppress(DeviceError):  # a read must still tell the truth
                    await device.relay.write(plan.channel, plan.wanted)
                send(plan.after)
                return await device.relay.read(), None, device
        except Exception as error:  # judged by the test: only DeviceErrors may come
            return None, error, device
        finally:
            device.plan = None


@pytest.fixture(scope="module")
def relays() -> Iterator[Relays]:
    started = Relays()
    yield started
    started.close()


@budget(bounded=500, soak=10_000)
@given(plan=plans)
def test_a_relay_reads_only_what_its_device_truly_reported(
    relays: Relays, log_guard: LogGuard, tally: Tally, plan: Plan
) -> None:
    """Junk among true reports: a read gives the device's true states once it reported the
    written channel after the write, and a DeviceError otherwise; nothing else escapes."""
    junk = sum(item.channel is None for item in [*plan.before, *plan.after])
    tally.tried(plan.preset, *(["junk"] * junk), *(["true report"] * (
        len(plan.before) + len(plan.after) - junk)))
    states, error, device = relays.runner.run(relays.example(plan))
    problems = [f"logged: {line}" for line in log_guard.take()]
    if error is not None:
        tally.saw(type(error).__name__)
        if not isinstance(error, DeviceError):
            problems.append(f"{type(error).__name__} escaped: {error!r}")
    else:
        tally.saw("read")
        if states != device.truth:
            problems.append(f"read {states}, but the device is {device.truth}")
        if plan.channel not in device.reported_after_write:
            problems.append(f"read channel {plan.channel} as {states} with no report of it "
                            "since the write")
    assert not problems, "\n".join(problems)


# -- MQTT sensors ----------------------------------------------------------------------

SENSORS = [
    MqttSensorSettings.model_validate(fields) for fields in (
        {"source": "mqtt", "id": "probe", "kind": "flame", "burner": "left",
         "topic": "esphome/hob/sensor/probe/state", "on_above": 80.0, "off_below": 60.0,
         "availability_topic": "esphome/hob/status"},
        {"source": "mqtt", "id": "gas", "kind": "gas", "topic": "zigbee2mqtt/kitchen",
         "field": "gas", "payload_on": "ON", "payload_off": "OFF"},
        {"source": "mqtt", "id": "motion", "kind": "presence", "topic": "zigbee2mqtt/kitchen",
         "field": "occupancy"},
        {"source": "mqtt", "id": "smoke", "kind": "smoke", "topic": "home/smoke"},
    )
]
SENSOR_TOPICS = ["esphome/hob/sensor/probe/state", "zigbee2mqtt/kitchen", "home/smoke",
                 "esphome/hob/status", "unrelated/topic"]
READING_VALUES = st.one_of(
    st.booleans(), NUMBERS, st.sampled_from(["ON", "OFF", "on", "detected", "clear", "85",
                                             "59.9", "70", "nan", "1e999", "maybe", ""]),
    SAFE_JSON,
)
SENSOR_PAYLOADS = st.one_of(
    st.binary(max_size=64),
    READING_VALUES.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(["gas", "occupancy", "battery", "smoke"]), READING_VALUES,
                    max_size=3).map(lambda value: json.dumps(value).encode()),
    st.sampled_from(["ON", "OFF", "85.5", "-1", "online", "offline", "true"]).map(str.encode),
)


class Sensors:
    def __init__(self) -> None:
        self.runner = asyncio.Runner(loop_factory=VirtualTimeLoop)
        self.target = RecordingInput()
        self.broker = InProcessBroker()
        self.adapter = MqttSensors(SENSORS, self.broker, self.target)  # type: ignore[arg-type]  # a stand-in
        self.adapter.attach()
        self.readings: dict[str, bool | None] = dict.fromkeys(s.id for s in SENSORS)

    def close(self) -> None:
        self.runner.run(self.adapter.close())
        self.runner.close()


@pytest.fixture(scope="module")
def sensors() -> Iterator[Sensors]:
    started = Sensors()
    yield started
    started.close()


@budget(bounded=300, soak=10_000)
@given(messages=st.lists(st.tuples(st.sampled_from(SENSOR_TOPICS), SENSOR_PAYLOADS),
                         min_size=1, max_size=5))
def test_a_sensor_reading_comes_only_from_a_payload_that_says_one(
    sensors: Sensors, log_guard: LogGuard, tally: Tally, messages: list[tuple[str, bytes]]
) -> None:
    """Each payload tells each sensor on its topic exactly the reading readings.py makes of it,
    and a payload that says nothing tells nothing; no handler raises."""
    tally.tried("sensor messages", *(topic.split("/")[0] for topic, _ in messages))
    problems = []
    for topic, payload in messages:
        calls_from = len(sensors.target.calls)
        sensors.broker.deliver(Message(topic, payload))
        told = [(sid, value) for what, sid, value in sensors.target.calls[calls_from:]
                if what == "reading"]
        for sensor in SENSORS:
            if sensor.topic != topic or not payload:
                continue
            try:
                wanted = interpret_payload(sensor, payload, sensor.field,
                                           sensors.readings[sensor.id])
            except ValueError:
                wanted = None
            got = [value for sid, value in told if sid == sensor.id]
            expected = [] if wanted is None else [wanted]
            if got != expected:
                problems.append(f"{sensor.id} told {got} for {payload[:80]!r}, expected "
                                f"{expected}")
            if wanted is not None:
                sensors.readings[sensor.id] = wanted
            tally.saw("reading" if got else "nothing told")
    problems += [f"logged: {line}" for line in log_guard.take()]
    assert not problems, "\n".join(problems)
