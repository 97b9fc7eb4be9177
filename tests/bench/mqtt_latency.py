"""How long an MQTT ``OFF`` takes to cut a relay, via miIO and via Tasmota, beside bare hops.

One real Mosquitto (tests.support.broker, its default TCP settings) carries every
message. A real daemon (``stovectl run``) takes commands on
``<base>/<burner>/set`` and drives ``stovectl simulate``'s relays, run in this
process (tests.support.relay_sim): yeelink.switch.sw1 relays over miIO UDP and
two-channel Tasmota relays on the broker, all NC-wired and cut with device-side
pulses (yeelink's off-delay, Tasmota's PulseTime). A timing starts just before a
paho client publishes ``OFF`` (MQTT 5, QoS 1) and ends when the simulated relay
switches to cut, as the simulator time-stamps it. Per round, interleaved, in a
rotating order:

* ``OFF`` for a burner on a miIO relay, and for one on a Tasmota relay;
* a bare MQTT hop: a QoS 1 publish to another paho client, until its
  ``on_message`` callback runs;
* a bare miIO write: python-miio ``set_properties`` switching an unwired relay;
* a bare Tasmota command: ``ON`` published straight to ``cmnd/<topic>/POWER1``
  of an unwired simulated Tasmota relay, until it switches.

The floor relays are simulated but absent from the daemon's config, and the
floors use topics of their own, so they neither load the daemon nor cross its
traffic. The miIO path's floor is a hop plus a miIO write, summed statistic by
statistic (median + median, p99 + p99); a Tasmota command is itself a hop plus
the device's write, so it is that path's floor as it stands. The bench's own
clients send at once (TCP_NODELAY), so the figures time stovectl, its simulated
relays and the broker, never the bench's Nagle waits.

Every shutoff starts from an armed burner and a quiet daemon: the burners rotate
over several relays, and before each command the bench waits, untimed, for the
relay to have re-armed itself after ``cut_hold``, for the daemon to show the
burner armed (``status`` on the control socket), and for the daemon's MQTT
traffic to have paused (``QUIET_SECONDS``). Each command names an MQTT 5
response topic; the round goes on once the daemon has answered ``verified``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from miio.device import Device
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stovectl.control.client import ControlClient
from stovectl.devices.base import RelayState
from stovectl.errors import ControlError
from stovectl.mqtt.topics import Topics
from tests.bench.figures import BenchError, Figure, summary
from tests.bench.miio_latency import Burner, set_floor_switch
from tests.support.broker import Broker, running_broker
from tests.support.daemon import DaemonProcess, running_daemon
from tests.support.mqtt_probe import REPLY_TIMEOUT_SECONDS, Probe
from tests.support.relay_sim import (
    TOKEN,
    RelayConfig,
    RelaySimulator,
    miio_config,
    running_simulator,
)

ROUNDS = 60
WARM_UP_ROUNDS = 3
RELAYS = 5  # of each kind, two burners each
MIIO_FLOOR_DEVICE = "miiofloor"
MIIO_FLOOR_HOST = "127.0.6.49"
TASMOTA_FLOOR_DEVICE = "tasmotafloor"
TASMOTA_FLOOR_TOPIC = "benchfloor"
HOP_TOPIC = "bench/hop"
REPLY_TOPIC = "bench/replies"
READY_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.01
QUIET_SECONDS = 0.25
"""Still time before a timed command, longer than Linux's delayed ACK (40 to 200 ms):
right after the daemon published (a reply, a re-arm) the broker holds the next message
for it until that ACK comes (Nagle), which back-to-back rounds would always pay."""
VIA_MIIO = "MQTT OFF → relay cut via miIO"
VIA_TASMOTA = "MQTT OFF → relay cut via Tasmota"
HOP = "bare MQTT hop (paho → paho)"
MIIO_WRITE = "bare miIO write (python-miio)"
TASMOTA_COMMAND = "bare Tasmota POWER1 command"
TARGET_P99_MS = 10.0

P = TypeVar("P", bound=Probe)


def miio_relays(*, floor: bool) -> dict[str, RelayConfig]:
    """yeelink.switch.sw1 relays with a burner per channel, and perhaps the floor's relay."""
    relays = {
        f"miio{n}": RelayConfig(f"127.0.6.{40 + n}", (f"mfront{n}", f"mback{n}"))
        for n in range(1, RELAYS + 1)
    }
    if floor:
        relays[MIIO_FLOOR_DEVICE] = RelayConfig(MIIO_FLOOR_HOST, (), model="generic.relay.1")
    return relays


def tasmota_relays(*, floor: bool) -> dict[str, tuple[str, ...]]:
    """Two-channel Tasmota relays (device id = topic) and their burners; perhaps the floor's."""
    relays: dict[str, tuple[str, ...]] = {
        f"tasmota{n}": (f"tfront{n}", f"tback{n}") for n in range(1, RELAYS + 1)
    }
    if floor:
        relays[TASMOTA_FLOOR_DEVICE] = ()
    return relays


def config_text(broker: Broker, *, floors: bool) -> str:
    """The hob on both kinds of relay, NC wiring, cut_hold 2 s; ``floors`` adds unwired ones.

    The daemon gets the config without the floor relays, the simulator with them.
    """
    text = miio_config(miio_relays(floor=floors))
    text += f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}
client_id = "stovectl-bench-{os.getpid()}"
"""
    relays = tasmota_relays(floor=floors)
    for device_id in relays:
        topic = TASMOTA_FLOOR_TOPIC if device_id == TASMOTA_FLOOR_DEVICE else device_id
        text += (f'\n[[devices]]\nid = "{device_id}"\nkind = "mqtt"\npreset = "tasmota"\n'
                 f'topic = "{topic}"\nchannels = 2\ndevice_pulse = true\n')
    for device_id, burners in relays.items():
        for channel, burner in enumerate(burners, start=1):
            text += (f'\n[[burners]]\nid = "{burner}"\ndevice = "{device_id}"\n'
                     f'channel = {channel}\ncut_state = "on"\ncut_hold = "2s"\n')
    return text


def rotation(relays: Mapping[str, Sequence[str]]) -> Iterator[Burner]:
    """First channels, then second channels, forever: consecutive rounds use other relays."""
    wired = [(device, burners) for device, burners in relays.items() if burners]
    return itertools.cycle([
        Burner(burners[channel - 1], device, channel)
        for channel in (1, 2) for device, burners in wired
    ])


@dataclass(frozen=True)
class Kitchen:
    broker: Broker
    simulator: RelaySimulator
    daemon: DaemonProcess
    topics: Topics


@contextlib.contextmanager
def kitchen() -> Iterator[Kitchen]:
    """A broker, the simulated relays on it (and over UDP), then a daemon driving them."""
    try:
        with running_broker("anonymous") as broker:
            simulated = config_text(broker, floors=True)
            with (
                running_simulator(simulated) as simulator,
                running_daemon(config_text(broker, floors=False)) as daemon,
            ):
                yield Kitchen(broker, simulator, daemon, Topics.from_settings(simulator.settings))
    except AssertionError as error:  # how tests.support reports a misbehaving daemon or broker
        raise BenchError(f"the MQTT kitchen misbehaved: {error}") from None
    except pytest.fail.Exception as error:  # tests.support.broker without mosquitto
        raise BenchError(str(error)) from None


class _StampedProbe(Probe):
    """A Probe that notes when each message reached paho's callback (``time.monotonic``)."""

    def __init__(self, broker: Broker) -> None:
        super().__init__(broker)
        self.arrivals: queue.Queue[tuple[float, mqtt.MQTTMessage]] = queue.Queue()
        self.client.on_message = self._on_stamped_message

    def _on_stamped_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.arrivals.put((time.monotonic(), message))


@contextlib.contextmanager
def _connected(probe: P, *topics: str, qos: int = 1) -> Iterator[P]:
    """The probe connected, sending without Nagle's wait, and subscribed to ``topics``."""
    probe.start()
    try:
        sock = probe.client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = probe.connack()
        if code.is_failure:
            raise BenchError(f"the broker refused {probe.client_id}: {code}")
        for topic in topics:
            probe.subscribe(topic, qos)
        yield probe
    finally:
        probe.close()


def daemon_traffic(topics: Topics) -> list[str]:
    """What the daemon publishes or is sent, but its commands: the quiet watcher's filters."""
    state, availability = topics.burner_state("+"), topics.device_availability("+")
    return [state, topics.events, availability, "stat/#", "tele/#", REPLY_TOPIC]


class _Rounds:
    def __init__(
        self, kitchen: Kitchen, control: ControlClient, commander: Probe,
        receiver: _StampedProbe, floor: Probe, watcher: _StampedProbe,
    ) -> None:
        self.simulator = kitchen.simulator
        self.topics = kitchen.topics
        self.control = control
        self.commander = commander
        self.receiver = receiver
        self.floor = floor
        self.watcher = watcher
        self.last_traffic = dict.fromkeys((False, True), time.monotonic())
        """When the daemon's (False) and the floor relay's (True) MQTT traffic last passed."""
        self.rotations = {
            VIA_MIIO: rotation({d: r.burners for d, r in miio_relays(floor=False).items()}),
            VIA_TASMOTA: rotation(tasmota_relays(floor=False)),
        }
        self.miio_client = Device(MIIO_FLOOR_HOST, TOKEN, timeout=2)
        self.numbers = itertools.count(1)

    def armed_burner(self, path: str) -> Burner:
        """The path's next burner, once its relay has re-armed and the daemon has seen it."""
        burner = next(self.rotations[path])
        try:
            self.simulator.wait_state(burner.device, burner.channel, RelayState.OFF, READY_SECONDS)
        except AssertionError as error:
            raise BenchError(f"{burner.id} did not re-arm: {error}") from None
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                rows = self.control.call("status")["result"]["burners"]
            except ControlError as error:
                raise BenchError(f"status over the socket: {error}") from None
            row = next(row for row in rows if row["id"] == burner.id)
            if (row["mode"], row["relay"], row["pending"]) == ("armed", "armed", False):
                return burner
            if time.monotonic() > deadline:
                raise BenchError(f"the daemon did not show {burner.id} armed again: {row}")
            time.sleep(POLL_INTERVAL_SECONDS)  # polling an observable state with a deadline

    def wait_quiet(self, of_floor: bool = False) -> None:
        """Return once the daemon's (or the floor relay's) traffic was still ``QUIET_SECONDS``."""
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:  # everything that came so far, then whatever comes within the quiet time
                left = self.last_traffic[of_floor] + QUIET_SECONDS - time.monotonic()
                at, message = self.watcher.arrivals.get(block=left > 0, timeout=max(left, 0))
            except queue.Empty:
                if left <= 0:
                    return
                continue
            from_floor = TASMOTA_FLOOR_TOPIC in message.topic.split("/")
            self.last_traffic[from_floor] = max(self.last_traffic[from_floor], at)
            if time.monotonic() > deadline:
                raise BenchError(f"MQTT traffic never paused for {QUIET_SECONDS:g}s")

    def shutoff(self, path: str) -> float:
        """``OFF`` on the burner's set topic, with a response topic; ms to the relay's cut."""
        burner = self.armed_burner(path)
        self.wait_quiet()
        correlation = str(next(self.numbers)).encode()
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's hint gap
        properties.ResponseTopic = REPLY_TOPIC
        properties.CorrelationData = correlation
        topic = self.topics.burner_set(burner.id)
        started = time.monotonic()
        info = self.commander.client.publish(topic, b"OFF", qos=1, properties=properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise BenchError(f"publish {topic}: {info.rc}")
        self.commander.pubacks.get(timeout=REPLY_TIMEOUT_SECONDS)
        reply = self._reply(correlation)
        self.last_traffic[False] = time.monotonic()  # the watcher's copy may still be on its way
        if not (reply.get("ok") and reply["outcomes"][0]["result"] == "verified"):
            raise BenchError(f"OFF for {burner.id} over MQTT was not verified: {reply}")
        return self._cut_after(burner.device, burner.channel, started)

    def _reply(self, correlation: bytes) -> dict[str, Any]:
        while True:
            message = self.commander.next_message()
            properties = getattr(message, "properties", None)
            if getattr(properties, "CorrelationData", None) == correlation:
                reply: dict[str, Any] = json.loads(message.payload)
                return reply

    def hop(self) -> float:
        """Ms from a QoS 1 publish to the subscriber's ``on_message``."""
        payload = f"hop {next(self.numbers)}".encode()
        started = time.monotonic()
        self.commander.publish(HOP_TOPIC, payload)
        while True:
            at, message = self.receiver.arrivals.get(timeout=REPLY_TIMEOUT_SECONDS)
            if message.payload == payload:
                return (at - started) * 1000

    def miio_write(self) -> float:
        """Ms from python-miio's ``set_properties`` to the unwired relay switching on."""
        set_floor_switch(self.miio_client, False)  # untimed: back to off
        started = time.monotonic()
        set_floor_switch(self.miio_client, True)
        return self._cut_after(MIIO_FLOOR_DEVICE, 1, started)

    def tasmota_command(self) -> float:
        """Ms from ``ON`` on the unwired Tasmota relay's command topic to its switching."""
        self._tasmota_command(b"OFF")  # untimed: back to off
        self.last_traffic[True] = time.monotonic()  # the watcher's copy may still be on its way
        self.wait_quiet(of_floor=True)
        started = time.monotonic()
        self._tasmota_command(b"ON")
        return self._cut_after(TASMOTA_FLOOR_DEVICE, 1, started)

    def _tasmota_command(self, word: bytes) -> None:
        """Publish ``word`` to POWER1 and wait for the relay's report of it (untimed)."""
        self.floor.publish(f"cmnd/{TASMOTA_FLOOR_TOPIC}/POWER1", word)
        while self.floor.next_message().payload != word:
            pass

    def _cut_after(self, device: str, channel: int, started: float) -> float:
        """Ms from ``started`` to the channel's first switch on (cut, NC wiring) since then."""
        switches = self.simulator.switches(device, channel)
        cuts = [s for s in switches if s.state is RelayState.ON and s.at >= started]
        if not cuts:
            raise BenchError(f"{device} channel {channel} reported on but its switch is missing")
        return (cuts[0].at - started) * 1000


def measure(kitchen: Kitchen, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Milliseconds for each path and floor, ``rounds`` of each, interleaved."""
    broker = kitchen.broker
    samples: dict[str, list[float]] = {
        VIA_MIIO: [], VIA_TASMOTA: [], HOP: [], MIIO_WRITE: [], TASMOTA_COMMAND: []}
    try:
        with (
            ControlClient(kitchen.daemon.socket_path, timeout_seconds=30) as control,
            _connected(Probe(broker), REPLY_TOPIC) as commander,
            _connected(_StampedProbe(broker), HOP_TOPIC) as receiver,
            _connected(Probe(broker), f"stat/{TASMOTA_FLOOR_TOPIC}/POWER1") as floor,
            # QoS 0: the watcher's copies cost the broker as little as can be.
            _connected(_StampedProbe(broker), *daemon_traffic(kitchen.topics), qos=0) as watcher,
        ):
            bench = _Rounds(kitchen, control, commander, receiver, floor, watcher)
            ways = {
                VIA_MIIO: lambda: bench.shutoff(VIA_MIIO),
                VIA_TASMOTA: lambda: bench.shutoff(VIA_TASMOTA),
                HOP: bench.hop,
                MIIO_WRITE: bench.miio_write,
                TASMOTA_COMMAND: bench.tasmota_command,
            }
            for _ in range(WARM_UP_ROUNDS):
                for way in ways.values():
                    way()
            for index in range(rounds):
                labels = list(ways)
                shift = index % len(labels)  # rotate the order, so no way always goes first
                for label in labels[shift:] + labels[:shift]:
                    samples[label].append(ways[label]())
    except (AssertionError, queue.Empty) as error:  # a Probe's missing reply
        raise BenchError(f"an MQTT reply did not come: {error or 'timeout'}") from None
    return samples


def figures(samples: dict[str, list[float]]) -> list[Figure]:
    """Median and p99 of each path beside its floor; the p99s against the 10 ms target."""
    hop, miio, tasmota = (summary(samples[k]) for k in (HOP, MIIO_WRITE, TASMOTA_COMMAND))
    result = []
    for label in (VIA_MIIO, VIA_TASMOTA):
        stats = summary(samples[label])
        for stat in ("median", "p99"):
            if label == VIA_MIIO:
                floor = (f"{HOP} + {MIIO_WRITE}, {stat}s summed", hop[stat] + miio[stat])
            else:
                floor = (f"{TASMOTA_COMMAND} (a hop + the write), {stat}", tasmota[stat])
            result.append(Figure(
                f"{label}, {stat} (n={int(stats['n'])})", stats[stat], *floor, "ms",
                TARGET_P99_MS if stat == "p99" else None,
            ))
    return result
