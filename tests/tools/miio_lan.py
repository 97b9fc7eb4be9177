"""Simulated miIO devices on loopback and the real ``stovectl`` command, for the tool tests.

Each device binds an address of its own in 127.0.4.0/24 (kept for these tests,
apart from other suites) on port 54321, and runs on the test's event loop; the
CLI runs as a subprocess of that loop, so the device answers while it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from stovectl.sim.miio_device import SimulatedMiioDevice
from tests.support.daemon import CLI_TIMEOUT_SECONDS, STOVECTL, clean_environment

TOKEN = "00112233445566778899aabbccddeeff"
OTHER_TOKEN = "ffeeddccbbaa99887766554433221100"
DEVICE_ID = 0x0BADCAFE
_hosts = itertools.count(2)


def fresh_host() -> str:
    """A loopback address in 127.0.4.0/24 that no other test of this run has used."""
    n = next(_hosts)
    assert n < 255, "the tool tests ran out of 127.0.4.x addresses"
    return f"127.0.4.{n}"


@contextlib.asynccontextmanager
async def running_device(
    model: str = "yeelink.switch.sw1", token: str = TOKEN, **options: Any
) -> AsyncIterator[SimulatedMiioDevice]:
    """A started simulated device on a fresh loopback address."""
    device = SimulatedMiioDevice(fresh_host(), token, DEVICE_ID, model, **options)
    await device.start()
    try:
        yield device
    finally:
        await device.close()


@dataclass(frozen=True)
class Completed:
    """How a ``stovectl`` run ended."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def stovectl(*args: str) -> Completed:
    """Run ``stovectl ARGS`` with a clean environment, without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(
        str(STOVECTL), *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=clean_environment(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_SECONDS)
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())
