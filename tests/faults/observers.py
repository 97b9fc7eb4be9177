"""What the fault tests observe: a daemon and its relays, seen from outside (the invariants'
DaemonView and Hob, tests.support.invariants).

``ProcessView`` reads a ``stovectl run`` subprocess over its control socket and
its SQLite file; ``SimulatorHob`` reads tests.support.relay_sim's relays and
stove and what reached them. ``KitchenView`` and ``KitchenHob`` do the same for
a controller in this process (tests.support.kitchen), where time-machine can
move the wall clock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stovectl.control.client import ControlClient
from stovectl.devices.base import RelayState
from stovectl.errors import DaemonUnreachable, ProtocolError
from tests.support.invariants import Switch, Wire

HISTORY_LIMIT = 10_000
CLIENT_TIMEOUT_SECONDS = 10.0


class ProcessView:
    """A ``stovectl run`` subprocess, read over its control socket and from its SQLite file.

    The control socket gives exactly what ``status --json`` and ``history --json`` print,
    without starting a CLI process for each read (checks run after every one of many faults).
    """

    def __init__(self, socket_path: Path, state_dir: Path) -> None:
        self.socket_path = socket_path
        self.database = state_dir / "stovectl.db"

    def _call(self, op: str, **args: Any) -> dict[str, Any]:
        with ControlClient(self.socket_path, timeout_seconds=CLIENT_TIMEOUT_SECONDS) as client:
            reply = client.call(op, **args)
        assert reply.get("ok"), f"{op} failed: {reply}"
        result: dict[str, Any] = reply["result"]
        return result

    def answers(self) -> bool:
        try:
            return self._call("ping").get("pong") is True
        except (DaemonUnreachable, ProtocolError, AssertionError):
            return False

    def status(self) -> list[dict[str, Any]]:
        return list(self._call("status")["burners"])

    def history(self, since: float | None) -> list[dict[str, Any]]:
        window = {} if since is None else {"since": since}
        return list(self._call("history", limit=HISTORY_LIMIT, **window)["events"])

    def stored_locks(self) -> dict[str, str | None] | None:
        return stored_locks(self.database)


def stored_locks(database: Path) -> dict[str, str | None] | None:
    """The locks in a daemon's SQLite file, read-only (the daemon may be running or dead)."""
    if not database.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT burner, reason FROM intents WHERE mode = 'locked'").fetchall()
    return {str(burner): reason for burner, reason in rows}


class SimulatorHob:
    """The relays of a tests.support.relay_sim.RelaySimulator and its simulated stove."""

    def __init__(self, simulator: Any, wiring: Mapping[str, Wire]) -> None:
        self.simulator = simulator
        self.wiring = wiring

    def relay(self, burner: str) -> RelayState:
        wire = self.wiring[burner]
        state: RelayState = self.simulator.state(wire.device, wire.channel)
        return state

    def loop_closed(self, burner: str) -> bool:
        return bool(self.simulator.loop_closed(burner))

    def switches(self, burner: str) -> list[Switch]:
        wire = self.wiring[burner]
        # The simulator stamps switches with time.monotonic(); no test here moves the
        # wall clock of a subprocess, so one offset converts them.
        offset = time.time() - time.monotonic()
        return [Switch(s.at, s.at + offset, s.state)
                for s in self.simulator.switches(wire.device, wire.channel)]

    def wire_problems(self) -> list[str]:
        simulation = self.simulator.simulation
        devices = {**simulation.devices, **simulation.mqtt_devices}

        def look() -> list[str]:
            problems = []
            for device_id, device in devices.items():
                if hasattr(device, "toggles"):
                    problems += [f"device {device_id}: a toggle reached it: {c}"
                                 for c in device.toggles]
                    problems += [f"device {device_id}: a retained command reached it: {c}"
                                 for c in device.commands if c.retain]
                else:
                    problems += _miio_wire_problems(device_id, device.traffic.requests)
            return problems

        return list(self.simulator.call(look))


def _miio_wire_problems(device_id: str, requests: Sequence[dict[str, Any]]) -> list[str]:
    problems = []
    for request in requests:
        method = request.get("method")
        if isinstance(method, str) and "toggle" in method.lower():
            problems.append(f"device {device_id}: a toggle reached it: {request}")
        if method == "set_properties":
            for item in request.get("params") or []:
                if isinstance(item, dict) and item.get("piid") == 1 and not isinstance(
                    item.get("value"), bool
                ):
                    problems.append(f"device {device_id}: a switch write without an explicit "
                                    f"true/false: {request}")
    return problems


class KitchenView:
    """A tests.support.kitchen.Kitchen's controller and store, read in-process."""

    def __init__(self, kitchen: Any) -> None:
        self.kitchen = kitchen

    def answers(self) -> bool:
        return True  # the same process: if this runs, the controller's loop runs

    def status(self) -> list[dict[str, Any]]:
        return list(self.kitchen.controller.status())

    def history(self, since: float | None) -> list[dict[str, Any]]:
        # All of it: time-machine moves the wall clock, and a Kitchen's history is short.
        events = self.kitchen.controller.history(limit=HISTORY_LIMIT)
        return [event.as_dict() for event in events]

    def stored_locks(self) -> dict[str, str | None] | None:
        intents = self.kitchen.store.intents().values()
        return {i.burner: i.reason for i in intents if i.mode == "locked"}


class KitchenHob:
    """A Kitchen's simulated relays and stove; every switch recorded on both clocks.

    The wall time is ``time.time()``, which time-machine moves as it moves the controller's.
    """

    def __init__(self, kitchen: Any, wiring: Mapping[str, Wire]) -> None:
        self.kitchen = kitchen
        self.wiring = wiring
        self._switches: dict[tuple[str, int], list[Switch]] = {}
        for device_id, device in kitchen.world.devices.items():
            device.wire(self._recorder(device_id))

    def _recorder(self, device_id: str) -> Callable[[int, RelayState], None]:
        def record(channel: int, state: RelayState) -> None:
            self._switches.setdefault((device_id, channel), []).append(
                Switch(time.monotonic(), time.time(), state))

        return record

    def relay(self, burner: str) -> RelayState:
        state: RelayState = self.kitchen.relay(burner)
        return state

    def loop_closed(self, burner: str) -> bool:
        return bool(self.kitchen.stove(burner).loop_closed)

    def switches(self, burner: str) -> list[Switch]:
        wire = self.wiring[burner]
        return list(self._switches.get((wire.device, wire.channel), []))

    def wire_problems(self) -> list[str]:
        return []  # an in-process relay has no wire
