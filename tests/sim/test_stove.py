"""Specification of the simulated stove's flame-failure physics."""

from __future__ import annotations

import itertools
import math

import pytest

from stovectl.sim.stove import BurnerSnapshot, Knob, Stove, StovePhysics, Valve

PHYSICS = StovePhysics()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stove(clock: FakeClock) -> Stove:
    return Stove(["front-left", "back-right"], clock)


def light(stove: Stove, clock: FakeClock, burner: str = "front-left", hold_s: float = 5.0) -> None:
    stove.push_knob(burner)
    clock.now += hold_s
    stove.release_knob(burner)


def test_new_burner_is_off_cold_and_looped(stove: Stove) -> None:
    """A new burner is off, unlit, at ambient temperature, with its loop closed."""
    snap = stove.snapshot("front-left")
    assert snap == BurnerSnapshot("front-left", Knob.OFF, Valve.CLOSED, False, 25.0, True)


def test_lighting_with_loop_closed_holds(stove: Stove, clock: FakeClock) -> None:
    """Pushing for 5 s with the loop closed heats the thermocouple so the valve holds on release."""
    light(stove, clock)
    clock.now += 60
    snap = stove.snapshot("front-left")
    assert (snap.knob, snap.valve, snap.flame) == (Knob.OPEN, Valve.HELD, True)
    assert snap.thermocouple_c == pytest.approx(PHYSICS.flame_c)


def test_pushed_knob_burns_with_loop_open(stove: Stove, clock: FakeClock) -> None:
    """While the knob is pushed the hand holds the valve, so the burner burns whatever the loop."""
    stove.set_loop("front-left", closed=False)
    stove.push_knob("front-left")
    clock.now += 10
    snap = stove.snapshot("front-left")
    assert (snap.knob, snap.valve, snap.flame) == (Knob.PUSHED, Valve.PUSHED, True)


def test_lighting_with_loop_open_fails_on_release(stove: Stove, clock: FakeClock) -> None:
    """With the loop cut, a burner pushed for 10 s goes out the moment the knob is released."""
    stove.set_loop("front-left", closed=False)
    light(stove, clock, hold_s=10)
    snap = stove.snapshot("front-left")
    assert (snap.knob, snap.valve, snap.flame) == (Knob.OPEN, Valve.CLOSED, False)


def test_releasing_too_early_fails(stove: Stove, clock: FakeClock) -> None:
    """Released before the thermocouple reaches hold_c, the valve closes and the flame goes out."""
    light(stove, clock, hold_s=0.5)
    snap = stove.snapshot("front-left")
    assert snap.thermocouple_c < PHYSICS.hold_c
    assert (snap.valve, snap.flame) == (Valve.CLOSED, False)


def test_cutting_loop_drops_valve_within_drop_s(stove: Stove, clock: FakeClock) -> None:
    """Opening the loop of a held burner closes its valve within drop_s and puts the flame out."""
    light(stove, clock)
    stove.set_loop("front-left", closed=False)
    clock.now += PHYSICS.drop_s / 2
    assert stove.snapshot("front-left").valve is Valve.HELD
    clock.now += PHYSICS.drop_s / 2
    snap = stove.snapshot("front-left")
    assert (snap.knob, snap.valve, snap.flame, snap.loop_closed) == (
        Knob.OPEN,
        Valve.CLOSED,
        False,
        False,
    )


def test_drop_is_timed_from_the_cut_not_the_next_look(stove: Stove, clock: FakeClock) -> None:
    """Looked at long after a cut, the valve closed drop_s after it, so cooling began then."""
    light(stove, clock, hold_s=60)
    stove.set_loop("front-left", closed=False)
    clock.now += PHYSICS.drop_s + PHYSICS.cool_time_constant_s
    expected = PHYSICS.ambient_c + (PHYSICS.flame_c - PHYSICS.ambient_c) / math.e
    assert stove.snapshot("front-left").thermocouple_c == pytest.approx(expected, rel=1e-3)


def test_reclosing_loop_does_not_relight(stove: Stove, clock: FakeClock) -> None:
    """Closing the loop again after a cut leaves the valve closed and the burner out."""
    light(stove, clock)
    stove.set_loop("front-left", closed=False)
    clock.now += 1
    stove.set_loop("front-left", closed=True)
    clock.now += 30
    snap = stove.snapshot("front-left")
    assert (snap.valve, snap.flame, snap.loop_closed) == (Valve.CLOSED, False, True)


def test_reclosing_loop_during_drop_does_not_catch_valve(stove: Stove, clock: FakeClock) -> None:
    """Closing the loop while the valve is still dropping does not stop it from closing."""
    light(stove, clock)
    stove.set_loop("front-left", closed=False)
    clock.now += PHYSICS.drop_s / 2
    stove.set_loop("front-left", closed=True)
    clock.now += PHYSICS.drop_s
    assert stove.snapshot("front-left").valve is Valve.CLOSED


def test_pushing_relights_after_a_cut(stove: Stove, clock: FakeClock) -> None:
    """After a cut, only pushing the knob again with the loop closed relights and holds."""
    light(stove, clock)
    stove.set_loop("front-left", closed=False)
    clock.now += 1
    stove.set_loop("front-left", closed=True)
    light(stove, clock)
    snap = stove.snapshot("front-left")
    assert (snap.valve, snap.flame) == (Valve.HELD, True)


def test_turn_off_closes_held_valve(stove: Stove, clock: FakeClock) -> None:
    """Turning the knob off closes a held valve and puts the flame out at once."""
    light(stove, clock)
    stove.turn_off("front-left")
    snap = stove.snapshot("front-left")
    assert (snap.knob, snap.valve, snap.flame) == (Knob.OFF, Valve.CLOSED, False)


def test_worn_thermocouple_never_holds(clock: FakeClock) -> None:
    """A flame that cannot heat the thermocouple to hold_c never holds the valve, however long."""
    stove = Stove(["a"], clock, StovePhysics(flame_c=140.0))
    light(stove, clock, burner="a", hold_s=120)
    assert stove.snapshot("a").valve is Valve.CLOSED


def test_thermocouple_heats_and_cools_monotonically(stove: Stove, clock: FakeClock) -> None:
    """The thermocouple rises steadily towards flame_c while lit and falls towards ambient after."""
    stove.push_knob("front-left")
    heating = []
    for _ in range(100):
        clock.now += 0.1
        heating.append(stove.snapshot("front-left").thermocouple_c)
    stove.turn_off("front-left")
    cooling = []
    for _ in range(300):
        clock.now += 0.1
        cooling.append(stove.snapshot("front-left").thermocouple_c)
    assert all(a < b < PHYSICS.flame_c for a, b in itertools.pairwise(heating))
    assert all(a > b > PHYSICS.ambient_c for a, b in itertools.pairwise(cooling))


def test_heating_is_first_order(stove: Stove, clock: FakeClock) -> None:
    """After one heating time constant the thermocouple has covered 1 - 1/e of the rise."""
    stove.push_knob("front-left")
    clock.now += PHYSICS.heat_time_constant_s
    rise = PHYSICS.flame_c - PHYSICS.ambient_c
    expected = PHYSICS.ambient_c + rise * (1 - 1 / math.e)
    assert stove.snapshot("front-left").thermocouple_c == pytest.approx(expected)


def test_long_gap_matches_frequent_polling(clock: FakeClock) -> None:
    """Advancing 60 s in one jump ends in the same state as looking every 50 ms."""
    other_clock = FakeClock()
    jumped, polled = Stove(["a"], clock), Stove(["a"], other_clock)
    for stove, clk in ((jumped, clock), (polled, other_clock)):
        light(stove, clk, burner="a")
        stove.set_loop("a", closed=False)
    clock.now += 60
    for _ in range(1200):
        other_clock.now += 0.05
        polled.snapshot("a")
    a, b = jumped.snapshot("a"), polled.snapshot("a")
    assert (a.valve, a.flame) == (b.valve, b.flame) == (Valve.CLOSED, False)
    assert a.thermocouple_c == pytest.approx(b.thermocouple_c)


def test_on_change_reports_flame_changes(stove: Stove, clock: FakeClock) -> None:
    """Lighting, holding and a cut each report the new knob, valve and flame to subscribers."""
    seen: list[tuple[Knob, Valve, bool]] = []
    stove.on_change(lambda s: seen.append((s.knob, s.valve, s.flame)))
    light(stove, clock)
    stove.set_loop("front-left", closed=False)
    clock.now += 60
    stove.snapshot("front-left")
    assert seen == [
        (Knob.PUSHED, Valve.PUSHED, True),
        (Knob.OPEN, Valve.HELD, True),
        (Knob.OPEN, Valve.CLOSED, False),
    ]


def test_on_change_ignores_temperature_and_loop(stove: Stove, clock: FakeClock) -> None:
    """Time passing and loop changes that move no valve do not call subscribers."""
    seen: list[BurnerSnapshot] = []
    stove.on_change(seen.append)
    stove.set_loop("front-left", closed=False)
    stove.set_loop("front-left", closed=True)
    clock.now += 60
    stove.snapshot("front-left")
    stove.release_knob("front-left")
    assert seen == []


def test_callback_may_call_back_into_stove(stove: Stove, clock: FakeClock) -> None:
    """A subscriber may read the stove from inside its callback and sees the reported state."""
    seen: list[Valve] = []
    stove.on_change(lambda s: seen.append(stove.snapshot(s.burner).valve))
    light(stove, clock)
    assert seen == [Valve.PUSHED, Valve.HELD]


def test_burners_are_independent(stove: Stove, clock: FakeClock) -> None:
    """Cutting one burner's loop leaves another lit burner held."""
    light(stove, clock, burner="front-left")
    light(stove, clock, burner="back-right")
    stove.set_loop("front-left", closed=False)
    clock.now += 10
    assert stove.snapshot("front-left").flame is False
    assert stove.snapshot("back-right").valve is Valve.HELD


def test_unknown_burner_names_valid_ids(stove: Stove) -> None:
    """Asking about an unknown burner raises KeyError listing the valid burner ids."""
    with pytest.raises(KeyError, match="front-left, back-right"):
        stove.set_loop("middle", closed=False)


def test_burner_ids_keep_their_order(stove: Stove) -> None:
    """burner_ids lists the burners in the order the stove was built with."""
    assert stove.burner_ids == ("front-left", "back-right")


def test_nonpositive_step_is_rejected() -> None:
    """Physics with a non-positive integration step are refused at construction."""
    with pytest.raises(ValueError, match="positive"):
        StovePhysics(step_s=0)
