"""The fault campaign's test rig: miIO relays, chaos proxies, the daemon, the invariants.

Every fault test builds the same thing: the simulated relays (in this process),
optionally a chaos proxy in front of each (tests.support.chaos), the real
daemon on a config that names the proxies' hosts, and a SafetyInvariants
checker that the test calls after every fault. Its size is bounded for
``make test``; ``SOAK`` makes the campaign longer, ``FAULT_SEED`` changes its
dice:

* ``SOAK`` unset, empty or ``0``: the bounded form. ``SOAK=1``: every test runs
  20 times the iterations. ``SOAK=N`` (N ≥ 2): N times.
* ``FAULT_SEED=n``: the base seed (default 7); each test adds its own name's CRC.

Neither is a ``STOVECTL_`` variable: the daemon refuses unknown ones.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from stovectl.settings import Settings, settings_from_mapping
from tests.faults.observers import ProcessView, SimulatorHob
from tests.support.chaos import RunningProxy, running_proxy
from tests.support.daemon import DaemonProcess, running_daemon
from tests.support.invariants import SafetyInvariants, wiring_of
from tests.support.relay_sim import RelayConfig, RelaySimulator, miio_config, running_simulator

DEFAULT_SEED = 7
SOAK_FACTOR = 20


def soak() -> int:
    """How many times the bounded iterations to run: 1, or more under ``SOAK``."""
    value = os.environ.get("SOAK", "").strip()
    if value in ("", "0"):
        return 1
    factor = int(value)
    return SOAK_FACTOR if factor == 1 else factor


def seed_for(test: str) -> int:
    """A test's seed: the base seed (``FAULT_SEED``, default 7) plus its name's CRC."""
    base = int(os.environ.get("FAULT_SEED", str(DEFAULT_SEED)))
    return base + zlib.crc32(test.encode())


@dataclass(frozen=True)
class Relay:
    """A miIO relay: where the simulator serves it, where the daemon looks for it."""

    device_host: str
    burners: Sequence[str]
    proxy_host: str | None = None
    """The chaos proxy's host, which the daemon's config names; None: no proxy."""
    stray_host: str | None = None
    """Where the proxy's stray datagrams come from."""


@dataclass
class MiioRig:
    simulator: RelaySimulator
    daemon: DaemonProcess
    settings: Settings
    invariants: SafetyInvariants
    hob: SimulatorHob
    view: ProcessView
    proxies: dict[str, RunningProxy] = field(default_factory=dict)

    def check(self, what: str, settle: float | None = None) -> None:
        """Assert every DESIGN §2 invariant now (tests.support.invariants)."""
        self.invariants.check(self.view, self.hob, settle=settle, what=what)


@contextlib.contextmanager
def miio_rig(
    relays: Mapping[str, Relay], *, seed: int, start: bool = True, **options: str
) -> Iterator[MiioRig]:
    """Simulated relays, a chaos proxy (no faults yet) before each that has a proxy host, and
    the daemon on a config naming the proxies; ``options`` go to ``miio_config``."""
    device_config = miio_config(
        {i: RelayConfig(r.device_host, r.burners) for i, r in relays.items()}, **options)
    daemon_config = miio_config(
        {i: RelayConfig(r.proxy_host or r.device_host, r.burners) for i, r in relays.items()},
        **options)
    settings = settings_from_mapping(tomllib.loads(daemon_config), source="<fault test>")
    with contextlib.ExitStack() as stack:
        simulator = stack.enter_context(running_simulator(device_config))
        proxies = {
            device_id: stack.enter_context(running_proxy(
                relay.proxy_host, relay.device_host, seed=seed + index,
                stray_host=relay.stray_host))
            for index, (device_id, relay) in enumerate(relays.items())
            if relay.proxy_host is not None
        }
        daemon = stack.enter_context(running_daemon(daemon_config, start=start))
        wiring = wiring_of(settings)
        yield MiioRig(
            simulator=simulator,
            daemon=daemon,
            settings=settings,
            invariants=SafetyInvariants(
                wiring, alarm_after=settings.safety.alarm_after.total_seconds()),
            hob=SimulatorHob(simulator, wiring),
            view=ProcessView(daemon.socket_path, daemon.state_dir),
            proxies=proxies,
        )
