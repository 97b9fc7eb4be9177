"""The daemon on the broker: remote commands, replies, state, events and discovery.

The daemon runs in this process (``Daemon``, as ``stovectl run`` builds it) on
simulated relays, against a real Mosquitto; the remote side is a paho client
in its own thread (tests.support.mqtt_probe), as Home Assistant or a script
would be. Every wait is for a message or a state, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stovectl.control.client import ControlClient
from stovectl.daemon.app import Daemon
from stovectl.settings import Settings, settings_from_mapping
from tests.support.broker import Broker, running_broker
from tests.support.mqtt_probe import Probe

BASE = "stovectl/testhob"
REPLIES = "remote/replies"
WAIT = 5.0
PIN = "2468"


def config(broker: Broker, *, remote: str = "", burners: tuple[str, ...] = ("left", "right"),
           extra_mqtt: str = "", extra: str = "") -> Settings:
    """A hob on one simulated relay, on ``broker``, with a 2 s cut_hold; ``extra`` is TOML
    appended after the [mqtt] section."""
    burner_tables = "".join(
        f'[[burners]]\nid = "{b}"\ndevice = "sim"\nchannel = {n}\ncut_hold = "2s"\n'
        for n, b in enumerate(burners, start=1)
    )
    text = f"""\
[stove]
id = "testhob"
name = "Test hob"

[[devices]]
id = "sim"
kind = "simulated"
channels = 2
poll_interval = "200ms"
response_time = "2ms"

{burner_tables}
[safety]
alarm_after = "1s"

[remote]
{remote}

[mqtt]
host = "{broker.host}"
port = {broker.port}
client_id = "stovectl-bridge-test"
reconnect_max_interval = "500ms"
{extra_mqtt}
{extra}
"""
    return settings_from_mapping(tomllib.loads(text), source="<test>")


@contextlib.contextmanager
def state_folder() -> Iterator[Path]:
    # A short path: a Unix socket's path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="sb-", dir="/tmp") as folder:
        yield Path(folder)


@contextlib.asynccontextmanager
async def running(settings: Settings, folder: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(settings, folder / "s", folder / "state")
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


class Remote:
    """A client that sends commands with a response topic and reads the replies."""

    def __init__(self, broker: Broker) -> None:
        self.probe = Probe(broker)
        self.probe.start()
        self.probe.connack()
        self.probe.subscribe(REPLIES)
        self._correlation = 0

    def send(
        self, topic: str, payload: bytes, *, expiry: int | None = None, retain: bool = False
    ) -> bytes:
        """Publish a command (QoS 1) and return its correlation data."""
        self._correlation += 1
        correlation = f"c{self._correlation}".encode()
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's hint gap
        properties.ResponseTopic = REPLIES
        properties.CorrelationData = correlation
        if expiry is not None:
            properties.MessageExpiryInterval = expiry
        self.probe.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        return correlation

    async def ask(self, topic: str, payload: bytes | str, **options: Any) -> dict[str, Any]:
        """Send a command and return the reply that carries its correlation data."""
        return await asyncio.to_thread(self.ask_blocking, topic, payload, **options)

    def ask_blocking(self, topic: str, payload: bytes | str, **options: Any) -> dict[str, Any]:
        data = payload.encode() if isinstance(payload, str) else payload
        correlation = self.send(topic, data, **options)
        while True:
            message = self.probe.next_message(WAIT)
            if message.properties.CorrelationData == correlation:
                reply: dict[str, Any] = json.loads(message.payload)
                return reply

    def close(self) -> None:
        self.probe.close()


class Watcher:
    """A client subscribed to topics, collecting every message it sees."""

    def __init__(self, broker: Broker, *filters: str) -> None:
        self.probe = Probe(broker)
        self.probe.start()
        self.probe.connack()
        for topic_filter in filters:
            self.probe.subscribe(topic_filter)
        self.seen: list[mqtt.MQTTMessage] = []
        self._unmatched: list[mqtt.MQTTMessage] = []

    async def next(
        self, topic: str, where: Callable[[mqtt.MQTTMessage], bool] = lambda m: True
    ) -> mqtt.MQTTMessage:
        """The first message on ``topic`` satisfying ``where`` not yet returned by ``next``."""
        for message in self._unmatched:
            if message.topic == topic and where(message):
                self._unmatched.remove(message)
                return message
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            message = await asyncio.to_thread(self.probe.next_message, left)
            self.seen.append(message)
            if message.topic == topic and where(message):
                return message
            self._unmatched.append(message)
        raise AssertionError(f"no matching message on {topic} within {WAIT}s")

    async def state(
        self, burner: str, where: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        message = await self.next(f"{BASE}/{burner}/state",
                                  lambda m: where(json.loads(m.payload)))
        data: dict[str, Any] = json.loads(message.payload)
        return data

    def close(self) -> None:
        self.probe.close()


@pytest.fixture
def remote(broker: Broker) -> Iterator[Remote]:
    client = Remote(broker)
    yield client
    client.close()


def run(coroutine: Any) -> None:
    asyncio.run(coroutine)


def burner_row(daemon: Daemon, burner: str) -> dict[str, Any]:
    return next(r for r in daemon.controller.status() if r["id"] == burner)


def test_a_remote_off_is_verified_and_answered_on_the_response_topic(
    broker: Broker, remote: Remote
) -> None:
    """Plain OFF on <base>/left/set cuts left, verified, and the reply says so."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder) as daemon:
                reply = await remote.ask(f"{BASE}/left/set", "OFF")
                assert reply["ok"] is True, reply
                [outcome] = reply["outcomes"]
                assert (outcome["burner"], outcome["result"]) == ("left", "verified")
                assert burner_row(daemon, "left")["relay"] == "cut"
                assert burner_row(daemon, "right")["relay"] == "armed"
                [event] = [e for e in daemon.controller.history(burner="left")
                           if e.kind == "shutoff"]
                assert event.source == "mqtt"

    run(scenario())


def test_all_off_cuts_every_burner(broker: Broker, remote: Remote) -> None:
    """OFF on <base>/all/set cuts both burners, each verified."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder):
                reply = await remote.ask(f"{BASE}/all/set", "OFF")
                assert sorted((o["burner"], o["result"]) for o in reply["outcomes"]) == [
                    ("left", "verified"), ("right", "verified")]

    run(scenario())


def test_a_repeated_command_id_is_ignored(broker: Broker, remote: Remote) -> None:
    """The second delivery of a command id is answered "duplicate" and does nothing."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder) as daemon:
                payload = json.dumps({"action": "lock", "id": "cmd-1"})
                assert (await remote.ask(f"{BASE}/left/set", payload))["ok"] is True
                again = await remote.ask(f"{BASE}/left/set", payload)
                assert again["error"]["code"] == "duplicate"
                locks = [e for e in daemon.controller.history(burner="left") if e.kind == "lock"]
                assert len(locks) == 1

    run(scenario())


def test_a_remote_unlock_is_refused_unless_allowed(broker: Broker, remote: Remote) -> None:
    """With allow_relax off, an unlock with the right PIN and a fresh ts is still refused."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker, remote=f'pin = "{PIN}"'), folder) as daemon:
                await remote.ask(f"{BASE}/left/set", "LOCK")
                reply = await remote.ask(f"{BASE}/left/set", json.dumps(
                    {"action": "unlock", "pin": PIN, "ts": time.time()}))
                assert reply["error"]["code"] == "remote_relax_disabled", reply
                assert burner_row(daemon, "left")["mode"] == "locked"

    run(scenario())


def test_an_allowed_remote_unlock_needs_the_pin_and_an_age(
    broker: Broker, remote: Remote
) -> None:
    """allow_relax on: no PIN, a wrong PIN and an ageless unlock are refused; then it works."""
    async def scenario() -> None:
        relaxed = config(broker, remote=f'allow_relax = true\npin = "{PIN}"')
        with state_folder() as folder:
            async with running(relaxed, folder) as daemon:
                topic = f"{BASE}/left/set"
                await remote.ask(topic, "LOCK")
                now = time.time()
                for payload, code in [
                    ({"action": "unlock", "ts": now}, "bad_pin"),
                    ({"action": "unlock", "pin": "0000", "ts": now}, "bad_pin"),
                    ({"action": "unlock", "pin": PIN}, "stale"),
                    ({"action": "unlock", "pin": PIN, "ts": now - 3600}, "stale"),
                ]:
                    reply = await remote.ask(topic, json.dumps(payload))
                    assert reply["error"]["code"] == code, (payload, reply)
                    assert burner_row(daemon, "left")["mode"] == "locked"
                reply = await remote.ask(topic, json.dumps({"action": "unlock", "pin": PIN}),
                                         expiry=30)
                assert reply["ok"] is True, reply
                assert burner_row(daemon, "left")["mode"] == "armed"
                refusals = [e for e in daemon.controller.history(burner="left")
                            if e.kind == "refused"]
                assert len(refusals) == 4

    run(scenario())


def test_a_retained_unlock_never_undoes_a_later_local_lock(
    broker: Broker, remote: Remote
) -> None:
    """A retained unlock comes back at every start: it is refused then (code retained)."""
    async def scenario() -> None:
        relaxed = config(broker, remote=f'allow_relax = true\npin = "{PIN}"')
        topic = f"{BASE}/left/set"
        unlock = json.dumps({"action": "unlock", "pin": PIN}).encode()
        with state_folder() as folder:
            async with running(relaxed, folder) as daemon:
                await remote.ask(topic, "LOCK")
                # Heard live, it is an ordinary command, and it unlocks.
                reply = await remote.ask(topic, unlock, expiry=300, retain=True)
                assert reply["ok"] is True, reply
                await daemon.controller.lock(["left"], "cli", "child")
            async with running(relaxed, folder) as daemon:
                refusals: list[Any] = []
                for _ in range(100):
                    refusals = [e for e in daemon.controller.history(burner="left")
                                if e.kind == "refused" and e.reason == "retained"]
                    if refusals:
                        break
                    await asyncio.sleep(0.05)  # polling the history with a deadline
                assert refusals, "the retained unlock was never seen"
                assert burner_row(daemon, "left")["mode"] == "locked"
                assert burner_row(daemon, "left")["lock_reason"] == "child"
        remote.probe.client.publish(topic, b"", qos=1, retain=True)  # clear it

    run(scenario())


@pytest.mark.parametrize("payload", [
    b"ON", b"TOGGLE", b"UNLOCK", b"\xff\xfe", b"{", b"[]", b'{"action": "explode"}',
    b'{"action": "off", "seconds": "soon"}', b"x" * 70_000, b'{"action":"timer"}',
])
def test_bad_payloads_get_an_error_reply_and_change_nothing(
    broker: Broker, remote: Remote, payload: bytes
) -> None:
    """Each malformed command is answered with an error, recorded, and changes no burner."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder) as daemon:
                before = [(r["mode"], r["relay"]) for r in daemon.controller.status()]
                reply = await remote.ask(f"{BASE}/left/set", payload)
                assert reply["ok"] is False and reply["error"]["code"], reply
                assert [(r["mode"], r["relay"]) for r in daemon.controller.status()] == before
                assert [e.kind for e in daemon.controller.history()][-1] == "refused"
                # ... and the daemon still obeys the next good command.
                assert (await remote.ask(f"{BASE}/left/set", "OFF"))["ok"] is True

    run(scenario())


def test_an_unknown_burner_is_refused_with_the_known_ones_named(
    broker: Broker, remote: Remote
) -> None:
    """A command to a burner that does not exist gets unknown_burner, naming the real ones."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder):
                reply = await remote.ask(f"{BASE}/middle/set", "OFF")
                assert reply["error"]["code"] == "unknown_burner"
                assert "left" in reply["error"]["message"]

    run(scenario())


class BackgroundDaemon:
    """A daemon on its own thread's loop, for tests that drive it from synchronous code."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="daemon-loop",
                                       daemon=True)
        self.daemon = Daemon(settings, folder / "s", folder / "state")

    def __enter__(self) -> BackgroundDaemon:
        self.thread.start()
        self.call(self.daemon.start())
        return self

    def __exit__(self, *_exc: object) -> None:
        self.call(self.daemon.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT)

    def modes(self) -> list[str]:
        async def read() -> list[str]:
            return [row["mode"] for row in self.daemon.controller.status()]

        modes: list[str] = self.call(read())
        return modes


@pytest.fixture(scope="module")
def locked_hob() -> Iterator[tuple[BackgroundDaemon, Remote]]:
    """One broker and one strict daemon with both burners locked, shared by the fuzz test."""
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(running_broker("anonymous"))
        folder = stack.enter_context(state_folder())
        strict = config(broker, remote=f'pin = "{PIN}"')
        background = stack.enter_context(BackgroundDaemon(strict, folder))
        background.call(background.daemon.controller.lock(["left", "right"], "cli"))
        remote = Remote(broker)
        stack.callback(remote.close)
        yield background, remote


COMMAND_KEYS = ["action", "seconds", "id", "pin", "ts", "extend", "reason", "x"]
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(["unlock", "cancel", "timer", "off", PIN])
)
# Two levels deep, built by hand: deep nesting is the pure parser's fuzz test's business.
JSON_VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.sampled_from(COMMAND_KEYS), SCALARS | st.lists(SCALARS, max_size=3),
                    max_size=5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    burner=st.sampled_from(["left", "all", "nope"]),
    payload=st.one_of(st.binary(max_size=200),
                      JSON_VALUES.map(lambda value: json.dumps(value).encode())),
)
def test_fuzzed_commands_never_relax_a_locked_hob(
    locked_hob: tuple[BackgroundDaemon, Remote], burner: str, payload: bytes
) -> None:
    """Whatever arrives, every command is answered, and a strict daemon's locks all hold."""
    background, remote = locked_hob

    reply = remote.ask_blocking(f"{BASE}/{burner}/set", payload)

    assert isinstance(reply["ok"], bool), reply
    assert reply["ok"] or reply["error"]["code"], reply
    assert background.modes() == ["locked", "locked"]


def test_state_is_retained_and_follows_the_burner(broker: Broker, remote: Remote) -> None:
    """Each burner's retained state JSON changes with a shutoff; the device says online."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder):
                watcher = Watcher(broker, f"{BASE}/#")
                try:
                    armed = await watcher.state("left", lambda s: s["relay"] == "armed")
                    assert armed["mode"] == "armed" and armed["locked"] is False
                    await watcher.next(f"{BASE}/devices/sim/availability")
                    late = Watcher(broker, f"{BASE}/devices/sim/availability")
                    online = await late.next(f"{BASE}/devices/sim/availability")
                    late.close()
                    assert (online.payload, online.retain) == (b"online", True)
                    await remote.ask(f"{BASE}/left/set", "OFF")
                    # The relay may be seen cut a moment before the shutoff is recorded.
                    cut = await watcher.state(
                        "left", lambda s: s["relay"] == "cut" and s["last_shutoff"] is not None)
                    assert cut["last_shutoff_source"] == "mqtt"
                    event = await watcher.next(
                        f"{BASE}/events", lambda m: json.loads(m.payload)["kind"] == "shutoff")
                    assert not event.retain
                    assert json.loads(event.payload)["source"] == "mqtt"
                finally:
                    watcher.close()

    run(scenario())


async def retained(broker: Broker, topic: str) -> Any:
    """The message the broker keeps on ``topic``, as a new subscriber gets it."""
    late = Watcher(broker, topic)
    try:
        message = await late.next(topic)
    finally:
        late.close()
    assert message.retain, topic
    return json.loads(message.payload)


FLAME_SENSOR = """
[[sensors]]
id = "left_flame"
kind = "flame"
burner = "left"
source = "mqtt"
topic = "test/left_flame"

[failsafe]
max_on = "1h"
"""
GAS_SENSOR = """
[[sensors]]
id = "hall_gas"
kind = "gas"
source = "mqtt"
topic = "test/hall_gas"
"""
SENSORS = FLAME_SENSOR + GAS_SENSOR
"""A flame sensor under left and a gas detector; nobody publishes on their topics, so the
tests feed readings to the controller's sensor board, as an adapter would."""


def test_a_flame_lights_the_burner_state_and_its_sensor_state(broker: Broker) -> None:
    """A flame reading republishes left's state with flame true and a max-on deadline, the
    sensor's retained state, and a flame_on event; the flame going out clears both again."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker, extra=SENSORS), folder) as daemon:
                watcher = Watcher(broker, f"{BASE}/#")
                try:
                    unknown = await watcher.state("left", lambda s: True)
                    assert (unknown["flame"], unknown["flame_sensor"]) == (None, "left_flame")
                    assert (await watcher.state("right", lambda s: True))["flame_sensor"] is None
                    daemon.controller.sensors.sensor_reading("left_flame", True)
                    lit = await watcher.state("left", lambda s: s["flame"] is True)
                    due = datetime.fromisoformat(lit["max_on_due"])
                    assert due.utcoffset() is not None
                    assert due.timestamp() - time.time() == pytest.approx(3600, abs=5)
                    await watcher.next(f"{BASE}/sensors/left_flame/state",
                                       lambda m: json.loads(m.payload)["value"])
                    sensor = await retained(broker, f"{BASE}/sensors/left_flame/state")
                    assert sensor["kind"] == "flame" and sensor["value"] is True
                    event = await watcher.next(
                        f"{BASE}/events", lambda m: json.loads(m.payload)["kind"] == "flame_on")
                    assert json.loads(event.payload)["actor"] == "left_flame"
                    daemon.controller.sensors.sensor_reading("left_flame", False)
                    out = await watcher.state("left", lambda s: s["flame"] is False)
                    assert out["max_on_due"] is None
                finally:
                    watcher.close()

    run(scenario())


def test_gas_locks_every_burner_and_the_hazard_topic_says_why(broker: Broker) -> None:
    """Gas detected: a readable hazard event, every burner locked, and <base>/hazard retained
    with the detector; the detector going offline shows on the latch and its own state."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker, extra=SENSORS), folder) as daemon:
                watcher = Watcher(broker, f"{BASE}/#")
                try:
                    clear = await watcher.next(f"{BASE}/hazard")
                    assert json.loads(clear.payload) == {
                        "locked": False, "locked_burners": [], "detecting": [], "offline": []}
                    daemon.controller.sensors.sensor_reading("hall_gas", True)
                    hazard = await watcher.next(
                        f"{BASE}/events", lambda m: json.loads(m.payload)["kind"] == "hazard")
                    event = json.loads(hazard.payload)
                    assert (event["source"], event["reason"], event["actor"]) == (
                        "hazard", "gas", "hall_gas")
                    assert "gas detected" in event["message"]
                    await watcher.next(f"{BASE}/hazard",
                                       lambda m: json.loads(m.payload)["detecting"])
                    assert await retained(broker, f"{BASE}/hazard") == {
                        "locked": True, "locked_burners": ["left", "right"],
                        "detecting": ["hall_gas"], "offline": []}
                    await watcher.state("right", lambda s: s["lock_reason"] == "hazard"
                                        and s["relay"] == "cut")
                    daemon.controller.sensors.sensor_available("hall_gas", False)
                    offline = await watcher.next(
                        f"{BASE}/hazard", lambda m: json.loads(m.payload)["offline"])
                    assert json.loads(offline.payload)["locked"] is True
                    gas = await watcher.next(f"{BASE}/sensors/hall_gas/state",
                                             lambda m: json.loads(m.payload)["available"] is False)
                    assert json.loads(gas.payload)["value"] is None
                finally:
                    watcher.close()

    run(scenario())


def test_discovery_is_announced_and_again_when_home_assistant_restarts(
    broker: Broker,
) -> None:
    """Retained discovery configs appear at start, and again after homeassistant/status online."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder):
                watcher = Watcher(broker, "homeassistant/+/+/config")
                try:
                    button = "homeassistant/button/stovectl_testhob_left_shutoff/config"
                    first = await watcher.next(button)
                    late = Watcher(broker, button)
                    assert (await late.next(button)).retain
                    late.close()
                    assert json.loads(first.payload)["command_topic"] == f"{BASE}/left/set"
                    probe = Probe(broker)
                    probe.start()
                    probe.connack()
                    probe.publish("homeassistant/status", b"online")
                    probe.close()
                    again = await watcher.next(button)
                    # Delivered live (not from the retained store), so retain is False.
                    assert json.loads(again.payload) == json.loads(first.payload)
                finally:
                    watcher.close()

    run(scenario())


def test_entities_of_a_removed_burner_are_deleted(broker: Broker) -> None:
    """Restarted with one burner fewer, the daemon empties the other's retained configs."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder):
                watcher = Watcher(broker, "homeassistant/+/+/config")
                await watcher.next("homeassistant/button/stovectl_testhob_right_shutoff/config")
                watcher.close()
            # Subscribed before the daemon starts: an emptied retained config is only
            # ever seen live (a new subscriber gets nothing for it).
            watcher = Watcher(broker, "homeassistant/+/+/config")
            try:
                async with running(config(broker, burners=("left",)), folder):
                    gone = await watcher.next(
                        "homeassistant/button/stovectl_testhob_right_shutoff/config",
                        lambda m: m.payload == b"")
                    assert gone.payload == b""
            finally:
                watcher.close()

    run(scenario())


def test_after_a_broker_kill_state_is_republished_within_5s(broker: Broker) -> None:
    """kill -9 loses the broker's retained state; the daemon reconnects and publishes it again:
    burner and sensor states, and the hazard latch."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker, extra=SENSORS), folder) as daemon:
                assert daemon.mqtt is not None
                watcher = Watcher(broker, f"{BASE}/left/state")
                await watcher.state("left", lambda s: True)
                watcher.close()
                broker.kill9()
                broker.start()
                started = time.monotonic()
                watcher = Watcher(broker, f"{BASE}/left/state", f"{BASE}/status",
                                  f"{BASE}/sensors/+/state", f"{BASE}/hazard")
                try:
                    state = await watcher.state("left", lambda s: True)
                    assert state["burner"] == "left"
                    await watcher.next(f"{BASE}/sensors/hall_gas/state")
                    await watcher.next(f"{BASE}/hazard")
                    assert time.monotonic() - started < WAIT
                    status = await watcher.next(f"{BASE}/status")
                    assert status.payload == b"online"
                finally:
                    watcher.close()
                remote = Remote(broker)
                try:
                    assert (await remote.ask(f"{BASE}/right/set", "OFF"))["ok"] is True
                finally:
                    remote.close()

    run(scenario())


def test_a_command_sent_while_the_daemon_was_away_is_obeyed_when_it_returns(
    broker: Broker, remote: Remote
) -> None:
    """The broker keeps a QoS 1 LOCK for the daemon's session; the next start obeys it."""
    async def scenario() -> None:
        settings = config(broker)
        with state_folder() as folder:
            async with running(settings, folder):
                pass
            remote.send(f"{BASE}/left/set", b"LOCK")
            async with running(settings, folder) as daemon:
                watcher = Watcher(broker, f"{BASE}/left/state")
                try:
                    await watcher.state("left", lambda s: s["locked"] and s["relay"] == "cut")
                finally:
                    watcher.close()
                [lock] = [e for e in daemon.controller.history(burner="left")
                          if e.kind == "lock"]
                assert lock.source == "mqtt"

    run(scenario())


def test_the_entity_of_a_removed_sensor_is_deleted(broker: Broker) -> None:
    """Restarted without its gas sensor, the daemon empties that sensor's retained config."""
    gas = "homeassistant/binary_sensor/stovectl_testhob_sensor_hall_gas_gas/config"

    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker, extra=SENSORS), folder):
                watcher = Watcher(broker, "homeassistant/+/+/config")
                config_message = await watcher.next(gas)
                watcher.close()
                assert json.loads(config_message.payload)["device_class"] == "gas"
            watcher = Watcher(broker, "homeassistant/+/+/config")  # before: see above
            try:
                async with running(config(broker, extra=FLAME_SENSOR), folder):
                    gone = await watcher.next(gas, lambda m: m.payload == b"")
                    assert gone.payload == b""
            finally:
                watcher.close()

    run(scenario())


def test_the_daemon_never_publishes_a_command_or_anything_retained_on_set_topics(
    broker: Broker, remote: Remote
) -> None:
    """Across commands, the only messages on set topics are the remote's own, none retained."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder):
                watcher = Watcher(broker, "#")
                try:
                    await remote.ask(f"{BASE}/left/set", "OFF")
                    await remote.ask(f"{BASE}/all/set", "LOCK")
                    await watcher.state("right", lambda s: s["locked"])
                finally:
                    watcher.close()
                on_set = [m for m in watcher.seen if m.topic.endswith("/set")]
                assert len(on_set) == 2
                assert not any(m.retain for m in on_set)

    run(scenario())


def test_status_over_the_control_socket_reports_the_broker(broker: Broker) -> None:
    """`status` carries the MQTT connection: connected, and false after the broker dies."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder) as daemon:
                client_status = await asyncio.to_thread(_status, daemon.socket_path)
                assert client_status["mqtt"] == {
                    "connected": True, "broker": f"{broker.host}:{broker.port}",
                    "base_topic": BASE}
                down = asyncio.Event()
                assert daemon.mqtt is not None
                daemon.mqtt.on_disconnect(down.set)
                broker.kill9()
                await asyncio.wait_for(down.wait(), WAIT)
                client_status = await asyncio.to_thread(_status, daemon.socket_path)
                assert client_status["mqtt"]["connected"] is False
                broker.start()

    run(scenario())


def _status(socket_path: Path) -> dict[str, Any]:
    with ControlClient(socket_path, timeout_seconds=WAIT) as client:
        reply = client.call("status")
    assert reply["ok"], reply
    result: dict[str, Any] = reply["result"]
    return result


def test_switching_discovery_off_removes_the_entities(broker: Broker) -> None:
    """Restarted with discovery = false, the daemon empties every config it announced."""
    async def scenario() -> None:
        with state_folder() as folder:
            async with running(config(broker), folder):
                watcher = Watcher(broker, "homeassistant/+/+/config")
                await watcher.next("homeassistant/button/stovectl_testhob_all_off/config")
                watcher.close()
            watcher = Watcher(broker, "homeassistant/+/+/config")  # before: see above
            try:
                async with running(config(broker, extra_mqtt="discovery = false"), folder):
                    gone = await watcher.next(
                        "homeassistant/button/stovectl_testhob_all_off/config",
                        lambda m: m.payload == b"")
                    assert gone.payload == b""
            finally:
                watcher.close()

    run(scenario())
