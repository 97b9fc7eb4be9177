"""How much CPU an idle daemon takes with MQTT sensors subscribed, beside a bare subscriber.

One real Mosquitto (tests.support.broker) carries the sensors' messages. In
this process (tests.support.relay_sim) ``stovectl simulate``'s simulators run:
four yeelink.switch.sw1 relays over miIO UDP on loopback, and the config's MQTT
sensors as ``SimulatedMqttSensor`` publishes them, each its own client: a
thermocouple probe under each of the first two relays' four burners, publishing
its °C every 0.5 s (ESPHome style, retained, with an availability topic), and a
Zigbee2MQTT presence sensor and gas detector, which publish at connect and on a
change only (none comes: the bench changes nothing), as real ones do.

Two real daemons (``stovectl run``) idle side by side over the same window,
each polling two of the relays every second over miIO and connected to the
broker; only the first subscribes to the sensors. The third process in the
window is the floor: a bare paho-mqtt subscriber on the same interpreter,
subscribed at QoS 1 (as the daemon subscribes) to the same sensor topics, so
it receives the same messages; it counts them, so the bench knows they came.

CPU is each process's user + system time, every thread, read at the start and
end of a fixed window after the daemons have settled, as a percentage of one
core. It is read from the process's POSIX CPU-time clock (``clock_gettime`` on
the clock id of the pid, as ``clock_getcpuclockid`` gives it), which counts in
nanoseconds: ``/proc/<pid>/stat``'s utime and stime count 10 ms ticks, a whole
0.1 % of a core over the window, and these processes use a few ticks' worth.
Where that clock cannot be read, the ticks are the fallback. A fixed settling
pause is fine here: this is a benchmark, not a test. Two figures: the daemon
with sensors against the bare subscriber, and against the same daemon without
sensors — the sensors' cost. The daemon without sensors has a floor of its own,
a bare poller that idle_polling starts on relays of its own in this kitchen and
reads in the same window.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from stovectl.sim.runner import SimulationRefused
from tests.bench.figures import BenchError, Figure
from tests.support.broker import Broker, running_broker
from tests.support.daemon import DaemonProcess, clean_environment, running_daemon
from tests.support.relay_sim import RelayConfig, RelaySimulator, miio_config, running_simulator

SETTLE_SECONDS = 2.0
WINDOW_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 15.0
PROBE_INTERVAL_SECONDS = 0.5
"""How often stovectl.sim.mqtt_sensors' probes publish (its INTERVAL_SECONDS)."""
DELIVERED_AT_LEAST = 0.9
"""The share of the expected probe messages the floor must count, or the window is void."""
HOB_TOPIC = "bench-hob"
PRESENCE_TOPIC = "zigbee2mqtt/bench_motion"
GAS_TOPIC = "zigbee2mqtt/bench_gas"
WITH_SENSORS = "daemon, relays polled, sensors subscribed"
WITHOUT_SENSORS = "daemon, relays polled, no sensors"
FLOOR = "bare paho subscriber, same messages"
CPUCLOCK_SCHED = 2

FLOOR_SCRIPT = """\
import sys
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

host, port, topics = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
received = 0

def on_connect(client, userdata, flags, reason, properties):
    client.subscribe([(topic, 1) for topic in topics])

def on_subscribe(client, userdata, mid, reasons, properties):
    print("ready", flush=True)

def on_message(client, userdata, message):
    global received
    received += 1

client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-idle-floor",
                     protocol=MQTTProtocolVersion.MQTTv5)
client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
client.connect(host, port, keepalive=30)
client.loop_start()  # paho's network thread, as the daemon runs it
for _ in sys.stdin:  # each line asks how many messages came so far
    print(received, flush=True)
"""


def sensed_relays() -> dict[str, RelayConfig]:
    """The relays of the daemon with sensors: two burners each, each under a probe."""
    return {f"idle{n}": RelayConfig(f"127.0.7.{40 + n}", (f"sfront{n}", f"sback{n}"))
            for n in (1, 2)}


def plain_relays() -> dict[str, RelayConfig]:
    """The relays of the daemon without sensors (its own: miIO request ids are per client)."""
    return {f"idle{n}": RelayConfig(f"127.0.7.{40 + n}", (f"pfront{n}", f"pback{n}"))
            for n in (3, 4)}


def probe_topic(burner: str) -> str:
    return f"{HOB_TOPIC}/sensor/{burner}_probe/state"


def probed_burners() -> list[str]:
    return [burner for relay in sensed_relays().values() for burner in relay.burners]


def sensor_topics() -> list[str]:
    """Every topic the daemon subscribes for its sensors: the floor subscribes to the same."""
    return [*map(probe_topic, probed_burners()), f"{HOB_TOPIC}/status", PRESENCE_TOPIC,
            GAS_TOPIC]


def sensors_text() -> str:
    """A probe per burner (°C, hysteresis), a presence sensor and a gas detector."""
    text = ""
    for burner in probed_burners():
        text += (f'\n[[sensors]]\nid = "{burner}_flame"\nkind = "flame"\nburner = "{burner}"\n'
                 f'source = "mqtt"\ntopic = "{probe_topic(burner)}"\non_above = 80.0\n'
                 f'off_below = 60.0\navailability_topic = "{HOB_TOPIC}/status"\n')
    for kind, topic, field in (("presence", PRESENCE_TOPIC, "occupancy"),
                               ("gas", GAS_TOPIC, "gas")):
        text += (f'\n[[sensors]]\nid = "bench_{kind}"\nkind = "{kind}"\nsource = "mqtt"\n'
                 f'topic = "{topic}"\nfield = "{field}"\n')
    return text


def mqtt_text(broker: Broker, client: str) -> str:
    return f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "{client}"\n'


def daemon_config(broker: Broker, *, sensors: bool) -> str:
    """A hob on two of the miIO relays, on the broker; ``sensors`` adds the sensors."""
    relays = sensed_relays() if sensors else plain_relays()
    stove = "idlesensed" if sensors else "idleplain"
    text = miio_config(relays).replace('id = "miiohob"', f'id = "{stove}"', 1)
    text += mqtt_text(broker, f"stovectl-bench-{stove}-{os.getpid()}")
    return text + (sensors_text() if sensors else "")


def simulator_config(broker: Broker, floor_relays: Mapping[str, RelayConfig]) -> str:
    """Every relay of both daemons and ``floor_relays``, and the sensors, for the simulator."""
    return (miio_config({**sensed_relays(), **plain_relays(), **floor_relays})
            + mqtt_text(broker, f"stovectl-bench-sim-{os.getpid()}") + sensors_text())


@dataclass(frozen=True)
class Kitchen:
    broker: Broker
    simulator: RelaySimulator
    with_sensors: DaemonProcess
    without_sensors: DaemonProcess


@contextlib.contextmanager
def kitchen(floor_relays: Mapping[str, RelayConfig] | None = None) -> Iterator[Kitchen]:
    """A broker, the simulated relays and sensors on it, then the two daemons.

    ``floor_relays`` are simulated too, for a floor of another module to poll.
    """
    try:
        with (
            running_broker("anonymous") as broker,
            running_simulator(simulator_config(broker, floor_relays or {})) as simulator,
            running_daemon(daemon_config(broker, sensors=True)) as with_sensors,
            running_daemon(daemon_config(broker, sensors=False)) as without_sensors,
        ):
            yield Kitchen(broker, simulator, with_sensors, without_sensors)
    except AssertionError as error:  # how tests.support reports a misbehaving daemon or broker
        raise BenchError(f"the idle kitchen misbehaved: {error}") from None
    except pytest.fail.Exception as error:  # tests.support.broker without mosquitto
        raise BenchError(str(error)) from None
    except (OSError, SimulationRefused) as error:  # a simulator's address taken, say
        raise BenchError(f"the idle kitchen failed: {error}") from None


@contextlib.contextmanager
def floor_subscriber(broker: Broker) -> Iterator[subprocess.Popen[str]]:
    """The bare subscriber, connected and subscribed; killed on exit."""
    process = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SCRIPT, broker.host, str(broker.port), *sensor_topics()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=clean_environment(),
    )
    try:
        if read_line(process) != "ready":
            raise BenchError("the bare subscriber did not subscribe")
        yield process
    finally:
        process.kill()
        process.communicate()


def read_line(process: subprocess.Popen[str]) -> str:
    """The process's next line of output; fail if it dies or says nothing in time."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=READY_TIMEOUT_SECONDS):
            raise BenchError(f"the bare subscriber said nothing within "
                             f"{READY_TIMEOUT_SECONDS:g}s")
    line = process.stdout.readline().strip()
    if not line:
        _, stderr = process.communicate()
        raise BenchError(f"the bare subscriber exited {process.returncode}: {stderr.strip()}")
    return line


def received(process: subprocess.Popen[str]) -> int:
    """How many messages the bare subscriber has counted so far."""
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()
    return int(read_line(process))


def process_cpu_clock(pid: int) -> int:
    """The clock id of process ``pid``'s CPU time, as glibc's ``clock_getcpuclockid`` makes it.

    Linux's encoding (``MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)``): the whole
    thread group's run time, threads that have exited included.
    """
    return ((~pid) << 3) | CPUCLOCK_SCHED


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid`` so far, user and system, all its threads."""
    try:
        return time.clock_gettime(process_cpu_clock(pid))
    except OSError:
        pass  # not Linux, or not allowed: the coarser ticks below
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError as error:
        raise BenchError(f"cannot read the CPU time of process {pid}: {error}") from None
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def measure(kitchen: Kitchen, also: Mapping[str, int] | None = None) -> dict[str, float]:
    """Percent of one core over the window, for each daemon, the bare subscriber and the
    processes in ``also`` (label: pid), read alongside."""
    daemons = {WITH_SENSORS: kitchen.with_sensors, WITHOUT_SENSORS: kitchen.without_sensors}
    pids = {}
    for label, daemon in daemons.items():
        if daemon.process is None:
            raise BenchError(f"{label}: the daemon is not running")
        pids[label] = daemon.process.pid
    with floor_subscriber(kitchen.broker) as floor:
        pids[FLOOR] = floor.pid
        pids.update(also or {})
        time.sleep(SETTLE_SECONDS)  # let start-up settle: a benchmark, not a synchronisation
        count_before = received(floor)
        before = {label: cpu_seconds(pid) for label, pid in pids.items()}
        started = time.monotonic()
        time.sleep(WINDOW_SECONDS)
        after = {label: cpu_seconds(pid) for label, pid in pids.items()}
        elapsed = time.monotonic() - started
        count = received(floor) - count_before
    expected = len(probed_burners()) * elapsed / PROBE_INTERVAL_SECONDS
    if count < DELIVERED_AT_LEAST * expected:
        raise BenchError(f"the sensors' messages did not flow: the bare subscriber got {count} "
                         f"of ~{expected:.0f} in {elapsed:.1f}s")
    return {label: (after[label] - before[label]) / elapsed * 100 for label in pids}


def figures(cpu: dict[str, float]) -> list[Figure]:
    """The daemon with sensors against the bare subscriber, and against itself without."""
    probes = len(probed_burners())
    rate = probes / PROBE_INTERVAL_SECONDS
    name = (f"daemon idle CPU, {WINDOW_SECONDS:g}s: 2 miIO relays polled 1/s, "
            f"{probes} probes at {rate:g} msg/s + 2 sensors")
    return [
        Figure(name, cpu[WITH_SENSORS], FLOOR, cpu[FLOOR], "% core", decimals=2),
        Figure(name, cpu[WITH_SENSORS], WITHOUT_SENSORS, cpu[WITHOUT_SENSORS], "% core",
               decimals=2),
    ]
