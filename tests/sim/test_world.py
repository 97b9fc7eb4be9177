"""The simulated kitchen: each burner's loop follows its relay through the wiring."""

from __future__ import annotations

from typing import Any

from stovectl.devices.base import RelayState
from stovectl.settings import settings_from_mapping
from stovectl.sim.world import SimulatedWorld
from tests.support.kitchen import kitchen_config

ON, OFF = RelayState.ON, RelayState.OFF


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def world(**config: Any) -> SimulatedWorld:
    return SimulatedWorld(settings_from_mapping(kitchen_config(**config)), clock=FakeClock())


def loop_closed(subject: SimulatedWorld, burner: str) -> bool:
    return subject.stove.snapshot(burner).loop_closed


def test_world_builds_a_device_and_a_burner_per_config() -> None:
    """Every simulated device and every burner on one appear in the world."""
    subject = world(two_devices=True)

    assert set(subject.devices) == {"front", "back"}
    assert subject.stove.burner_ids == ("left", "right")
    assert not subject.is_empty


def test_initial_loops_follow_the_initial_relay_states() -> None:
    """Relays start off: the NC ("on") burner's loop is closed, the NO ("off") one's is open."""
    subject = world(two_devices=True)

    assert loop_closed(subject, "left")
    assert not loop_closed(subject, "right")


def test_nc_wiring_opens_the_loop_when_the_relay_is_on() -> None:
    """With cut_state "on", switching the relay on opens the loop and off closes it again."""
    subject = world(two_devices=True)
    front = subject.devices["front"]

    front.switch_by_hand(1, ON)
    assert not loop_closed(subject, "left")

    front.switch_by_hand(1, OFF)
    assert loop_closed(subject, "left")


def test_no_wiring_opens_the_loop_when_the_relay_is_off() -> None:
    """With cut_state "off", switching the relay on closes the loop and off opens it."""
    subject = world(two_devices=True)
    back = subject.devices["back"]

    back.switch_by_hand(1, ON)
    assert loop_closed(subject, "right")

    back.switch_by_hand(1, OFF)
    assert not loop_closed(subject, "right")


def test_a_channel_drives_only_its_own_burner() -> None:
    """On a shared two-channel device, switching channel 2 changes only the burner on it."""
    subject = world()
    device = subject.devices["sim"]

    device.switch_by_hand(2, ON)

    assert loop_closed(subject, "left")
    assert not loop_closed(subject, "right")


def test_cutting_the_relay_puts_out_a_lit_burner() -> None:
    """A lit burner on NC wiring goes out shortly after its relay is switched on."""
    clock = FakeClock()
    subject = SimulatedWorld(settings_from_mapping(kitchen_config()), clock=clock)
    subject.stove.push_knob("left")
    clock.now += 6.0
    subject.stove.release_knob("left")
    assert subject.stove.snapshot("left").flame

    subject.devices["sim"].switch_by_hand(1, ON)
    clock.now += 0.5

    assert not subject.stove.snapshot("left").flame
    assert subject.stove.snapshot("right").loop_closed


def test_a_config_on_real_relays_only_gives_an_empty_world() -> None:
    """With every relay a miIO one, the world has no device and an empty stove, without error."""
    miio = {"kind": "miio", "id": "relay", "host": "127.0.3.60", "token": "0" * 32}
    subject = world(
        devices=[miio], burners=[{"id": "left", "device": "relay", "channel": 1}]
    )

    assert subject.is_empty
    assert subject.stove.burner_ids == ()
