"""Failsafes on the controller: max-on, unattended cooking, flame confirmation (virtual time)."""

from __future__ import annotations

from typing import Any

import pytest

from stovectl.core.events import Kind, Result
from tests.support.kitchen import Kitchen, kitchen_config

MAX_ON = 600.0
WARN = 60.0
AFTER = 300.0
GRACE = 60.0


def sensor(sensor_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": sensor_id, "kind": kind, "source": "mqtt", "topic": f"test/{sensor_id}",
            **fields}


def config(**sections: Any) -> dict[str, Any]:
    """Two burners, a flame sensor on left, a presence sensor, max-on 10 min."""
    base: dict[str, Any] = {
        "mqtt": {},
        "sensors": [sensor("left_flame", "flame", burner="left"),
                    sensor("motion", "presence")],
        "failsafe": {"max_on": f"{MAX_ON:g}s", "warn_before": f"{WARN:g}s"},
    }
    base.update(sections)
    return kitchen_config(**base)


def flame(k: Kitchen, lit: bool, sensor_id: str = "left_flame") -> None:
    k.controller.sensors.sensor_reading(sensor_id, lit)


def presence(k: Kitchen, present: bool) -> None:
    k.controller.sensors.sensor_reading("motion", present)


def shutoffs(k: Kitchen, source: str) -> list[Any]:
    return k.find(Kind.SHUTOFF, "left", source=source)


# -- max-on ----------------------------------------------------------------------------------


def test_max_on_warns_then_shuts_off_a_burner_lit_too_long(kitchen_run: Any) -> None:
    """A flame lit for max_on gets a warning warn_before ahead, then a failsafe shutoff."""

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        lit = k.now()
        flame(k, True)
        warning = await k.wait_event(lambda e: e.kind is Kind.WARNING, within=MAX_ON)
        assert k.now() - lit == pytest.approx(MAX_ON - WARN, abs=0.01)
        assert warning.source == "failsafe" and warning.burner == "left"
        assert "1m" in warning.message and not k.is_cut("left")
        cut = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=WARN + 1)
        assert k.now() - lit == pytest.approx(MAX_ON, abs=0.05)
        assert cut.source == "failsafe" and cut.result is Result.VERIFIED
        assert "max_on" in cut.message and k.is_cut("left")

    kitchen_run(scenario, config())


def test_the_flame_going_out_stops_max_on(kitchen_run: Any) -> None:
    """A burner turned off before max_on is neither warned about nor cut."""

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        flame(k, True)
        await k.elapse(MAX_ON / 2)
        flame(k, False)
        await k.elapse(MAX_ON)
        assert not k.find(Kind.WARNING) and not k.find(Kind.SHUTOFF)
        assert k.row("left")["failsafe"]["max_on"] is None

    kitchen_run(scenario, config())


def test_a_burner_may_have_its_own_max_on(kitchen_run: Any) -> None:
    """A burner's own max_on overrides [failsafe] max_on."""
    settings = config()
    settings["burners"][0]["max_on"] = "5m"

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        lit = k.now()
        flame(k, True)
        await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=MAX_ON)
        assert k.now() - lit == pytest.approx(300, abs=0.05)

    kitchen_run(scenario, settings)


def test_repeated_trips_lock_the_burner(kitchen_run: Any) -> None:
    """With lock_after_trips = 2, the second max-on trip within the window locks (failsafe)."""
    settings = config(failsafe={"max_on": "10m", "warn_before": "1m", "lock_after_trips": 2,
                                "trip_window": "1h"})

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        flame(k, True)
        first = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=MAX_ON + 1)
        assert first.source == "failsafe"
        flame(k, False)
        await k.elapse(5)
        flame(k, True)  # lit again by hand after the re-arm
        lock = await k.wait_event(lambda e: e.kind is Kind.LOCK, within=MAX_ON + 1)
        assert lock.source == "failsafe" and lock.reason == "failsafe"
        assert "2 times" in lock.message
        assert k.mode("left") == "locked" and k.is_cut("left")

    kitchen_run(scenario, settings)


def test_assume_lit_counts_max_on_from_the_last_rearm(kitchen_run: Any) -> None:
    """Without a flame sensor and with assume_lit, max_on counts from the last re-arm."""
    settings = kitchen_config(failsafe={"max_on": "10m", "warn_before": "1m",
                                        "assume_lit": True})

    async def scenario(k: Kitchen) -> None:
        started = k.now()
        cut = await k.wait_event(
            lambda e: e.kind is Kind.SHUTOFF and e.burner == "right", within=MAX_ON + 1
        )
        assert cut.source == "failsafe" and k.now() - started == pytest.approx(MAX_ON, abs=0.1)
        rearmed = await k.wait_event(
            lambda e: e.kind is Kind.REARM and e.burner == "right", within=10
        )
        again = await k.wait_event(
            lambda e: e.kind is Kind.SHUTOFF and e.burner == "right" and e is not cut,
            within=MAX_ON + 1,
        )
        assert again.time - rearmed.time == pytest.approx(MAX_ON, abs=0.1)

    kitchen_run(scenario, settings)


def test_without_flame_sensor_or_assume_lit_max_on_never_runs(kitchen_run: Any) -> None:
    """A burner nobody can see burning has no max-on unless assume_lit says so."""

    async def scenario(k: Kitchen) -> None:
        await k.elapse(4 * MAX_ON)
        assert not k.find(Kind.SHUTOFF, "right") and not k.find(Kind.WARNING, "right")

    kitchen_run(scenario, config())


def test_a_pending_max_on_survives_a_restart(kitchen_run: Any) -> None:
    """After a crash the restarted controller cuts at the original max-on deadline."""

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        lit = k.now()
        flame(k, True)
        await k.elapse(MAX_ON / 2)
        await k.restart()
        # The flame stays unknown until its sensor speaks again: the deadline still stands.
        cut = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=MAX_ON)
        assert k.now() - lit == pytest.approx(MAX_ON, abs=0.05)
        assert cut.source == "failsafe"

    kitchen_run(scenario, config())


def test_an_overdue_max_on_fires_at_once_after_a_restart(kitchen_run: Any) -> None:
    """A max-on deadline that passed while the daemon was down cuts as soon as it starts."""

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        flame(k, True)
        await k.elapse(MAX_ON / 2)
        await k.close()
        k.clock.jump_wall(MAX_ON)  # down for ten minutes
        k.controller = k._new_controller()
        restarted = k.now()
        await k.controller.start()
        cut = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=1)
        assert cut.source == "failsafe" and k.now() - restarted < 0.5

    kitchen_run(scenario, config())


# -- unattended ------------------------------------------------------------------------------


UNATTENDED = {"after": f"{AFTER:g}s", "grace": f"{GRACE:g}s"}


def test_unattended_burner_is_warned_about_then_cut(kitchen_run: Any) -> None:
    """Flame on and nobody present: a warning after `after`, a shutoff `grace` later."""

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        flame(k, True)
        await k.elapse(30)
        left = k.now()
        presence(k, False)
        warning = await k.wait_event(lambda e: e.kind is Kind.WARNING, within=AFTER + 1)
        assert k.now() - left == pytest.approx(AFTER, abs=0.01)
        assert warning.source == "unattended" and "nobody" in warning.message
        cut = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=GRACE + 1)
        assert k.now() - left == pytest.approx(AFTER + GRACE, abs=0.05)
        assert cut.source == "unattended" and cut.result is Result.VERIFIED
        assert k.is_cut("left")
        sources = [(e.kind, e.source) for e in k.events if e.burner == "left"
                   and e.kind in (Kind.WARNING, Kind.SHUTOFF)]
        assert sources == [(Kind.WARNING, "unattended"), (Kind.SHUTOFF, "unattended")]

    kitchen_run(scenario, config(unattended=UNATTENDED))


def test_presence_returning_cancels_the_unattended_shutoff(kitchen_run: Any) -> None:
    """Somebody coming back during the grace period cancels the shutoff and says so."""

    async def scenario(k: Kitchen) -> None:
        presence(k, False)
        flame(k, True)
        await k.wait_event(lambda e: e.kind is Kind.WARNING, within=AFTER + 1)
        await k.elapse(GRACE / 2)
        presence(k, True)
        back = await k.wait_event(lambda e: e.kind is Kind.WARNING and "back" in e.message,
                                  within=1)
        assert back.source == "unattended"
        await k.elapse(4 * GRACE)
        assert not k.find(Kind.SHUTOFF) and not k.is_cut("left")
        assert k.row("left")["failsafe"]["unattended"] is None

    kitchen_run(scenario, config(unattended=UNATTENDED))


def test_presence_before_the_warning_restarts_the_count(kitchen_run: Any) -> None:
    """A short visit resets the unattended count: the warning comes `after` the visit ends."""

    async def scenario(k: Kitchen) -> None:
        presence(k, False)
        flame(k, True)
        await k.elapse(AFTER - 10)
        presence(k, True)
        await k.elapse(5)
        gone = k.now()
        presence(k, False)
        await k.wait_event(lambda e: e.kind is Kind.WARNING and e.source == "unattended",
                           within=AFTER + 1)
        assert k.now() - gone == pytest.approx(AFTER, abs=0.01)

    kitchen_run(scenario, config(unattended=UNATTENDED))


def test_unattended_leaves_unwatched_and_unlit_burners_alone(kitchen_run: Any) -> None:
    """A burner not in [unattended] burners, or not lit, is never cut for being unattended."""
    settings = config(unattended={**UNATTENDED, "burners": ["right"]})

    async def scenario(k: Kitchen) -> None:
        presence(k, False)
        flame(k, True)  # left is lit but not watched; right is watched but unseen
        await k.elapse(3 * (AFTER + GRACE))
        assert not k.find(Kind.WARNING, source="unattended")
        assert not k.find(Kind.SHUTOFF, source="unattended")

    kitchen_run(scenario, settings)


def test_a_pending_unattended_shutoff_survives_a_restart(kitchen_run: Any) -> None:
    """The unattended warning and shutoff keep their times across a crash."""

    async def scenario(k: Kitchen) -> None:
        presence(k, False)
        left = k.now()
        flame(k, True)
        await k.elapse(AFTER + GRACE / 2)
        await k.restart()
        cut = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=GRACE)
        assert k.now() - left == pytest.approx(AFTER + GRACE, abs=0.05)
        assert cut.source == "unattended"

    kitchen_run(scenario, config(unattended=UNATTENDED))


# -- flame confirmation ----------------------------------------------------------------------


def test_a_shutoff_is_confirmed_by_the_flame_going_out(kitchen_run: Any) -> None:
    """After a verified cut, the flame sensor going out is recorded as the confirmation."""

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        flame(k, True)
        await k.controller.shutoff(["left"], "cli")
        await k.elapse(1.5)
        flame(k, False)
        out = await k.wait_event(lambda e: e.kind is Kind.FLAME_OUT, within=1)
        assert out.result is Result.VERIFIED and "1.5s after the cut" in out.message
        assert not k.find(Kind.ALARM)

    kitchen_run(scenario, config())


def test_a_flame_that_outlives_the_cut_raises_an_alarm(kitchen_run: Any) -> None:
    """A relay read back cut while the flame burns on past flame_out_within is an alarm."""

    async def scenario(k: Kitchen) -> None:
        presence(k, True)
        flame(k, True)
        cut_at = k.now()
        await k.controller.lock(["left"], "cli", "child")
        alarm = await k.wait_event(lambda e: e.kind is Kind.ALARM, within=120)
        assert k.now() - cut_at == pytest.approx(60, abs=0.1)
        assert alarm.reason == "flame" and "wiring" in alarm.message

    kitchen_run(scenario, config())


def test_flame_changes_are_recorded_and_shown(kitchen_run: Any) -> None:
    """The flame sensor's word is in status and in the history; offline is unknown."""

    async def scenario(k: Kitchen) -> None:
        assert k.row("left")["flame"] is None and k.row("left")["flame_sensor"] == "left_flame"
        flame(k, True)
        assert k.row("left")["flame"] is True
        assert k.find(Kind.FLAME_ON, "left")
        k.controller.sensors.sensor_available("left_flame", False)
        assert k.row("left")["flame"] is None
        assert k.row("right")["flame"] is None and k.row("right")["flame_sensor"] is None

    kitchen_run(scenario, config())


# -- the whole story on the simulated stove --------------------------------------------------


def test_the_simulated_kitchen_unattended_story(kitchen_run: Any) -> None:
    """Lit by hand, left alone: the simulated flame and presence sensors drive a warning, an
    unattended cut, and the flame going out confirms it; the history tells it in order."""
    settings = kitchen_config(
        sensors=[
            {"id": "left_flame", "kind": "flame", "burner": "left", "source": "simulated"},
            {"id": "motion", "kind": "presence", "source": "simulated", "initial": True},
        ],
        unattended=UNATTENDED,
    )

    async def scenario(k: Kitchen) -> None:
        assert (await k.light("left")).flame
        await k.wait_event(lambda e: e.kind is Kind.FLAME_ON, within=2)
        k.world.sensors["motion"].set(False)
        await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=AFTER + GRACE + 1)
        await k.wait_event(lambda e: e.kind is Kind.FLAME_OUT, within=5)
        assert not k.stove("left").flame
        story = [(e.kind, e.source) for e in k.events if e.burner == "left"
                 and e.kind in (Kind.FLAME_ON, Kind.WARNING, Kind.SHUTOFF, Kind.FLAME_OFF,
                                Kind.FLAME_OUT)]
        assert story == [
            (Kind.FLAME_ON, "sensor"), (Kind.WARNING, "unattended"),
            (Kind.SHUTOFF, "unattended"), (Kind.FLAME_OFF, "sensor"),
            (Kind.FLAME_OUT, "unattended"),
        ]

    kitchen_run(scenario, settings)
