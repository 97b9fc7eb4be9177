"""The simulated relay device: timing, faults, hand switching and wiring."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from stovectl.devices.base import RelayState
from stovectl.devices.simulated import SLOW_SECONDS, SimulatedRelay
from stovectl.errors import DeviceUnavailable
from stovectl.settings import SimulatedDeviceSettings, settings_from_mapping
from tests.support.kitchen import kitchen_config

Run = Callable[[Awaitable[Any]], Any]
ON, OFF = RelayState.ON, RelayState.OFF
RESPONSE = 0.02
TIMEOUT = 1.5


def relay(fault: str = "none", channels: int = 2) -> SimulatedRelay:
    device = {
        "kind": "simulated", "id": "sim", "channels": channels, "response_time": "20ms",
        "timeout": "1.5s", "poll_interval": "3s", "fault": fault,
    }
    settings = settings_from_mapping(kitchen_config(devices=[device]))
    [spec] = settings.devices
    assert isinstance(spec, SimulatedDeviceSettings)
    return SimulatedRelay(spec)


def now() -> float:
    return asyncio.get_running_loop().time()


def test_describes_itself_from_its_settings() -> None:
    """Its id and poll interval come from the settings, and it can be read back."""
    device = relay()
    assert device.id == "sim"
    assert device.poll_interval_seconds == 3.0
    assert device.capabilities.read_back
    assert not device.capabilities.device_pulse


def test_write_then_read_round_trip_takes_the_response_time(virtual: Run) -> None:
    """A write switches the channel after one response time, and a read reports it after another."""

    async def scenario() -> None:
        device = relay()
        await device.start()
        start = now()

        await device.write(2, ON)
        written = now()
        states = await device.read()

        assert written - start == pytest.approx(RESPONSE)
        assert now() - written == pytest.approx(RESPONSE)
        assert states == {1: OFF, 2: ON}
        assert device.state(2) is ON
        assert device.writes == 1
        await device.close()
        await device.close()

    virtual(scenario())


def test_requests_are_served_one_at_a_time(virtual: Run) -> None:
    """Two writes asked together finish one response time apart: the device has one lane."""

    async def scenario() -> None:
        device = relay()
        start = now()
        finished: list[float] = []

        async def write(channel: int) -> None:
            await device.write(channel, ON)
            finished.append(now() - start)

        await asyncio.gather(write(1), write(2))

        assert finished == [pytest.approx(RESPONSE), pytest.approx(2 * RESPONSE)]

    virtual(scenario())


@pytest.mark.parametrize("call", ["write", "read"])
def test_offline_device_fails_after_the_timeout(virtual: Run, call: str) -> None:
    """An offline device answers nothing: DeviceUnavailable after its timeout, state unchanged."""

    async def scenario() -> None:
        device = relay(fault="offline")
        start = now()

        with pytest.raises(DeviceUnavailable) as caught:
            if call == "write":
                await device.write(1, ON)
            else:
                await device.read()

        assert now() - start == pytest.approx(TIMEOUT)
        assert caught.value.device == "sim"
        assert device.state(1) is OFF

    virtual(scenario())


def test_slow_device_answers_two_seconds_late(virtual: Run) -> None:
    """A slow device completes each request SLOW_SECONDS after the response time."""

    async def scenario() -> None:
        device = relay(fault="slow")
        start = now()

        await device.write(1, ON)

        assert SLOW_SECONDS == 2.0
        assert now() - start == pytest.approx(RESPONSE + SLOW_SECONDS)
        assert device.state(1) is ON

    virtual(scenario())


def test_stuck_device_acknowledges_but_does_not_switch(virtual: Run) -> None:
    """A stuck relay accepts the write without error, and reads back unchanged."""

    async def scenario() -> None:
        device = relay(fault="stuck")

        await device.write(1, ON)

        assert device.writes == 1
        assert (await device.read())[1] is OFF

    virtual(scenario())


def test_fault_can_be_set_and_cleared(virtual: Run) -> None:
    """set_fault takes a device offline and back, as a test or the demo needs."""

    async def scenario() -> None:
        device = relay()
        device.set_fault("offline")
        with pytest.raises(DeviceUnavailable):
            await device.read()

        device.set_fault("none")
        await device.write(1, ON)
        assert (await device.read())[1] is ON

    virtual(scenario())


def test_wire_receives_the_initial_states() -> None:
    """A new wiring callback hears every channel's current state at once."""
    device = relay(channels=3)
    device.switch_by_hand(2, ON)
    heard: list[tuple[int, RelayState]] = []

    device.wire(lambda channel, state: heard.append((channel, state)))

    assert heard == [(1, OFF), (2, ON), (3, OFF)]


def test_switch_by_hand_drives_the_wiring(virtual: Run) -> None:
    """Switching by hand, or by a write, calls every wiring callback with the change only."""

    async def scenario() -> None:
        device = relay()
        first: list[tuple[int, RelayState]] = []
        second: list[tuple[int, RelayState]] = []
        device.wire(lambda channel, state: first.append((channel, state)))
        device.wire(lambda channel, state: second.append((channel, state)))
        first.clear()
        second.clear()

        device.switch_by_hand(1, ON)
        device.switch_by_hand(1, ON)
        await device.write(2, ON)

        assert first == second == [(1, ON), (2, ON)]
        assert device.state(1) is ON
        assert device.writes == 1

    virtual(scenario())


def test_unknown_channel_is_a_value_error(virtual: Run) -> None:
    """Switching or writing a channel the device does not have raises ValueError."""

    async def scenario() -> None:
        device = relay(channels=2)
        with pytest.raises(ValueError, match="no channel 3"):
            device.switch_by_hand(3, ON)
        with pytest.raises(ValueError, match="no channel 0"):
            await device.write(0, ON)
        assert await device.read() == {1: OFF, 2: OFF}

    virtual(scenario())
