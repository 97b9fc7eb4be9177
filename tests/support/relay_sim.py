"""Simulated relays in the test process, for end-to-end tests of the real daemon.

The daemon under test is a subprocess (tests.support.daemon) speaking real
miIO over UDP, or MQTT through a real broker; its relays are ``stovectl
simulate``'s (``sim.runner``), built
from the same config text, but run here, on an asyncio loop in a background
thread, so a test can flip fault switches and read a relay as a multimeter
would while the daemon drives it. Everything that touches a device runs on that
loop (``call``); every switch is time-stamped as it happens (``switches``).

The driver's and the simulator's own specifications start one device at a time
on the test's loop instead (``SimulatedDevices``), each on a fresh host of the
test module's own address range.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from stovectl.devices.base import RelayState
from stovectl.settings import settings_from_mapping
from stovectl.sim.miio_device import SimulatedMiioDevice
from stovectl.sim.mqtt_device import SimulatedMqttDevice
from stovectl.sim.runner import Simulation

T = TypeVar("T")
TOKEN = "00112233445566778899aabbccddeeff"
START_TIMEOUT_SECONDS = 5.0
POLL_INTERVAL_SECONDS = 0.01


@dataclass(frozen=True)
class RelayConfig:
    """A miIO relay in the config: its loopback host and the burner on each channel."""

    host: str
    burners: Sequence[str]
    model: str = "yeelink.switch.sw1"


def miio_config(
    relays: Mapping[str, RelayConfig],
    *,
    cut_state: str = "on",
    cut_hold: str = "2s",
    alarm_after: str = "10s",
    poll_interval: str = "1s",
) -> str:
    """A hob on miIO relays with short loopback timeouts; burner ``n`` on channel ``n``."""
    text = '[stove]\nid = "miiohob"\nname = "miIO test hob"\n'
    for device_id, relay in relays.items():
        text += f"""
[[devices]]
id = "{device_id}"
kind = "miio"
host = "{relay.host}"
token = "{TOKEN}"
model = "{relay.model}"
timeout = "150ms"
handshake_timeout = "150ms"
poll_interval = "{poll_interval}"
"""
    for device_id, relay in relays.items():
        for channel, burner in enumerate(relay.burners, start=1):
            text += f"""
[[burners]]
id = "{burner}"
device = "{device_id}"
channel = {channel}
cut_state = "{cut_state}"
cut_hold = "{cut_hold}"
"""
    return text + f'\n[safety]\nalarm_after = "{alarm_after}"\n'


@dataclass(frozen=True)
class Switch:
    """A relay channel changing state, when it happened (``time.monotonic``)."""

    at: float
    device: str
    channel: int
    state: RelayState


class RelaySimulator:
    """The config's miIO and MQTT devices, served from a background thread's event loop."""

    def __init__(self, config_text: str) -> None:
        self.settings = settings_from_mapping(tomllib.loads(config_text), source="<test>")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="miio-simulator", daemon=True
        )
        self._switches: list[Switch] = []
        self.simulation: Simulation | None = None

    def start(self) -> None:
        self._thread.start()
        self.simulation = self.call(lambda: Simulation(self.settings))
        self._run(self.simulation.start())
        devices: dict[str, SimulatedMiioDevice | SimulatedMqttDevice] = {
            **self.simulation.devices, **self.simulation.mqtt_devices}

        def wire_recorders() -> None:
            for device_id, device in devices.items():
                device.wire(self._recorder(device_id))

        self.call(wire_recorders)

    def close(self) -> None:
        if self.simulation is not None:
            self._run(self.simulation.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT_SECONDS)
        self._loop.close()

    def _recorder(self, device_id: str) -> Callable[[int, RelayState], None]:
        def record(channel: int, state: RelayState) -> None:
            self._switches.append(Switch(time.monotonic(), device_id, channel, state))

        return record

    def _run(self, coroutine: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=START_TIMEOUT_SECONDS)

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the simulator's loop, where the devices live, and return."""
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(function())
            except BaseException as error:
                result.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return result.result(timeout=START_TIMEOUT_SECONDS)

    def miio_device(self, device_id: str) -> SimulatedMiioDevice:
        device = self.device(device_id)
        assert isinstance(device, SimulatedMiioDevice), f"{device_id} is no miIO device"
        return device

    def mqtt_device(self, device_id: str) -> SimulatedMqttDevice:
        device = self.device(device_id)
        assert isinstance(device, SimulatedMqttDevice), f"{device_id} is no MQTT device"
        return device

    def device(self, device_id: str) -> SimulatedMiioDevice | SimulatedMqttDevice:
        assert self.simulation is not None, "start the simulator first"
        if device_id in self.simulation.mqtt_devices:
            return self.simulation.mqtt_devices[device_id]
        return self.simulation.devices[device_id]

    def set(self, device_id: str, **faults: Any) -> float:
        """Set fault switches (``offline=True``...) on the loop; return when (``time.time``).

        Wall-clock time, to compare with the times of the daemon's history events.
        """
        device = self.device(device_id)

        def apply() -> float:
            for name, value in faults.items():
                assert hasattr(device, name), f"no fault switch {name!r}"
                setattr(device, name, value)
            return time.time()

        return self.call(apply)

    def state(self, device_id: str, channel: int) -> RelayState:
        device = self.device(device_id)
        return self.call(lambda: device.state(channel))

    def value(self, device_id: str, iid: tuple[int, int]) -> Any:
        """A non-switch MiOT property's value, such as a channel's off-delay."""
        device = self.miio_device(device_id)
        return self.call(lambda: device.values[iid])

    def loop_closed(self, burner: str) -> bool:
        """Whether the simulated stove's loop of ``burner`` is closed (armed)."""
        assert self.simulation is not None, "start the simulator first"
        stove = self.simulation.stove
        return self.call(lambda: stove.snapshot(burner).loop_closed)

    def switches(self, device_id: str, channel: int) -> list[Switch]:
        """Every change of that channel since the simulator started (the first is its start)."""
        return self.call(
            lambda: [s for s in self._switches if (s.device, s.channel) == (device_id, channel)]
        )

    def wait_state(
        self, device_id: str, channel: int, state: RelayState, timeout: float
    ) -> float:
        """Poll until the channel reads ``state``; return when it switched there (monotonic)."""
        deadline = time.monotonic() + timeout
        while self.state(device_id, channel) is not state:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{device_id} channel {channel} not {state} within {timeout}s: "
                    f"{self.switches(device_id, channel)}"
                )
            time.sleep(POLL_INTERVAL_SECONDS)  # polling an observable state with a deadline
        return self.switches(device_id, channel)[-1].at


@contextlib.contextmanager
def running_simulator(config_text: str) -> Iterator[RelaySimulator]:
    """The config's miIO devices, started; closed on exit."""
    simulator = RelaySimulator(config_text)
    try:
        simulator.start()
        yield simulator
    finally:
        simulator.close()


@dataclass(frozen=True)
class SimulatedDevices:
    """Simulated miIO devices, each started on the next of ``hosts`` with ``device_id``."""

    hosts: Callable[[], str]
    device_id: int

    @contextlib.asynccontextmanager
    async def running(
        self, model: str = "generic.relay.1", **options: Any
    ) -> AsyncIterator[SimulatedMiioDevice]:
        """A device of ``model`` on a fresh host, serving on the running loop; closed on exit."""
        device = SimulatedMiioDevice(self.hosts(), TOKEN, self.device_id, model, **options)
        await device.start()
        try:
            yield device
        finally:
            await device.close()
