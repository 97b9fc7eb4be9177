"""A real controller on the simulated stove behind a real ControlServer, for the control tests.

Everything is the real thing: settings from ``settings_from_mapping``, the
simulated world, a SQLite store in ``tmp_path``, and a ControlServer on a Unix
socket in a short private folder (Unix socket paths are limited to 108 bytes).
A test writes its scenario as a coroutine; ``serve`` runs it on a fresh event
loop next to the daemon and stops everything afterwards. The ControlClient is
blocking, so scenarios call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import stovectl
from stovectl.control.client import ControlClient
from stovectl.control.server import ControlServer
from stovectl.core.controller import BurnerController
from stovectl.core.events import Event, EventBus
from stovectl.core.store import Store
from stovectl.devices.simulated import SimulatedRelay
from stovectl.settings import Settings, settings_from_mapping
from stovectl.sim.world import SimulatedWorld

TIMEOUT_SECONDS = 20.0
CLIENT_TIMEOUT_SECONDS = 10.0
NOBODY_UID = 65534
NOBODY_GID = 65534

# Two burners on one two-channel simulated relay, wired opposite ways: ``left`` is
# NC-wired (relay "on" cuts it), ``right`` NO-wired (relay "off" cuts it), so every
# assertion on a relay state also checks that the wiring is honoured.
CONFIG: dict[str, Any] = {
    "stove": {"id": "test", "name": "Test hob"},
    "devices": [
        {
            "kind": "simulated",
            "id": "sim",
            "channels": 2,
            "response_time": "1ms",
            # Nobody switches the relay behind the controller's back in these tests.
            "poll_interval": "1h",
        }
    ],
    "burners": [
        {"id": "left", "device": "sim", "channel": 1, "cut_state": "on"},
        {"id": "right", "device": "sim", "channel": 2, "cut_state": "off"},
    ],
}


@dataclass
class RunningDaemon:
    """The parts of a running daemon that a control test talks to or looks at."""

    settings: Settings
    world: SimulatedWorld
    store: Store
    controller: BurnerController
    server: ControlServer

    @property
    def path(self) -> Path:
        return self.server.path

    @property
    def relay(self) -> SimulatedRelay:
        return self.world.devices["sim"]

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        """One request through the real ControlClient, on a worker thread."""

        def blocking_call() -> dict[str, Any]:
            with ControlClient(self.path, CLIENT_TIMEOUT_SECONDS) as client:
                return client.call(op, **args)

        return await asyncio.to_thread(blocking_call)

    async def result(self, op: str, **args: Any) -> Any:
        """The ``result`` of a request that must succeed."""
        reply = await self.call(op, **args)
        assert reply["ok"] is True, reply
        return reply["result"]


@contextlib.asynccontextmanager
async def running_daemon(state_dir: Path, socket_path: Path) -> AsyncIterator[RunningDaemon]:
    """Start store, controller and control server as the daemon does; stop them in reverse."""
    settings = settings_from_mapping(CONFIG)
    world = SimulatedWorld(settings)
    store = Store(state_dir / "stovectl.db")
    store.open()
    controller = BurnerController(settings, world.devices, store)
    try:
        await controller.start()
        server = ControlServer(controller, socket_path)
        await server.start()
        try:
            yield RunningDaemon(settings, world, store, controller, server)
        finally:
            await server.close()
    finally:
        await controller.close()
        store.close()


Scenario = Callable[[RunningDaemon], Awaitable[None]]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short private folder for sockets (tmp_path is too long for a Unix socket path)."""
    path = Path(tempfile.mkdtemp(prefix="stv"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def socket_path(socket_dir: Path) -> Path:
    return socket_dir / "stovectl.sock"


@pytest.fixture
def serve(tmp_path: Path, socket_path: Path) -> Callable[[Scenario], None]:
    """Run a scenario coroutine against a running daemon, on a fresh event loop."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            async with running_daemon(tmp_path, socket_path) as daemon:
                await asyncio.wait_for(scenario(daemon), TIMEOUT_SECONDS)

        asyncio.run(main())

    return run


class EventWaiter:
    """A future for the first event matching a predicate; subscribe before acting."""

    def __init__(self, bus: EventBus, predicate: Callable[[Event], bool]) -> None:
        self._predicate = predicate
        self._future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._unsubscribe = bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if not self._future.done() and self._predicate(event):
            self._future.set_result(event)

    async def wait(self) -> Event:
        try:
            return await asyncio.wait_for(self._future, TIMEOUT_SECONDS)
        finally:
            self._unsubscribe()


class RawConnection:
    """A bare Unix-socket connection, for what the ControlClient would never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> dict[str, Any]:
        """The next reply line, decoded; fails if none arrives in time."""
        line = await asyncio.wait_for(self.reader.readline(), TIMEOUT_SECONDS)
        assert line.endswith(b"\n"), f"the connection ended instead of replying: {line!r}"
        message: dict[str, Any] = json.loads(line)
        return message

    async def replies_until(self, request_id: str) -> list[dict[str, Any]]:
        """Every reply up to and including the one for ``request_id``."""
        replies = [await self.reply()]
        while replies[-1].get("id") != request_id:
            replies.append(await self.reply())
        return replies


@contextlib.asynccontextmanager
async def raw_connection(path: Path) -> AsyncIterator[RawConnection]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# The client as another user sees it: a separate Python process that imports the
# client while still privileged (so it works wherever the interpreter and the
# project live), then drops to uid/gid 65534 with no groups, connects with the real
# ControlClient, and reports what it returned or raised as one JSON line.
_CLIENT_PROBE = f"""
import json, os, sys
from pathlib import Path
from stovectl.control.client import ControlClient
from stovectl.errors import ControlError
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid({NOBODY_GID})
    os.setuid({NOBODY_UID})
report = {{"uid": os.geteuid(), "gid": os.getegid(), "groups": os.getgroups()}}
try:
    with ControlClient(Path(sys.argv[1]), timeout_seconds=float(sys.argv[4])) as client:
        report["reply"] = client.call(sys.argv[2], **json.loads(sys.argv[3]))
except ControlError as error:
    report["raised"] = type(error).__name__
    report["message"] = str(error)
print(json.dumps(report))
"""


def run_client_as_unprivileged_user(path: Path, op: str, **args: Any) -> dict[str, Any]:
    """Call the daemon from a child process that is not root; blocking, so use to_thread.

    Root bypasses file permissions, so when the tests run as root the child drops to
    ``nobody`` (65534) before it connects; otherwise the current user is already
    unprivileged and the child keeps its uid.
    """
    project_root = Path(stovectl.__file__).resolve().parent.parent
    completed = subprocess.run(
        [sys.executable, "-c", _CLIENT_PROBE, str(path), op, json.dumps(args),
         str(CLIENT_TIMEOUT_SECONDS)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(project_root), "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert completed.returncode == 0, f"the client process failed:\n{completed.stderr}"
    report: dict[str, Any] = json.loads(completed.stdout)
    assert report["uid"] != 0, "the client process still runs as root"
    return report
