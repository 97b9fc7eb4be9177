"""The controller's shutoff latency on the simulated device, in-process, in real time.

A real asyncio loop on the real clock drives what the daemon drives: the
simulated world (5 ms per request by default), a real SQLite store in a
temporary folder, and the controller with its actuators and pollers running.
Each round times ``controller.shutoff(["left"], "cli")`` and, on the same
relay, the floor: a bare ``write`` plus ``read``, the two device round trips
any verified cut needs. Their ratio is the controller's own overhead — the
policy, the synchronous SQLite write of the intent and the event, the
actuator hand-over. The two alternate which goes first, so the poller's
occasional read on the same device lane delays both alike.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from stovectl.core.controller import BurnerController
from stovectl.core.events import Result
from stovectl.core.store import Store
from stovectl.devices.base import RelayState
from stovectl.settings import Settings
from stovectl.sim.world import SimulatedWorld
from tests.bench.figures import BenchError, Figure, summary

ROUNDS = 200
WARM_UP_ROUNDS = 5
BURNER = "left"
CONTROLLER = "controller.shutoff"
FLOOR = "relay write+read"


async def measure(settings: Settings, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Milliseconds per shutoff and per bare relay round trip pair, ``rounds`` of each."""
    spec = settings.burner(BURNER)
    cut = RelayState(spec.cut_state)
    samples: dict[str, list[float]] = {CONTROLLER: [], FLOOR: []}
    with tempfile.TemporaryDirectory(prefix="stovectl-bench-") as folder:
        store = Store(Path(folder) / "stovectl.db")
        store.open()
        world = SimulatedWorld(settings)
        relay = world.devices[spec.device]
        controller = BurnerController(settings, world.devices, store)
        try:
            await controller.start()

            async def shutoff() -> float:
                started = time.perf_counter()
                outcomes = await controller.shutoff([BURNER], "cli")
                elapsed_ms = (time.perf_counter() - started) * 1000
                if [o.result for o in outcomes] != [Result.VERIFIED]:
                    raise BenchError(f"a shutoff of {BURNER} was not verified: {outcomes}")
                return elapsed_ms

            async def round_trips() -> float:
                started = time.perf_counter()
                await relay.write(spec.channel, cut)
                states = await relay.read()
                elapsed_ms = (time.perf_counter() - started) * 1000
                if states[spec.channel] is not cut:
                    raise BenchError(f"relay {relay.id} channel {spec.channel} did not stay cut")
                return elapsed_ms

            for _ in range(WARM_UP_ROUNDS):
                await shutoff()
                await round_trips()
            for index in range(rounds):
                if index % 2:
                    samples[FLOOR].append(await round_trips())
                    samples[CONTROLLER].append(await shutoff())
                else:
                    samples[CONTROLLER].append(await shutoff())
                    samples[FLOOR].append(await round_trips())
        finally:
            await controller.close()
            store.close()
    return samples


def figures(samples: dict[str, list[float]], response_ms: float) -> list[Figure]:
    """Median and p99 of the shutoff against the same statistic of the bare round trips."""
    shutoff, floor = summary(samples[CONTROLLER]), summary(samples[FLOOR])
    n = int(shutoff["n"])
    return [
        Figure(f'shutoff(["{BURNER}"]) in-process, {stat} (n={n})', shutoff[stat],
               f"{FLOOR} ({response_ms:g} ms sim), {stat}", floor[stat], "ms")
        for stat in ("median", "p99")
    ]
