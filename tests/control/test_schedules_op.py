"""Specification of the control socket's ``schedules`` op and the schedules in ``status``.

A real controller on the simulated stove, real calendar schedules and a real
ControlServer on a Unix socket, wired as the daemon wires them (the server's
``extra_status`` carries the schedules); the wall clock is held by time-machine
at noon in Shanghai, so next runs are known.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from stovectl.control.render import format_schedules, format_status
from stovectl.control.server import ControlServer
from stovectl.core.controller import BurnerController
from stovectl.core.schedules import Schedules
from stovectl.core.store import Store
from stovectl.settings import settings_from_mapping
from stovectl.sim.world import SimulatedWorld
from tests.control.conftest import CONFIG, TIMEOUT_SECONDS, RunningDaemon

NOON = datetime(2026, 11, 22, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
SCHEDULES: list[dict[str, Any]] = [
    {"id": "night", "cron": "0 23 * * *", "action": "lock", "reason": "night",
     "time_zone": "Asia/Shanghai"},
    {"id": "morning", "cron": "0 7 * * *", "action": "unlock", "burners": ["left"],
     "time_zone": "Asia/Shanghai"},
]

Run = Callable[[Callable[[RunningDaemon], Awaitable[None]]], None]


@asynccontextmanager
async def daemon_with(
    schedules: list[dict[str, Any]], state_dir: Path, socket_path: Path
) -> AsyncIterator[RunningDaemon]:
    """Store, controller, schedules and server, started and stopped as the daemon does."""
    settings = settings_from_mapping({**CONFIG, "schedules": schedules})
    world = SimulatedWorld(settings)
    store = Store(state_dir / "stovectl.db")
    store.open()
    controller = BurnerController(settings, world.devices, store)
    calendar = Schedules(settings.schedules, controller, store) if schedules else None

    def extra_status() -> dict[str, Any]:
        return {"schedules": calendar.status() if calendar is not None else []}

    server = ControlServer(controller, socket_path, extra_status)
    try:
        await controller.start()
        if calendar is not None:
            await calendar.start()
        await server.start()
        yield RunningDaemon(settings, world, store, controller, server)
    finally:
        await server.close()
        if calendar is not None:
            await calendar.close()
        await controller.close()
        store.close()


@pytest.fixture
def run(tmp_path: Path, socket_path: Path) -> Callable[..., None]:
    """Run a scenario against a daemon with ``schedules``, at noon in Shanghai."""

    def run(
        scenario: Callable[[RunningDaemon], Awaitable[None]],
        schedules: list[dict[str, Any]] = SCHEDULES,
    ) -> None:
        async def main() -> None:
            async with daemon_with(schedules, tmp_path, socket_path) as daemon:
                await asyncio.wait_for(scenario(daemon), TIMEOUT_SECONDS)

        with time_machine.travel(NOON.timestamp(), tick=True):
            asyncio.run(main())

    return run


def test_the_schedules_op_lists_each_schedule_with_its_next_run(run: Any) -> None:
    """schedules answers each schedule's action, burners, zone, next run and last run."""

    async def scenario(daemon: RunningDaemon) -> None:
        rows = (await daemon.result("schedules"))["schedules"]
        assert [row["id"] for row in rows] == ["night", "morning"]
        night, morning = rows
        assert (night["action"], night["burners"], night["reason"]) == ("lock", ["all"], "night")
        assert (night["cron"], night["time_zone"]) == ("0 23 * * *", "Asia/Shanghai")
        assert night["next_run_text"] == "2026-11-22T23:00:00+08:00"
        assert night["next_run"] == datetime.fromisoformat(night["next_run_text"]).timestamp()
        assert morning["next_run_text"] == "2026-11-23T07:00:00+08:00"
        assert (morning["burners"], morning["reason"]) == (["left"], None)
        assert night["last_run"] == pytest.approx(NOON.timestamp(), abs=5)

    run(scenario)


def test_status_carries_the_schedules_and_shows_the_next_run(run: Any) -> None:
    """status includes the schedules, and its table ends with the next scheduled run."""

    async def scenario(daemon: RunningDaemon) -> None:
        status = await daemon.result("status")
        assert [row["id"] for row in status["schedules"]] == ["night", "morning"]
        assert format_status(status).splitlines()[-1].startswith("next: night — lock all at ")

    run(scenario)


def test_without_schedules_the_op_answers_an_empty_list(run: Any) -> None:
    """With no schedules configured, schedules answers an empty list that renders as advice."""

    async def scenario(daemon: RunningDaemon) -> None:
        rows = (await daemon.result("schedules"))["schedules"]
        assert rows == []
        assert "[[schedules]]" in format_schedules(rows)
        assert (await daemon.result("status"))["schedules"] == []

    run(scenario, [])


def test_a_server_without_extra_status_answers_no_schedules(
    tmp_path: Path, socket_path: Path
) -> None:
    """A server built without extra_status (no schedules wired in) answers an empty list."""

    async def main() -> None:
        settings = settings_from_mapping(CONFIG)
        store = Store(tmp_path / "stovectl.db")
        store.open()
        world = SimulatedWorld(settings)
        controller = BurnerController(settings, world.devices, store)
        server = ControlServer(controller, socket_path)
        try:
            await controller.start()
            await server.start()
            daemon = RunningDaemon(settings, world, store, controller, server)
            assert await daemon.result("schedules") == {"schedules": []}
        finally:
            await server.close()
            await controller.close()
            store.close()

    asyncio.run(main())
