"""How long ``stovectl off`` takes to cut a relay at a miIO device, beside a bare miIO write.

A real daemon (``stovectl run``) drives ``stovectl simulate``'s miIO relays,
run in this process on a background loop (tests.support.relay_sim), over real
UDP on loopback. Each timing ends when the simulated relay switches to cut, as
the simulator time-stamps it, so it is what a multimeter on the relay would
see. Per round, interleaved:

* ``stovectl off BURNER`` as a user runs it, a fresh process from its start;
* the same ``off`` over an open control-socket connection: the daemon's share;
* the floor: python-miio's ``Device.send("set_properties", ...)`` switching an
  unwired relay on the same simulator, one UDP round trip with no daemon.

Every shutoff starts from an armed relay: the burners rotate over several
two-channel relays, and a round waits (untimed) for its relay to have re-armed
itself after ``cut_hold``, as yeelink.switch.sw1's off-delay does.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from miio.device import Device

from stovectl.control.client import ControlClient
from stovectl.devices.base import RelayState
from stovectl.errors import ControlError
from tests.bench.figures import BenchError, Figure, summary
from tests.support.daemon import STOVECTL, DaemonProcess, clean_environment, running_daemon
from tests.support.relay_sim import (
    TOKEN,
    RelayConfig,
    RelaySimulator,
    miio_config,
    running_simulator,
)

ROUNDS = 30
WARM_UP_ROUNDS = 2
RELAYS = 6
FLOOR_DEVICE = "floor"
FLOOR_HOST = "127.0.3.49"
REARM_TIMEOUT_SECONDS = 10.0
CUT_TIMEOUT_SECONDS = 5.0
CLI = "stovectl off → relay cut"
SOCKET = "off over the socket → relay cut"
FLOOR = "python-miio set_properties → relay cut"
SWITCH = {"did": "floor", "siid": 2, "piid": 1}


@dataclass(frozen=True)
class Burner:
    id: str
    device: str
    channel: int


def bench_relays() -> dict[str, RelayConfig]:
    """Six yeelink.switch.sw1 relays with a burner per channel, and the floor's unwired relay."""
    relays = {
        f"relay{n}": RelayConfig(f"127.0.3.{40 + n}", (f"front{n}", f"back{n}"))
        for n in range(1, RELAYS + 1)
    }
    relays[FLOOR_DEVICE] = RelayConfig(FLOOR_HOST, (), model="generic.relay.1")
    return relays


def burners() -> list[Burner]:
    """First channels, then second channels: consecutive rounds use other relays."""
    relays = [(device, relay) for device, relay in bench_relays().items() if relay.burners]
    return [
        Burner(relay.burners[channel - 1], device, channel)
        for channel in (1, 2) for device, relay in relays
    ]


@contextlib.contextmanager
def kitchen() -> Iterator[tuple[RelaySimulator, DaemonProcess]]:
    """The simulated relays, then a daemon on them (NC wiring, cut_hold 2 s)."""
    config = miio_config(bench_relays())
    try:
        with running_simulator(config) as simulator, running_daemon(config) as daemon:
            yield simulator, daemon
    except AssertionError as error:  # how tests.support reports a misbehaving daemon
        raise BenchError(f"the miIO daemon misbehaved: {error}") from None


class _Rounds:
    def __init__(self, simulator: RelaySimulator, daemon: DaemonProcess) -> None:
        self.simulator = simulator
        self.daemon = daemon
        self.rotation = itertools.cycle(burners())
        self.floor_client = Device(FLOOR_HOST, TOKEN, timeout=2)

    def armed_burner(self) -> Burner:
        """The next burner, once its relay has re-armed (untimed)."""
        burner = next(self.rotation)
        try:
            self.simulator.wait_state(
                burner.device, burner.channel, RelayState.OFF, REARM_TIMEOUT_SECONDS
            )
        except AssertionError as error:
            raise BenchError(f"{burner.id} did not re-arm: {error}") from None
        return burner

    def cut_after(self, device: str, channel: int, started: float) -> float:
        """Milliseconds from ``started`` to the channel switching on (cut, NC wiring)."""
        deadline = time.monotonic() + CUT_TIMEOUT_SECONDS
        while True:
            cuts = [
                s for s in self.simulator.switches(device, channel)
                if s.state is RelayState.ON and s.at >= started
            ]
            if cuts:
                return (cuts[0].at - started) * 1000
            if time.monotonic() > deadline:
                raise BenchError(f"{device} channel {channel} was not cut")
            time.sleep(0.001)

    def cli(self) -> float:
        burner = self.armed_burner()
        argv = [str(STOVECTL), "--socket", str(self.daemon.socket_path), "off", burner.id]
        started = time.monotonic()
        result = subprocess.run(
            argv, capture_output=True, stdin=subprocess.DEVNULL, env=clean_environment(),
            timeout=30, check=False,
        )
        if result.returncode != 0:
            raise BenchError(f"stovectl off {burner.id}: exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace').strip()}")
        return self.cut_after(burner.device, burner.channel, started)

    def socket(self, client: ControlClient) -> float:
        burner = self.armed_burner()
        started = time.monotonic()
        try:
            reply = client.call("off", burners=[burner.id])
        except ControlError as error:
            raise BenchError(f"off {burner.id} over the socket: {error}") from None
        if not reply.get("ok") or reply["result"]["outcomes"][0]["result"] != "verified":
            raise BenchError(f"off {burner.id} over the socket was not verified: {reply}")
        return self.cut_after(burner.device, burner.channel, started)

    def floor(self) -> float:
        set_floor_switch(self.floor_client, False)  # untimed: back to armed
        started = time.monotonic()
        set_floor_switch(self.floor_client, True)
        return self.cut_after(FLOOR_DEVICE, 1, started)


def set_floor_switch(client: Device, value: bool) -> None:
    """The floor: python-miio's bare ``set_properties`` on the unwired floor relay."""
    try:
        reply = client.send("set_properties", [{**SWITCH, "value": value}])
    except Exception as error:  # python-miio raises its own tree and OSError alike
        raise BenchError(f"python-miio set_properties failed: {error}") from None
    if reply != [{**SWITCH, "code": 0}]:
        raise BenchError(f"python-miio set_properties answered {reply!r}")


def measure(
    simulator: RelaySimulator, daemon: DaemonProcess, rounds: int = ROUNDS
) -> dict[str, list[float]]:
    """Milliseconds to the relay cut for each way, ``rounds`` of each, interleaved."""
    bench = _Rounds(simulator, daemon)
    samples: dict[str, list[float]] = {CLI: [], SOCKET: [], FLOOR: []}
    with ControlClient(daemon.socket_path, timeout_seconds=30) as client:
        ways = {CLI: bench.cli, SOCKET: lambda: bench.socket(client), FLOOR: bench.floor}
        for _ in range(WARM_UP_ROUNDS):
            for way in ways.values():
                way()
        for index in range(rounds):
            labels = list(ways)
            shift = index % len(labels)  # rotate the order, so no way always goes first
            for label in labels[shift:] + labels[:shift]:
                samples[label].append(ways[label]())
    return samples


def figures(samples: dict[str, list[float]]) -> list[Figure]:
    """Median and p99 of each shutoff way against the bare python-miio write's."""
    floor = summary(samples[FLOOR])
    result = []
    for label in (CLI, SOCKET):
        stats = summary(samples[label])
        n = int(stats["n"])
        result += [
            Figure(f"{label}, {stat} (n={n})", stats[stat], f"{FLOOR}, {stat}", floor[stat], "ms")
            for stat in ("median", "p99")
        ]
    return result
