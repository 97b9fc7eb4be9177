"""How long ``off all`` takes to cut 32 burners on 16 miIO relays, beside bare python-miio.

A real daemon (``stovectl run``) drives 16 simulated yeelink.switch.sw1 relays,
two burners each, run in this process on a background loop
(tests.support.relay_sim) over real UDP on loopback; NC wiring, ``cut_hold``
2 s, cut with the relays' own off-delay pulses. Each round sends ``off all``
over an open control-socket connection and, for every burner, times the
command to its channel switching to cut, as the simulator time-stamps it; the
reply (every burner verified, so every cut has happened) ends the round. A
round starts once every relay has re-armed itself and the daemon shows every
burner armed again (untimed).

The floor does the same 32 cuts with no daemon: a fresh subprocess on the same
interpreter (so its threads do not share this process's GIL with the
simulator) holds a python-miio ``Device`` per relay for 16 more unwired relays
on the same simulator; per round it switches them all off (untimed), then
releases 16 threads at once, each sending one ``set_properties`` per channel,
in turn, as the daemon's one lane per device does. Its start is
``time.monotonic`` as the threads are released, which is the simulator's clock
(CLOCK_MONOTONIC is one clock for every process). Daemon and floor rounds
alternate which goes first. Figures: p50, p99 and max over every burner of
every round, each against the floor's same statistic.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stovectl.control.client import ControlClient
from stovectl.devices.base import RelayState
from tests.bench.figures import BenchError, Figure, ask, summary
from tests.support.daemon import DaemonProcess, clean_environment, running_daemon
from tests.support.relay_sim import (
    TOKEN,
    RelayConfig,
    RelaySimulator,
    miio_config,
    running_simulator,
)

ROUNDS = 8
WARM_UP_ROUNDS = 1
RELAYS = 16
CHANNELS = 2
REARM_TIMEOUT_SECONDS = 10.0
FLOOR_TIMEOUT_SECONDS = 15.0
POLL_INTERVAL_SECONDS = 0.02
DAEMON = "off all → each burner's relay cut, 32 burners on 16 miIO relays"
FLOOR = "16 bare python-miio clients at once, the same 32 cuts"

FLOOR_SCRIPT = """\
import sys, threading, time
from miio.device import Device

token, hosts = sys.argv[1], sys.argv[2:]
devices = [Device(host, token, timeout=2) for host in hosts]
errors = []

def switch(device, value):
    for siid in (2, 3):  # yeelink.switch.sw1's two channels, one request each
        item = {"did": f"{siid}-1", "siid": siid, "piid": 1, "value": value}
        try:
            reply = device.send("set_properties", [item])
            if [entry.get("code") for entry in reply] != [0]:
                errors.append(f"{device.ip}: {reply!r}")
        except Exception as error:
            errors.append(f"{device.ip}: {error!r}")

for _ in sys.stdin:  # each line asks for a round
    for device in devices:
        switch(device, False)  # untimed: back to armed
    started = []
    barrier = threading.Barrier(len(devices), action=lambda: started.append(time.monotonic()))
    threads = [threading.Thread(target=lambda d=d: (barrier.wait(), switch(d, True)))
               for d in devices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"error {errors}" if errors else repr(started[0]), flush=True)
"""


@dataclass(frozen=True)
class Channel:
    device: str
    channel: int


def daemon_relays() -> dict[str, RelayConfig]:
    """16 yeelink.switch.sw1 relays with a burner per channel."""
    return {
        f"fleet{n:02d}": RelayConfig(f"127.0.23.{n}", (f"f{n:02d}a", f"f{n:02d}b"))
        for n in range(1, RELAYS + 1)
    }


def floor_relays() -> dict[str, RelayConfig]:
    """16 more of them, unwired, for the floor (its own: miIO request ids are per client)."""
    return {f"fleetfloor{n:02d}": RelayConfig(f"127.0.23.{20 + n}", ()) for n in
            range(1, RELAYS + 1)}


def channels(relays: dict[str, RelayConfig]) -> list[Channel]:
    return [Channel(device, channel) for device in relays for channel in range(1, CHANNELS + 1)]


@dataclass(frozen=True)
class Kitchen:
    simulator: RelaySimulator
    daemon: DaemonProcess


@contextlib.contextmanager
def kitchen() -> Iterator[Kitchen]:
    """Every relay simulated, then a daemon on the wired ones (NC wiring, cut_hold 2 s)."""
    try:
        with (
            running_simulator(miio_config({**daemon_relays(), **floor_relays()})) as simulator,
            running_daemon(miio_config(daemon_relays())) as daemon,
        ):
            yield Kitchen(simulator, daemon)
    except AssertionError as error:  # how tests.support reports a misbehaving daemon
        raise BenchError(f"the miIO fleet daemon misbehaved: {error}") from None
    except OSError as error:  # a simulated relay's address taken, say
        raise BenchError(f"the miIO fleet failed: {error}") from None


@contextlib.contextmanager
def floor_process() -> Iterator[subprocess.Popen[str]]:
    """The floor's subprocess, holding a client per floor relay; killed on exit."""
    hosts = [relay.host for relay in floor_relays().values()]
    process = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SCRIPT, TOKEN, *hosts],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=clean_environment(),
    )
    try:
        yield process
    finally:
        process.kill()
        process.communicate()


class _Rounds:
    def __init__(
        self, kitchen: Kitchen, client: ControlClient, floor: subprocess.Popen[str]
    ) -> None:
        self.simulator = kitchen.simulator
        self.client = client
        self.floor_process = floor

    def cuts_after(self, wired: list[Channel], started: float) -> list[float]:
        """Ms from ``started`` to each channel's first switch to cut (on) since then."""
        result = []
        for item in wired:
            cuts = [s.at for s in self.simulator.switches(item.device, item.channel)
                    if s.state is RelayState.ON and s.at >= started]
            if not cuts:
                raise BenchError(f"{item.device} channel {item.channel} was not cut")
            result.append((cuts[0] - started) * 1000)
        return result

    def wait_armed(self) -> None:
        """Every wired relay re-armed by itself, and the daemon showing every burner armed."""
        try:
            for item in channels(daemon_relays()):
                self.simulator.wait_state(item.device, item.channel, RelayState.OFF,
                                          REARM_TIMEOUT_SECONDS)
        except AssertionError as error:
            raise BenchError(f"a relay did not re-arm: {error}") from None
        deadline = time.monotonic() + REARM_TIMEOUT_SECONDS
        while True:
            rows = self.call("status")["burners"]
            if all((row["mode"], row["relay"], row["pending"]) == ("armed", "armed", False)
                   for row in rows):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"the daemon did not show every burner armed again: {rows}")
            time.sleep(POLL_INTERVAL_SECONDS)  # polling an observable state with a deadline

    def call(self, op: str, **args: Any) -> Any:
        return ask(self.client, op, **args)

    def daemon(self) -> list[float]:
        self.wait_armed()
        started = time.monotonic()
        result = self.call("off", burners=["all"])
        outcomes = result["outcomes"]
        if len(outcomes) != RELAYS * CHANNELS or any(o["result"] != "verified" for o in outcomes):
            raise BenchError(f"off all was not verified for every burner: {outcomes}")
        return self.cuts_after(channels(daemon_relays()), started)

    def floor(self) -> list[float]:
        process = self.floor_process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("\n")
        process.stdin.flush()
        line = process.stdout.readline().strip()
        if not line or line.startswith("error"):
            if not line:
                _, stderr = process.communicate(timeout=FLOOR_TIMEOUT_SECONDS)
                line = f"exited {process.returncode}: {stderr.strip()}"
            raise BenchError(f"the python-miio floor failed: {line}")
        return self.cuts_after(channels(floor_relays()), float(line))


def measure(kitchen: Kitchen, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Ms from the command to each burner's cut, every burner of every round, both ways."""
    samples: dict[str, list[float]] = {DAEMON: [], FLOOR: []}
    with (
        ControlClient(kitchen.daemon.socket_path, timeout_seconds=30) as client,
        floor_process() as floor,
    ):
        bench = _Rounds(kitchen, client, floor)
        for _ in range(WARM_UP_ROUNDS):  # the floor's handshakes, the daemon's first cut
            bench.floor()
            bench.daemon()
        for index in range(rounds):
            if index % 2:  # alternate which goes first
                samples[FLOOR] += bench.floor()
                samples[DAEMON] += bench.daemon()
            else:
                samples[DAEMON] += bench.daemon()
                samples[FLOOR] += bench.floor()
    return samples


def figures(samples: dict[str, list[float]]) -> list[Figure]:
    """p50, p99 and max over every burner's cut, against the bare clients' same statistic."""
    daemon, floor = summary(samples[DAEMON]), summary(samples[FLOOR])
    n = int(daemon["n"])
    return [
        Figure(f"{DAEMON}, {stat} (n={n})", daemon[key], f"{FLOOR}, {stat}", floor[key], "ms")
        for stat, key in (("p50", "median"), ("p99", "p99"), ("max", "max"))
    ]
