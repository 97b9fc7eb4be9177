"""Gas and smoke latch every burner shut until a local unlock (DESIGN §2 rule 8)."""

from __future__ import annotations

from typing import Any

import pytest

from stovectl.core.events import Kind, Result
from stovectl.errors import CommandRefused
from tests.support.kitchen import Kitchen, kitchen_config

PIN = "2468"


def config(**sections: Any) -> dict[str, Any]:
    sensors = [
        {"id": "gas", "kind": "gas", "source": "mqtt", "topic": "z2m/gas", "field": "gas"},
        {"id": "smoke", "kind": "smoke", "source": "mqtt", "topic": "z2m/smoke",
         "field": "smoke"},
    ]
    return kitchen_config(
        mqtt={}, sensors=sensors,
        remote={"allow_relax": True, "pin": PIN, "relax_ttl": "30s"}, **sections,
    )


def detect(k: Kitchen, sensor: str = "gas", value: bool = True) -> None:
    k.controller.sensors.sensor_reading(sensor, value)


async def locked_by_hazard(k: Kitchen) -> None:
    for burner in ("left", "right"):
        await k.wait_event(lambda e, b=burner: e.kind is Kind.LOCK and e.burner == b,
                           within=1)


@pytest.mark.parametrize("sensor", ["gas", "smoke"])
def test_a_detection_locks_every_burner_within_a_second(kitchen_run: Any, sensor: str) -> None:
    """Gas or smoke locks both burners (reason hazard, source hazard), verified within 1 s."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["left"], 600, "cli")
        detected = k.now()
        detect(k, sensor)
        await locked_by_hazard(k)
        assert k.now() - detected < 1.0
        for burner in ("left", "right"):
            [lock] = k.find(Kind.LOCK, burner)
            assert (lock.source, lock.reason, lock.result) == ("hazard", "hazard",
                                                               Result.VERIFIED)
            assert lock.actor == sensor
            assert k.mode(burner) == "locked" and k.is_cut(burner)
        [hazard] = k.find(Kind.HAZARD)
        assert hazard.reason == sensor and sensor in hazard.message
        assert k.row("left")["countdown"] is None

    kitchen_run(scenario, config())


def test_a_remote_unlock_is_refused_even_with_the_pin(kitchen_run: Any) -> None:
    """With allow_relax and the right PIN, a remote unlock still cannot clear a hazard lock."""

    async def scenario(k: Kitchen) -> None:
        detect(k)
        await locked_by_hazard(k)
        detect(k, value=False)
        with pytest.raises(CommandRefused) as refused:
            await k.controller.unlock(["left"], "mqtt", pin=PIN, issued_at=k.clock.wall())
        assert refused.value.code == "hazard_local_only"
        assert k.mode("left") == "locked"

    kitchen_run(scenario, config())


def test_a_local_unlock_waits_for_the_sensor_to_clear(kitchen_run: Any) -> None:
    """A local unlock is refused while gas is detected, and works once it cleared."""

    async def scenario(k: Kitchen) -> None:
        detect(k)
        await locked_by_hazard(k)
        with pytest.raises(CommandRefused) as refused:
            await k.controller.unlock(["all"], "cli")
        assert refused.value.code == "hazard_active" and "'gas'" in str(refused.value)
        detect(k, value=False)
        cleared = k.find(Kind.HAZARD)[-1]
        assert "stay locked" in cleared.message
        assert k.mode("left") == "locked"  # clearing alone unlocks nothing
        outcomes = await k.controller.unlock(["all"], "cli")
        assert all(o.result is Result.VERIFIED for o in outcomes)
        assert not k.is_cut("left") and not k.is_cut("right")

    kitchen_run(scenario, config())


def test_a_schedule_never_clears_a_hazard_lock(kitchen_run: Any) -> None:
    """A scheduled unlock leaves a hazard lock alone, even one re-locked by a schedule."""

    async def scenario(k: Kitchen) -> None:
        detect(k)
        await locked_by_hazard(k)
        detect(k, value=False)
        await k.controller.lock(["left"], "schedule", "away")
        outcomes = await k.controller.unlock(["all"], "schedule")
        assert all(o.result is Result.DONE and "stays locked" in o.message for o in outcomes)
        assert k.row("left")["lock_reason"] == "hazard"
        assert k.mode("left") == k.mode("right") == "locked"

    kitchen_run(scenario, config())


def test_a_hazard_lock_survives_a_restart(kitchen_run: Any) -> None:
    """The latch is durable: after a crash the burners come back locked for the hazard."""

    async def scenario(k: Kitchen) -> None:
        detect(k)
        await locked_by_hazard(k)
        await k.restart()
        for burner in ("left", "right"):
            row = k.row(burner)
            assert (row["mode"], row["lock_reason"], row["relay"]) == ("locked", "hazard", "cut")

    kitchen_run(scenario, config())


def test_relighting_is_impossible_while_locked(kitchen_run: Any) -> None:
    """With the hob locked for gas, a hand on the knob cannot keep a flame (the stove shows it)."""

    async def scenario(k: Kitchen) -> None:
        lit = await k.light("left")
        assert lit.flame
        detect(k)
        await locked_by_hazard(k)
        await k.elapse(1)
        assert not k.stove("left").flame
        relit = await k.light("left", hold_seconds=15)
        assert not relit.flame and not relit.loop_closed

    kitchen_run(scenario, config())


def test_a_detector_going_offline_is_recorded(kitchen_run: Any) -> None:
    """A gas sensor dropping off the network is a hazard note: that protection is gone."""

    async def scenario(k: Kitchen) -> None:
        detect(k, value=False)
        k.controller.sensors.sensor_available("gas", False)
        [note] = k.find(Kind.HAZARD)
        assert "offline" in note.message and note.actor == "gas"
        assert k.mode("left") == "armed"

    kitchen_run(scenario, config())


def test_a_simulated_gas_alarm_locks_the_simulated_hob(kitchen_run: Any) -> None:
    """The simulated gas detector going off locks both burners within 1 s and the lit burner
    goes out on the simulated stove."""
    settings = kitchen_config(sensors=[
        {"id": "gas", "kind": "gas", "source": "simulated"},
        {"id": "left_flame", "kind": "flame", "burner": "left", "source": "simulated"},
    ])

    async def scenario(k: Kitchen) -> None:
        assert (await k.light("left")).flame
        detected = k.now()
        k.world.sensors["gas"].set(True)
        await locked_by_hazard(k)
        assert k.now() - detected < 1.0
        await k.wait_event(lambda e: e.kind is Kind.FLAME_OUT, within=5)
        assert not k.stove("left").flame
        assert not (await k.light("right", hold_seconds=15)).flame

    kitchen_run(scenario, settings)
