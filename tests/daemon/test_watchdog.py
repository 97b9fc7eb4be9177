"""The watchdog ping comes only from the health path: a wedged daemon goes quiet.

The daemon runs in this process on a real event loop (so a test can wedge one
of its parts), with a ServiceManager pointed at a fake notify socket
(tests.support.notify) and a watchdog of 0.2 s (pings every 0.1 s). Three ways
to wedge it: the loop itself blocked, a device's poll loop stuck in a read that
never returns, and the clock watch that keeps the deadlines honest stopped.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stovectl.core import controller as controller_module
from stovectl.daemon.app import Daemon
from stovectl.daemon.systemd import ServiceManager
from stovectl.devices.base import RelayState
from stovectl.settings import settings_from_mapping
from tests.support.daemon import hob_config
from tests.support.notify import Notice, NotifyListener, notify_listener

T = TypeVar("T")
Run = Callable[[Awaitable[T]], T]

WATCHDOG_USEC = 200_000
PING_EVERY = 0.1
WEDGE_SECONDS = 1.0
"""How long a part stays wedged: several ping intervals, and past its allowance."""
ALLOWANCE = 0.3


@asynccontextmanager
async def daemon_under_systemd(
    tmp_path: Path, listener: NotifyListener
) -> AsyncIterator[Daemon]:
    text = hob_config().replace('poll_interval = "1s"', 'poll_interval = "100ms"')
    settings = settings_from_mapping(tomllib.loads(text), source="<test>")
    daemon = Daemon(settings, tmp_path / "s", tmp_path / "state")
    service = ServiceManager({
        "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": str(WATCHDOG_USEC),
    })
    running = asyncio.create_task(daemon.run(service))
    try:
        await asyncio.to_thread(listener.wait_for, "READY", "1")
        yield daemon
    finally:
        daemon.request_stop()
        await running


async def pings_after(listener: NotifyListener, moment: float, count: int) -> None:
    """Wait (off the loop) until ``count`` pings arrived after ``moment``."""
    def enough(notices: list[Notice]) -> bool:
        return sum(1 for n in notices if n.says("WATCHDOG", "1") and n.at > moment) >= count

    await asyncio.to_thread(listener.wait_until, enough, 5.0, f"{count} pings")


def quiet_between(listener: NotifyListener, start: float, end: float) -> list[float]:
    """Pings that arrived within (start, end): there must be none."""
    return [n.at for n in listener.saying("WATCHDOG", "1") if start < n.at < end]


@pytest.fixture
def allowances(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short allowances for the poll loops and the clock watch, so a test need not wait 60 s."""
    monkeypatch.setattr(controller_module, "POLL_ALLOWANCE", ALLOWANCE)
    monkeypatch.setattr(controller_module, "CLOCK_WATCH_ALLOWANCE", ALLOWANCE + 1.0)


def test_no_ping_while_the_event_loop_is_blocked(real: Run[Any], tmp_path: Path) -> None:
    async def scenario(listener: NotifyListener) -> tuple[float, float]:
        async with daemon_under_systemd(tmp_path, listener):
            await pings_after(listener, 0, 3)
            blocked_at = time.monotonic()
            threading.Event().wait(WEDGE_SECONDS)  # the fault: something blocks the loop
            unblocked_at = time.monotonic()
            await pings_after(listener, unblocked_at, 2)
            return blocked_at, unblocked_at

    with notify_listener() as listener:
        blocked_at, unblocked_at = real(scenario(listener))
        # A ping sent just before the block may arrive a moment later.
        assert quiet_between(listener, blocked_at + 0.05, unblocked_at) == []


def test_no_ping_while_a_device_poll_loop_is_stuck(
    real: Run[Any], tmp_path: Path, allowances: None
) -> None:
    async def scenario(listener: NotifyListener) -> tuple[float, float, str]:
        async with daemon_under_systemd(tmp_path, listener) as daemon:
            relay: Any = daemon.relays["sim"]
            healthy_read = relay.read
            release = asyncio.Event()

            async def stuck_read() -> dict[int, RelayState]:
                await release.wait()  # the fault: a driver call that never returns
                return await healthy_read()  # type: ignore[no-any-return]

            relay.read = stuck_read
            stuck_at = time.monotonic()
            await asyncio.sleep(0.1 + ALLOWANCE + WEDGE_SECONDS)  # the fault's duration
            status = listener.saying("STATUS")[-1].fields["STATUS"]
            relay.read = healthy_read
            release.set()
            released_at = time.monotonic()
            await pings_after(listener, released_at, 2)
            return stuck_at, released_at, status

    with notify_listener() as listener:
        stuck_at, released_at, status = real(scenario(listener))
        # The poll loop's last turn may come up to 0.1 + ALLOWANCE s after the read stuck.
        silent_from = stuck_at + 0.1 + ALLOWANCE + PING_EVERY + 0.1
        assert quiet_between(listener, silent_from, released_at) == []
        assert status.startswith("unhealthy: device sim's poll loop has not turned"), status


def test_no_ping_once_the_clock_watch_stops(
    real: Run[Any], tmp_path: Path, allowances: None
) -> None:
    async def scenario(listener: NotifyListener) -> tuple[float, float, str]:
        async with daemon_under_systemd(tmp_path, listener):
            [watch] = [t for t in asyncio.all_tasks() if t.get_name() == "clock-watch"]
            watch.cancel()  # the fault: the task that keeps deadlines honest is gone
            stopped_at = time.monotonic()
            silent_from = stopped_at + ALLOWANCE + 1.0 + PING_EVERY + 0.1
            await asyncio.sleep(silent_from - stopped_at + WEDGE_SECONDS)  # fault duration
            status = listener.saying("STATUS")[-1].fields["STATUS"]
            return silent_from, time.monotonic(), status

    with notify_listener() as listener:
        silent_from, until, status = real(scenario(listener))
        assert quiet_between(listener, silent_from, until) == []
        assert status.startswith("unhealthy: the clock watch has not turned"), status
