"""A controller on the simulated stove, on virtual time: the core's test bench.

Builds exactly what the daemon builds (settings → simulated world → store →
controller) but on a VirtualTimeLoop, so tests can let minutes of stove time
pass in microseconds, crash and restart the controller over the same SQLite
file, and observe the relays and the stove as a multimeter and an eye would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stovectl.core.controller import BurnerController
from stovectl.core.deadlines import Clock
from stovectl.core.events import Event, Kind
from stovectl.core.store import Store
from stovectl.devices.base import RelayState
from stovectl.settings import Settings
from stovectl.sim.stove import BurnerSnapshot
from stovectl.sim.world import SimulatedWorld
from tests.support.virtual_time import VirtualClock, VirtualTimeLoop


def kitchen_config(*, two_devices: bool = False, **sections: Any) -> dict[str, Any]:
    """A two-burner config on simulated relays; ``sections`` replace or extend parts."""
    devices = [{"kind": "simulated", "id": "sim", "channels": 2}]
    burners = [
        {"id": "left", "device": "sim", "channel": 1, "cut_state": "on"},
        {"id": "right", "device": "sim", "channel": 2, "cut_state": "on"},
    ]
    if two_devices:
        devices = [
            {"kind": "simulated", "id": "front", "channels": 1},
            {"kind": "simulated", "id": "back", "channels": 1},
        ]
        burners = [
            {"id": "left", "device": "front", "channel": 1, "cut_state": "on"},
            {"id": "right", "device": "back", "channel": 1, "cut_state": "off"},
        ]
    config: dict[str, Any] = {"devices": devices, "burners": burners}
    config.update(sections)
    return config


class Kitchen:
    """The simulated stove, its relays and a controller, on virtual time."""

    def __init__(
        self, settings: Settings, state_dir: Path, clock: Clock | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        # A real loop only with a real clock (time-machine tests); otherwise virtual time.
        assert clock is not None or isinstance(loop, VirtualTimeLoop), (
            "run kitchen tests on a VirtualTimeLoop"
        )
        self.loop = loop
        self.settings = settings
        self.clock: Any = clock or VirtualClock(loop)
        """The controller's clock: virtual by default, or e.g. SystemClock under time-machine."""
        self.world = SimulatedWorld(settings, clock=loop.time)
        self.db_path = state_dir / "stovectl.db"
        self.events: list[Event] = []
        self.listeners: list[Callable[[Event], None]] = []
        """Called with every event, across restarts."""
        self._event_arrived = asyncio.Event()
        self.controller = self._new_controller()

    def _new_controller(self) -> BurnerController:
        self.store = Store(self.db_path)
        self.store.open()
        controller = BurnerController(self.settings, self.world.devices, self.store, self.clock)
        controller.events.subscribe(self._record)
        return controller

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self._event_arrived.set()
        for listener in self.listeners:
            listener(event)

    async def start(self) -> None:
        await self.controller.start()
        self.world.attach_sensors(self.controller.sensors)

    async def close(self) -> None:
        self.world.close_sensors()
        await self.controller.close()
        self.store.close()

    async def restart(self) -> None:
        """Drop the controller as a crash would and start a new one on the same store."""
        await self.close()
        self.controller = self._new_controller()
        await self.start()

    async def elapse(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass with everything running."""
        await asyncio.sleep(seconds)

    def now(self) -> float:
        return self.loop.time()

    def relay(self, burner: str) -> RelayState:
        spec = self.settings.burner(burner)
        return self.world.devices[spec.device].state(spec.channel)

    def is_cut(self, burner: str) -> bool:
        return self.relay(burner) is RelayState(self.settings.burner(burner).cut_state)

    def stove(self, burner: str) -> BurnerSnapshot:
        return self.world.stove.snapshot(burner)

    async def light(self, burner: str, hold_seconds: float = 6.0) -> BurnerSnapshot:
        """Push the knob, keep it pushed while the thermocouple heats, let go."""
        self.world.stove.push_knob(burner)
        await self.elapse(hold_seconds)
        self.world.stove.release_knob(burner)
        return self.stove(burner)

    def mode(self, burner: str) -> str:
        return next(r["mode"] for r in self.controller.status() if r["id"] == burner)

    def row(self, burner: str) -> dict[str, Any]:
        return next(r for r in self.controller.status() if r["id"] == burner)

    def find(self, kind: Kind, burner: str | None = None, **fields: Any) -> list[Event]:
        return [
            e for e in self.events
            if e.kind is kind and (burner is None or e.burner == burner)
            and all(getattr(e, k) == v for k, v in fields.items())
        ]

    async def wait_event(
        self, match: Callable[[Event], bool], within: float, *, after: int = 0
    ) -> Event:
        """The first event (from index ``after``) that matches, waiting up to ``within`` seconds."""
        async with asyncio.timeout(within):
            while True:
                for event in self.events[after:]:
                    if match(event):
                        return event
                self._event_arrived.clear()
                await self._event_arrived.wait()
