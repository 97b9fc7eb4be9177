"""The simulated kitchen's in-process sensors: flames followed, detectors set, going away."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from stovectl.devices.base import RelayState
from stovectl.settings import SimulatedSensorSettings, settings_from_mapping
from stovectl.sim.sensors import FlameWatch, SimulatedSensor
from stovectl.sim.stove import Stove
from stovectl.sim.world import SimulatedWorld
from tests.support.kitchen import kitchen_config
from tests.support.sensor_input import RecordingInput

Run = Callable[[Awaitable[Any]], Any]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(sensor_id: str = "motion", kind: str = "presence", **fields: Any
             ) -> SimulatedSensorSettings:
    return SimulatedSensorSettings.model_validate(
        {"source": "simulated", "id": sensor_id, "kind": kind, **fields})


FLAME = settings("flame", "flame", burner="left")


def lit_stove(clock: FakeClock) -> Stove:
    """A stove whose left burner burns, its thermocouple hot enough to hold the valve."""
    stove = Stove(["left", "right"], clock)
    stove.push_knob("left")
    clock.now += 10
    stove.release_knob("left")
    assert stove.snapshot("left").flame
    return stove


def test_a_detector_reports_its_initial_reading_on_attach() -> None:
    """Attaching tells the target the sensor is there and what it reads."""
    sensor = SimulatedSensor(settings(kind="gas", initial=True))
    target = RecordingInput()
    sensor.attach(target)
    assert target.of("motion") == [("available", True), ("reading", True)]


def test_setting_a_detector_reports_each_change_once() -> None:
    """set() reports a new value; setting the same value again says nothing."""
    sensor = SimulatedSensor(settings())
    target = RecordingInput()
    sensor.attach(target)
    sensor.set(True)
    sensor.set(True)
    sensor.set(False)
    assert target.readings("motion") == [False, True, False]
    assert sensor.value is False


def test_a_flame_sensor_cannot_be_set() -> None:
    """A flame sensor follows its burner: set() refuses, saying so."""
    sensor = SimulatedSensor(FLAME, Stove(["left"], FakeClock()))
    with pytest.raises(ValueError, match="follows its burner"):
        sensor.set(True)


def test_offline_hides_changes_and_online_says_the_reading_in_force() -> None:
    """Offline: unavailable and silent; back online: available, and the value set meanwhile."""
    sensor = SimulatedSensor(settings(kind="smoke"))
    target = RecordingInput()
    sensor.attach(target)
    sensor.go_offline()
    sensor.set(True)
    assert not sensor.is_online
    sensor.come_online()
    assert target.of("motion") == [
        ("available", True), ("reading", False),
        ("available", False),
        ("available", True), ("reading", True),
    ]


def test_a_flame_sensor_follows_its_burner_by_hand() -> None:
    """Lighting and turning off the burner are reported; the other burner is not its own."""
    clock = FakeClock()
    stove = Stove(["left", "right"], clock)
    sensor = SimulatedSensor(FLAME, stove)
    target = RecordingInput()
    sensor.attach(target)
    stove.push_knob("right")
    stove.push_knob("left")
    stove.turn_off("left")
    assert target.of("flame") == [("available", True), ("reading", False),
                                  ("reading", True), ("reading", False)]


def test_a_flame_put_out_by_a_cut_is_seen_without_anyone_asking(virtual: Run) -> None:
    """After the loop opens the valve drops by itself; the sensor's ticks notice it."""
    clock = FakeClock()
    stove = lit_stove(clock)
    sensor = SimulatedSensor(FLAME, stove)
    target = RecordingInput()

    async def scenario() -> None:
        sensor.attach(target)
        stove.set_loop("left", closed=False)
        clock.now += 1  # past the valve's drop time; nobody touches the stove after this
        await target.until(lambda: target.readings("flame") == [True, False], "flame out")
        sensor.close()

    virtual(scenario())


def test_a_closed_sensor_tells_nothing_more() -> None:
    """After close() the burner's changes reach no target."""
    stove = Stove(["left"], FakeClock())
    sensor = SimulatedSensor(FLAME, stove)
    target = RecordingInput()
    sensor.attach(target)
    sensor.close()
    stove.push_knob("left")
    assert target.readings("flame") == [False]


def test_a_flame_sensor_without_its_burner_on_the_stove_is_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its burner is on a real relay: it reads nothing, says so, and is never "no flame"."""
    sensor = SimulatedSensor(FLAME, Stove(["right"], FakeClock()))
    target = RecordingInput()
    with caplog.at_level(logging.WARNING, logger="stovectl.sim.sensors"):
        sensor.attach(target)
    assert target.calls == [("available", "flame", False)]
    assert sensor.value is None
    assert "burner left is not on the simulated stove" in caplog.text


def test_a_flame_watch_refuses_a_burner_not_on_the_stove() -> None:
    """Watching a burner the stove has not got is a mistake, said at once."""
    with pytest.raises(ValueError, match="'back' is not on the simulated stove"):
        FlameWatch(Stove(["left"], FakeClock()), "back")


def test_the_world_builds_and_attaches_its_simulated_sensors() -> None:
    """Only source = "simulated" sensors join the world; a cut relay puts out the flame."""
    config = kitchen_config(mqtt={"host": "127.0.0.1"}, sensors=[
        {"source": "simulated", "id": "flame", "kind": "flame", "burner": "left"},
        {"source": "simulated", "id": "gas", "kind": "gas", "initial": True},
        {"source": "mqtt", "id": "smoke", "kind": "smoke", "topic": "zigbee2mqtt/smoke"},
    ])
    clock = FakeClock()
    world = SimulatedWorld(settings_from_mapping(config), clock=clock)
    target = RecordingInput()
    world.attach_sensors(target)

    world.stove.push_knob("left")
    clock.now += 10
    world.stove.release_knob("left")
    world.devices["sim"].switch_by_hand(1, RelayState.ON)  # NC wiring: the loop opens
    clock.now += 1
    world.stove.snapshot("left")  # without a loop nothing ticks: look, as a test would
    world.close_sensors()

    assert set(world.sensors) == {"flame", "gas"}
    assert target.readings("flame") == [False, True, False]
    assert target.of("gas") == [("available", True), ("reading", True)]
