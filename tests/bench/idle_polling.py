"""What a daemon polling 2 miIO relays with MQTT connected costs, beside a bare poller.

The daemon measured is idle_cpu's daemon without sensors: a real ``stovectl
run`` polling two simulated yeelink.switch.sw1 relays every second over miIO
UDP on loopback, connected to Mosquitto and subscribed to its command topics,
and nothing else. The floor is a bare script on the same interpreter doing the
same work with no stovectl: python-miio ``Device``s reading both channels of
two more simulated relays (one ``get_properties`` per relay, as the daemon
reads) every second from a thread, and a paho client (MQTT 5, keepalive 30 s,
as the daemon's) connected to the same broker and subscribed at QoS 1 to a
``+/set`` filter, idle. It counts its polls, so the bench knows they happened.

Both run in idle_cpu's window, read the same way (``idle_cpu.cpu_seconds``).
Their resident sets (``VmRSS``) are read right after the window, when both have
been idle for its length. The ratios are what stovectl adds to the work itself.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

from tests.bench import idle_cpu
from tests.bench.figures import BenchError, Figure
from tests.bench.idle_memory import rss_mib
from tests.support.broker import Broker
from tests.support.daemon import DaemonProcess, clean_environment
from tests.support.relay_sim import TOKEN, RelayConfig

POLL_SECONDS = 1.0
POLLED_AT_LEAST = 0.9
"""The share of the expected polls the floor must have made in the window, or it is void."""
FLOOR = "bare python-miio polling 2 devices 1/s + idle paho client"
DAEMON = "daemon, 2 miIO devices polled every second and MQTT connected, no sensors"
WHAT = "2 miIO devices polled every second and MQTT connected, no sensors"

FLOOR_SCRIPT = """\
import sys, threading, time
import paho.mqtt.client as mqtt
from miio.device import Device
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

host, port, token, interval, hosts = (sys.argv[1], int(sys.argv[2]), sys.argv[3],
                                      float(sys.argv[4]), sys.argv[5:])
devices = [Device(device_host, token, timeout=2) for device_host in hosts]
items = [{"did": f"ch{n}", "siid": siid, "piid": 1} for n, siid in ((1, 2), (2, 3))]
polls, failures = 0, []
subscribed, polled = threading.Event(), threading.Event()

def poll():
    global polls
    due = time.monotonic()
    while True:
        for device in devices:
            try:
                device.send("get_properties", items)
            except Exception as error:
                failures.append(repr(error))
        polls += 1
        polled.set()
        due += interval
        time.sleep(max(0.0, due - time.monotonic()))

client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-idle-poller",
                     protocol=MQTTProtocolVersion.MQTTv5)
client.on_connect = lambda c, u, f, r, p: c.subscribe("bench-poller/+/set", 1)
client.on_subscribe = lambda c, u, m, r, p: subscribed.set()
client.connect(host, port, keepalive=30)
client.loop_start()  # paho's network thread, as the daemon runs it
threading.Thread(target=poll, name="poller", daemon=True).start()
subscribed.wait(10)
polled.wait(10)
print("ready", flush=True)
for _ in sys.stdin:  # each line asks how many polls so far, and any failures
    print(f"failed {failures[:3]}" if failures else polls, flush=True)
"""


def floor_relays() -> dict[str, RelayConfig]:
    """The floor's two relays, unwired: its own, as miIO request ids are per client."""
    return {f"pollfloor{n}": RelayConfig(f"127.0.23.{40 + n}", ()) for n in (1, 2)}


@contextlib.contextmanager
def floor_poller(broker: Broker) -> Iterator[subprocess.Popen[str]]:
    """The bare poller, connected, subscribed and past its first poll; killed on exit."""
    hosts = [relay.host for relay in floor_relays().values()]
    process = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SCRIPT, broker.host, str(broker.port), TOKEN,
         str(POLL_SECONDS), *hosts],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=clean_environment(),
    )
    try:
        if idle_cpu.read_line(process) != "ready":
            raise BenchError("the bare poller did not start")
        yield process
    finally:
        process.kill()
        process.communicate()


def polls(process: subprocess.Popen[str]) -> int:
    """How many rounds of polls the bare poller has made; fail if any poll failed."""
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()
    line = idle_cpu.read_line(process)
    if line.startswith("failed"):
        raise BenchError(f"the bare poller's polls {line}")
    return int(line)


def check_polled(before: int, after: int, window_seconds: float) -> None:
    """The window is void unless the floor really polled about once a second."""
    expected = window_seconds / POLL_SECONDS
    if after - before < POLLED_AT_LEAST * expected:
        raise BenchError(f"the bare poller polled {after - before} times in "
                         f"{window_seconds:g}s, not ~{expected:.0f}")


def measure(
    kitchen: idle_cpu.Kitchen, floor: subprocess.Popen[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """idle_cpu's window with the bare poller read alongside, then both resident sets."""
    before, started = polls(floor), time.monotonic()
    cpu = idle_cpu.measure(kitchen, also={FLOOR: floor.pid})
    check_polled(before, polls(floor), time.monotonic() - started)
    return cpu, measure_rss(kitchen.without_sensors, floor)


def measure_rss(daemon: DaemonProcess, floor: subprocess.Popen[str]) -> dict[str, float]:
    """MiB resident for the daemon without sensors and for the bare poller, now."""
    if daemon.process is None:
        raise BenchError(f"{DAEMON}: the daemon is not running")
    return {DAEMON: rss_mib(daemon.process.pid), FLOOR: rss_mib(floor.pid)}


def figures(cpu: dict[str, float], resident: dict[str, float]) -> list[Figure]:
    """The daemon without sensors against the bare poller: CPU over the window, then RSS."""
    return [
        Figure(f"daemon idle CPU, {idle_cpu.WINDOW_SECONDS:g}s: {WHAT}",
               cpu[idle_cpu.WITHOUT_SENSORS], FLOOR, cpu[FLOOR], "% core", decimals=2),
        Figure(f"daemon RSS after the idle window: {WHAT}", resident[DAEMON],
               f"{FLOOR}, RSS", resident[FLOOR], "MiB"),
    ]
