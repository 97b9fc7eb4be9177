"""The controller against the simulated stove, one safety rule (DESIGN §2) at a time."""

from __future__ import annotations

from typing import Any

import pytest

from stovectl.core.events import Kind, Result
from stovectl.devices.base import RelayState
from stovectl.errors import CommandRefused
from stovectl.sim.stove import Valve
from tests.support.kitchen import Kitchen, kitchen_config

CUT_HOLD = 5.0
ALARM_AFTER = 10.0
POLL = 1.0


# -- rule 1: cutting always wins ----------------------------------------------------------


def test_shutoff_cuts_the_relay_and_puts_the_flame_out(kitchen_run: Any) -> None:
    """A shutoff of a lit burner is verified, opens its loop and the flame dies."""

    async def scenario(k: Kitchen) -> None:
        assert (await k.light("left")).flame
        [outcome] = await k.controller.shutoff(["left"], "cli")
        assert outcome.result is Result.VERIFIED
        assert k.is_cut("left")
        await k.elapse(0.5)
        assert not k.stove("left").flame
        assert k.stove("left").valve is Valve.CLOSED
        assert not k.is_cut("right")

    kitchen_run(scenario)


def test_shutoff_of_all_does_not_wait_for_a_dead_device(kitchen_run: Any) -> None:
    """With one device offline, the other device's burner is cut and verified at once."""

    async def scenario(k: Kitchen) -> None:
        k.world.devices["back"].set_fault("offline")
        start = k.now()
        outcomes = {o.burner: o for o in await k.controller.shutoff(["all"], "cli")}
        assert outcomes["left"].result is Result.VERIFIED
        assert outcomes["left"].latency_ms is not None and outcomes["left"].latency_ms < 50
        assert outcomes["right"].result is Result.FAILED
        assert k.now() - start == pytest.approx(ALARM_AFTER, abs=0.01)

    kitchen_run(scenario, kitchen_config(two_devices=True))


@pytest.mark.parametrize("command", ["shutoff", "lock"])
def test_a_command_for_every_burner_is_durable_in_one_sync_before_any_relay_is_asked(
    kitchen_run: Any, command: str
) -> None:
    """off all / lock all: every intent is written in one transaction (one disk sync, not
    one per burner before the first cut), and no relay is cut before it is committed."""

    async def scenario(k: Kitchen) -> None:
        statements: list[tuple[str, list[bool]]] = []
        k.store.db.set_trace_callback(
            lambda sql: statements.append((sql, [k.is_cut(b) for b in ("left", "right")])))
        outcomes = await getattr(k.controller, command)(["all"], "cli")
        k.store.db.set_trace_callback(None)
        assert [o.result for o in outcomes] == [Result.VERIFIED] * 2
        sql = [text for text, _ in statements]
        begin, commit = sql.index("BEGIN IMMEDIATE"), sql.index("COMMIT")
        intents = [i for i, text in enumerate(sql) if "INTO intents" in text]
        assert len(intents) == 2 and begin < min(intents) and max(intents) < commit, sql
        assert statements[commit][1] == [False, False], "a relay was cut before the commit"
        assert k.is_cut("left") and k.is_cut("right")

    kitchen_run(scenario, kitchen_config(two_devices=True))


def test_repeated_shutoffs_are_idempotent(kitchen_run: Any) -> None:
    """Two shutoffs in a row both verify and leave one pending re-arm."""

    async def scenario(k: Kitchen) -> None:
        first = await k.controller.shutoff(["left"], "cli")
        await k.elapse(1)
        second = await k.controller.shutoff(["left"], "mqtt")
        assert [o.result for o in first + second] == [Result.VERIFIED, Result.VERIFIED]
        await k.elapse(CUT_HOLD - 0.2)
        assert k.is_cut("left"), "the second shutoff restarts the hold"
        await k.elapse(0.4)
        assert not k.is_cut("left")
        assert len(k.find(Kind.REARM, "left")) == 1

    kitchen_run(scenario)


def test_a_lock_supersedes_a_pending_rearm(kitchen_run: Any) -> None:
    """Locking during a shutoff's hold keeps the burner cut past the hold."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.shutoff(["left"], "cli")
        await k.elapse(1)
        [outcome] = await k.controller.lock(["left"], "cli", "child")
        assert outcome.result is Result.VERIFIED
        await k.elapse(CUT_HOLD * 3)
        assert k.is_cut("left")
        assert k.mode("left") == "locked"
        assert not k.find(Kind.REARM, "left")

    kitchen_run(scenario)


# -- rule 2: nothing is done until it is seen ---------------------------------------------


def test_a_stuck_relay_is_never_reported_as_cut(kitchen_run: Any) -> None:
    """A relay that acknowledges but does not switch gives a failure and an alarm."""

    async def scenario(k: Kitchen) -> None:
        k.world.devices["sim"].set_fault("stuck")
        [outcome] = await k.controller.shutoff(["left"], "cli")
        assert outcome.result is Result.FAILED
        assert "left" in outcome.message and "sim" in outcome.message
        assert not k.is_cut("left")
        [alarm] = k.find(Kind.ALARM, "left")
        assert "still retrying" in alarm.message
        assert alarm.reason == "cut", "the alarm says what failed"
        assert k.find(Kind.SHUTOFF, "left", result=Result.FAILED)
        assert not k.find(Kind.SHUTOFF, "left", result=Result.VERIFIED)
        assert k.row("left")["alarm"] is True

    kitchen_run(scenario)


def test_wiring_polarity_decides_the_cut_state(kitchen_run: Any) -> None:
    """An NO-wired burner (cut_state off) is cut by switching its relay off."""

    async def scenario(k: Kitchen) -> None:
        assert k.relay("right") is RelayState.ON, "armed NO wiring holds the relay on"
        await k.controller.shutoff(["right"], "cli")
        assert k.relay("right") is RelayState.OFF
        await k.elapse(CUT_HOLD + 0.5)
        assert k.relay("right") is RelayState.ON

    kitchen_run(scenario, kitchen_config(two_devices=True))


# -- rule 3: bounded effort, loud failure ---------------------------------------------------


def test_an_offline_device_alarms_on_time_and_is_cut_when_it_returns(kitchen_run: Any) -> None:
    """The alarm goes out at alarm_after; retries go on and verify once the device is back."""

    async def scenario(k: Kitchen) -> None:
        device = k.world.devices["sim"]
        device.set_fault("offline")
        start = k.now()
        [outcome] = await k.controller.shutoff(["left"], "cli")
        assert outcome.result is Result.FAILED
        [alarm] = k.find(Kind.ALARM, "left")
        assert alarm.time - k.clock.wall() == pytest.approx(0, abs=0.01)
        assert k.now() - start == pytest.approx(ALARM_AFTER, abs=0.01)
        assert k.find(Kind.DEVICE_OFFLINE, device="sim")
        await k.elapse(10)
        device.set_fault("none")
        back = k.now()
        recovered = await k.wait_event(lambda e: e.kind is Kind.RECOVERED, within=5)
        assert recovered.burner == "left"
        assert k.now() - back <= 2.5, "retries back off to at most retry_max_interval"
        assert k.is_cut("left")
        assert k.find(Kind.DEVICE_ONLINE, device="sim")

    kitchen_run(scenario)


@pytest.mark.parametrize("offline_seconds", [20.0, 20.2, 20.4, 20.6, 20.8])
def test_a_cut_is_retried_as_soon_as_a_poll_finds_the_device_back(
    kitchen_run: Any, offline_seconds: float
) -> None:
    """A poll that finds the device back ends the cut's retry backoff: verified within a poll."""

    async def scenario(k: Kitchen) -> None:
        device = k.world.devices["sim"]
        device.set_fault("offline")
        [outcome] = await k.controller.shutoff(["left"], "cli")
        assert outcome.result is Result.FAILED
        await k.elapse(offline_seconds - ALARM_AFTER)
        device.set_fault("none")
        back = k.now()
        recovered = await k.wait_event(lambda e: e.kind is Kind.RECOVERED, within=5)
        assert recovered.burner == "left"
        # Unwoken, the cut would wait out its backoff: up to retry_max_interval (2 s) more.
        assert k.now() - back <= POLL + 0.2
        assert k.is_cut("left")

    # Failing fast, as a miIO device that misses its handshake does, so backoff dominates.
    device = {"kind": "simulated", "id": "sim", "channels": 2, "timeout": "150ms"}
    kitchen_run(scenario, kitchen_config(devices=[device]))


def test_one_lost_answer_is_not_an_outage(kitchen_run: Any) -> None:
    """A device that misses one poll is not reported offline; three in a row are, once."""

    async def scenario(k: Kitchen) -> None:
        device = k.world.devices["sim"]
        device.set_fault("offline")
        await k.elapse(2.05)  # one poll, unanswered after the 1 s timeout
        device.set_fault("none")
        await k.elapse(3)
        assert not k.find(Kind.DEVICE_OFFLINE)
        device.set_fault("offline")
        await k.elapse(10)
        assert len(k.find(Kind.DEVICE_OFFLINE)) == 1
        assert k.row("left")["device_online"] is False

    kitchen_run(scenario)


# -- rule 4: re-arm is gentle -----------------------------------------------------------------


def test_rearm_after_cut_hold_never_relights(kitchen_run: Any) -> None:
    """After cut_hold the loop closes again, but the burner stays out until lit by hand."""

    async def scenario(k: Kitchen) -> None:
        await k.light("left")
        await k.controller.shutoff(["left"], "cli")
        await k.elapse(CUT_HOLD - 0.1)
        assert k.is_cut("left")
        await k.elapse(0.2)
        assert not k.is_cut("left")
        assert not k.stove("left").flame
        [rearm] = k.find(Kind.REARM, "left")
        assert rearm.result is Result.VERIFIED
        assert (await k.light("left")).flame, "the user can light it again by hand"

    kitchen_run(scenario)


def test_a_locked_burner_cannot_be_lit(kitchen_run: Any) -> None:
    """While locked, pushing and releasing the knob does not keep a flame."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.lock(["left"], "cli", "child")
        snapshot = await k.light("left", hold_seconds=15)
        assert not snapshot.flame
        await k.controller.unlock(["left"], "cli")
        assert (await k.light("left")).flame

    kitchen_run(scenario)


def pulsing_config() -> dict[str, Any]:
    """Two burners on a simulated device that has its own off-delay timer."""
    config = kitchen_config()
    config["devices"][0]["device_pulse"] = True
    return config


def test_a_shutoff_uses_the_device_timer_and_the_device_rearms(kitchen_run: Any) -> None:
    """With a device-side pulse, the device re-arms by itself after cut_hold, seen by polling."""

    async def scenario(k: Kitchen) -> None:
        device = k.world.devices["sim"]
        [outcome] = await k.controller.shutoff(["left"], "cli")
        assert outcome.result is Result.VERIFIED
        writes = device.writes
        await k.elapse(CUT_HOLD - 0.1)
        assert k.is_cut("left")
        rearm = await k.wait_event(lambda e: e.kind is Kind.REARM, within=POLL + 0.5)
        assert "device's own timer" in rearm.message
        assert device.writes == writes, "the daemon wrote nothing to re-arm it"
        assert k.mode("left") == "armed" and not k.is_cut("left")

    kitchen_run(scenario, pulsing_config())


def test_a_crash_mid_pulse_still_rearms(kitchen_run: Any) -> None:
    """If the daemon dies during a device-side pulse, the device re-arms on its own."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.shutoff(["left"], "cli")
        await k.controller.close()  # the daemon is gone
        await k.elapse(CUT_HOLD + 0.1)
        assert not k.is_cut("left")
        k.controller = k._new_controller()
        await k.controller.start()
        assert k.mode("left") == "armed"

    kitchen_run(scenario, pulsing_config())


def test_locks_never_use_the_device_timer(kitchen_run: Any) -> None:
    """A lock after a pulsed shutoff ends the device's timer: the burner stays cut."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.shutoff(["left"], "cli")
        await k.controller.lock(["left"], "cli", "child")
        await k.elapse(CUT_HOLD * 4)
        assert k.is_cut("left") and k.mode("left") == "locked"
        assert not k.find(Kind.TAMPER)

    kitchen_run(scenario, pulsing_config())


def test_the_daemon_rearms_when_the_device_timer_fails(kitchen_run: Any) -> None:
    """If the device forgets its timer, the daemon re-arms itself soon after cut_hold."""

    async def scenario(k: Kitchen) -> None:
        device = k.world.devices["sim"]
        await k.controller.shutoff(["left"], "cli")
        device._cancel_return(1)  # a reboot of the relay loses its timer
        start = k.now()
        rearm = await k.wait_event(lambda e: e.kind is Kind.REARM, within=CUT_HOLD + POLL + 2)
        assert "device's own timer" not in rearm.message
        assert CUT_HOLD + POLL <= k.now() - start <= CUT_HOLD + POLL + 1.1
        assert not k.is_cut("left")

    kitchen_run(scenario, pulsing_config())


def test_an_early_rearm_during_a_device_pulse_is_cut_again(kitchen_run: Any) -> None:
    """Someone re-arming before the device's timer ends is not the device: cut again."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.shutoff(["left"], "cli")
        await k.elapse(1)
        k.world.devices["sim"].switch_by_hand(1, RelayState.OFF)
        await k.wait_event(lambda e: e.kind is Kind.TAMPER, within=POLL + 0.5)
        await k.elapse(0.1)
        assert k.is_cut("left")
        assert k.mode("left") == "pulse"

    kitchen_run(scenario, pulsing_config())


def test_a_device_slower_than_its_pulse_still_verifies_a_cut(kitchen_run: Any) -> None:
    """When a slow device ends its pulse before the read-back, a plain cut follows and verifies."""

    async def scenario(k: Kitchen) -> None:
        k.world.devices["sim"].set_fault("slow")  # 2 s a request, cut_hold 2 s
        [outcome] = await k.controller.shutoff(["left"], "cli")
        assert outcome.result is Result.VERIFIED
        assert k.is_cut("left")
        await k.wait_event(lambda e: e.kind is Kind.REARM, within=30)
        assert not k.is_cut("left")

    config = pulsing_config()
    config["safety"] = {"alarm_after": "30s"}  # polls queue behind each slow request too
    for burner in config["burners"]:
        burner["cut_hold"] = "2s"
    kitchen_run(scenario, config)


# -- rule 5: remote may only make it safer --------------------------------------------------


def test_remote_sources_may_cut_and_lock_but_not_unlock(kitchen_run: Any) -> None:
    """mqtt, voice and external may cut and lock; their unlock is refused and changes nothing."""

    async def scenario(k: Kitchen) -> None:
        for source in ("mqtt", "voice", "external"):
            [outcome] = await k.controller.lock(["left"], source, "away")
            assert outcome.result is Result.VERIFIED
            with pytest.raises(CommandRefused) as refused:
                await k.controller.unlock(["left"], source)
            assert refused.value.code == "remote_relax_disabled"
            assert k.mode("left") == "locked" and k.is_cut("left")
        assert len(k.find(Kind.REFUSED, "left")) == 3

    kitchen_run(scenario)


def test_remote_countdowns_may_start_and_shorten_but_not_extend_or_cancel(
    kitchen_run: Any,
) -> None:
    """A remote countdown may only move earlier."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["left"], 600, "mqtt")
        k.controller.set_countdown(["left"], 300, "voice")
        with pytest.raises(CommandRefused):
            k.controller.set_countdown(["left"], 100, "mqtt", extend=True)
        with pytest.raises(CommandRefused):
            k.controller.cancel_countdown(["left"], "voice")
        assert k.row("left")["countdown"]["remaining"] == pytest.approx(300, abs=0.01)

    kitchen_run(scenario)


def test_remote_unlock_when_allowed_needs_the_pin_and_a_fresh_command(kitchen_run: Any) -> None:
    """With allow_relax, a remote unlock needs the right PIN and must not be stale."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.lock(["left"], "cli", "child")
        codes = []
        for pin, age in ((None, 0), ("0000", 0), ("4321", 120)):
            with pytest.raises(CommandRefused) as refused:
                await k.controller.unlock(
                    ["left"], "mqtt", pin=pin, issued_at=k.clock.wall() - age
                )
            codes.append(refused.value.code)
        assert codes == ["bad_pin", "bad_pin", "stale"]
        assert k.mode("left") == "locked"
        [outcome] = await k.controller.unlock(["left"], "mqtt", pin="4321",
                                              issued_at=k.clock.wall())
        assert outcome.result is Result.VERIFIED
        assert not k.is_cut("left")

    config = kitchen_config(remote={"allow_relax": True, "pin": "4321"})
    kitchen_run(scenario, config)


def test_stale_cuts_are_still_obeyed(kitchen_run: Any) -> None:
    """Age limits apply to relaxing commands only: an old remote cut still cuts."""

    async def scenario(k: Kitchen) -> None:
        [outcome] = await k.controller.shutoff(["left"], "mqtt")
        assert outcome.result is Result.VERIFIED

    kitchen_run(scenario)


def test_a_hazard_lock_is_cleared_only_locally(kitchen_run: Any) -> None:
    """Even with allow_relax and the PIN, a remote unlock of a hazard lock is refused."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.lock(["all"], "hazard", "hazard")
        await k.controller.lock(["left"], "cli", "child")
        assert k.row("left")["lock_reason"] == "hazard", "a hazard outranks other reasons"
        with pytest.raises(CommandRefused) as refused:
            await k.controller.unlock(["left"], "mqtt", pin="4321")
        assert refused.value.code == "hazard_local_only"
        [outcome] = await k.controller.unlock(["left"], "cli")
        assert outcome.result is Result.VERIFIED

    kitchen_run(scenario, kitchen_config(remote={"allow_relax": True, "pin": "4321"}))


# -- rule 6: intent survives -----------------------------------------------------------------


def test_a_lock_survives_a_crash(kitchen_run: Any) -> None:
    """After a restart, a locked burner is still locked and its relay is cut again."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.lock(["left"], "cli", "child")
        k.world.devices["sim"].switch_by_hand(1, RelayState.OFF)  # armed while we were down
        await k.restart()
        assert k.mode("left") == "locked"
        assert k.row("left")["lock_reason"] == "child"
        assert k.is_cut("left")
        assert k.mode("right") == "armed" and not k.is_cut("right")

    kitchen_run(scenario)


def test_a_crash_mid_pulse_still_rearms_on_time(kitchen_run: Any) -> None:
    """A pending re-arm persists: after a restart the burner re-arms at its original time."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.shutoff(["left"], "cli")
        await k.elapse(2)
        await k.restart()
        assert k.is_cut("left")
        await k.elapse(CUT_HOLD - 2 - 0.2)
        assert k.is_cut("left")
        await k.elapse(0.4)
        assert not k.is_cut("left")
        assert k.mode("left") == "armed"

    kitchen_run(scenario)


def test_an_overdue_countdown_fires_at_startup(kitchen_run: Any) -> None:
    """A countdown due while the daemon was down fires at once with source startup."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["left"], 30, "cli")
        await k.close()
        k.clock.jump_wall(60)  # the daemon was down for a minute
        k.controller = k._new_controller()
        await k.controller.start()
        event = await k.wait_event(
            lambda e: e.kind is Kind.SHUTOFF and e.burner == "left", within=1
        )
        assert event.source == "startup" and event.result is Result.VERIFIED
        assert k.row("left")["countdown"] is None

    kitchen_run(scenario)


def test_a_pending_countdown_resumes_after_a_restart(kitchen_run: Any) -> None:
    """A countdown not yet due fires at its original wall-clock deadline after a restart."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["left"], 30, "cli")
        await k.elapse(10)
        started = k.now()
        await k.restart()
        event = await k.wait_event(lambda e: e.kind is Kind.COUNTDOWN_FIRE, within=25)
        assert k.now() - started == pytest.approx(20, abs=0.01)
        assert event.source == "timer"

    kitchen_run(scenario)


# -- rule 7: others also switch the relay ----------------------------------------------------


def test_an_external_cut_is_recorded_and_rearmed(kitchen_run: Any) -> None:
    """A relay cut by someone else is an external shutoff: recorded, countdown ended, re-armed."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["left"], 600, "cli")
        k.world.devices["sim"].switch_by_hand(1, RelayState.ON)
        seen = k.now()
        event = await k.wait_event(
            lambda e: e.kind is Kind.SHUTOFF and e.source == "external", within=2 * POLL
        )
        assert event.burner == "left" and k.now() - seen <= POLL + 0.1
        assert k.row("left")["countdown"] is None
        assert k.find(Kind.COUNTDOWN_CANCEL, "left")
        await k.wait_event(lambda e: e.kind is Kind.REARM, within=CUT_HOLD + POLL)
        assert not k.is_cut("left")

    kitchen_run(scenario)


def test_a_burner_rearmed_by_someone_else_during_its_hold_is_held_again_in_full(
    kitchen_run: Any,
) -> None:
    """Re-armed by hand 4 s into a 5 s hold: cut again within a poll, and that cut lasts a
    whole cut_hold before the re-arm, not the second the first hold had left."""

    async def scenario(k: Kitchen) -> None:
        [outcome] = await k.controller.shutoff(["left"], "cli")
        assert outcome.result is Result.VERIFIED
        await k.elapse(CUT_HOLD - 1)
        k.world.devices["sim"].switch_by_hand(1, RelayState.OFF)
        await k.wait_event(lambda e: e.kind is Kind.TAMPER, within=2 * POLL)
        await k.elapse(0.1)
        assert k.is_cut("left")
        recut = k.now()
        rearm = await k.wait_event(lambda e: e.kind is Kind.REARM, within=CUT_HOLD + 2 * POLL)
        assert rearm.result is Result.VERIFIED and not k.is_cut("left")
        assert k.now() - recut >= CUT_HOLD - 0.2

    kitchen_run(scenario)


def test_tampering_with_a_locked_burner_is_cut_again_with_an_alarm(kitchen_run: Any) -> None:
    """A locked burner switched back on by someone else is cut again within a poll interval."""

    async def scenario(k: Kitchen) -> None:
        await k.controller.lock(["left"], "cli", "child")
        k.world.devices["sim"].switch_by_hand(1, RelayState.OFF)
        start = k.now()
        tamper = await k.wait_event(lambda e: e.kind is Kind.TAMPER, within=2 * POLL)
        assert tamper.result is Result.FAILED and "locked" in tamper.message
        await k.elapse(0.1)
        assert k.is_cut("left")
        assert k.now() - start < 2

    kitchen_run(scenario)


def voice_config(action: str) -> dict[str, Any]:
    """Channel 3 of the simulated relay is a spare: a voice button running ``action``."""
    config = kitchen_config(voice=[{"device": "sim", "channel": 3, "action": action,
                                    "phrase": "小爱同学，左灶十分钟后关火"}])
    config["devices"][0]["channels"] = 3
    return config


def test_a_voice_button_starts_a_countdown_and_is_released(kitchen_run: Any) -> None:
    """A spare channel switched on by a scene starts the countdown (source voice) and goes off."""

    async def scenario(k: Kitchen) -> None:
        device = k.world.devices["sim"]
        device.switch_by_hand(3, RelayState.ON)  # the Mi Home scene Xiaoai runs
        event = await k.wait_event(lambda e: e.kind is Kind.COUNTDOWN_SET, within=2 * POLL)
        assert event.source == "voice" and event.burner == "left"
        assert event.actor == "小爱同学，左灶十分钟后关火"
        assert k.row("left")["countdown"]["remaining"] == pytest.approx(600, abs=POLL + 0.1)
        await k.elapse(0.1)
        assert device.state(3) is RelayState.OFF, "the button was switched off again"
        device.switch_by_hand(3, RelayState.ON)  # said again: heard again
        again = await k.wait_event(
            lambda e: e.source == "voice" and e.kind is Kind.REFUSED, within=2 * POLL
        )
        assert again.reason == "would_extend", "a later deadline from voice would extend it"

    kitchen_run(scenario, voice_config("timer left 10m"))


def test_a_voice_button_may_not_relax(kitchen_run: Any) -> None:
    """A voice button bound to cancel is refused by rule 5, recorded, and still released."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["left"], 600, "cli")
        k.world.devices["sim"].switch_by_hand(3, RelayState.ON)
        refused = await k.wait_event(lambda e: e.kind is Kind.REFUSED, within=2 * POLL)
        assert refused.source == "voice" and refused.reason == "remote_relax_disabled"
        assert k.row("left")["countdown"] is not None
        await k.elapse(0.1)
        assert k.world.devices["sim"].state(3) is RelayState.OFF

    kitchen_run(scenario, voice_config("cancel left"))


def test_a_voice_off_cuts_every_burner(kitchen_run: Any) -> None:
    """A button bound to off cuts all burners with source voice."""

    async def scenario(k: Kitchen) -> None:
        k.world.devices["sim"].switch_by_hand(3, RelayState.ON)
        await k.wait_event(lambda e: e.kind is Kind.SHUTOFF and e.burner == "right",
                           within=2 * POLL)
        assert k.is_cut("left") and k.is_cut("right")
        assert {e.source for e in k.find(Kind.SHUTOFF)} == {"voice"}

    kitchen_run(scenario, voice_config("off"))


# -- rule 9: deadlines are ours --------------------------------------------------------------


@pytest.mark.parametrize("jump", [3600, -3600])
def test_a_countdown_ignores_wall_clock_jumps(kitchen_run: Any, jump: float) -> None:
    """A wall-clock jump during a countdown does not move the moment it cuts."""

    async def scenario(k: Kitchen) -> None:
        start = k.now()
        k.controller.set_countdown(["left"], 120, "cli")
        await k.elapse(30)
        k.clock.jump_wall(jump)
        await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=200)
        assert k.now() - start == pytest.approx(120, abs=0.05)

    kitchen_run(scenario)


# -- countdown semantics ---------------------------------------------------------------------


def test_countdown_shorten_extend_and_cancel(kitchen_run: Any) -> None:
    """A countdown may be shortened freely; a later deadline needs extend; cancel ends it."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["left"], 600, "cli")
        k.controller.set_countdown(["left"], 60, "cli")
        with pytest.raises(CommandRefused) as refused:
            k.controller.set_countdown(["left"], 120, "cli")
        assert refused.value.code == "would_extend"
        k.controller.set_countdown(["left"], 60, "cli", extend=True)
        assert k.row("left")["countdown"]["remaining"] == pytest.approx(120, abs=0.01)
        [outcome] = k.controller.cancel_countdown(["left"], "cli")
        assert "cancelled" in outcome.message
        await k.elapse(200)
        assert not k.find(Kind.SHUTOFF)

    kitchen_run(scenario)


def test_a_countdown_refused_for_one_burner_starts_on_none(kitchen_run: Any) -> None:
    """``timer all`` that would extend right's shorter countdown starts left's neither."""

    async def scenario(k: Kitchen) -> None:
        k.controller.set_countdown(["right"], 600, "cli")
        with pytest.raises(CommandRefused) as refused:
            k.controller.set_countdown(["all"], 700, "cli")
        assert refused.value.code == "would_extend"
        assert k.row("left")["countdown"] is None
        assert k.row("right")["countdown"]["remaining"] == pytest.approx(600, abs=0.01)
        assert [e.burner for e in k.events if e.kind is Kind.COUNTDOWN_SET] == ["right"]

    kitchen_run(scenario)


@pytest.mark.parametrize("seconds", [0, -5, 366 * 86400 + 1, 1e300])
def test_a_countdown_out_of_range_is_refused(kitchen_run: Any, seconds: float) -> None:
    async def scenario(k: Kitchen) -> None:
        with pytest.raises(CommandRefused) as refused:
            k.controller.set_countdown(["left"], seconds, "cli")
        assert refused.value.code == "bad_duration"
        assert "at most 366 days" in str(refused.value)
        assert k.row("left")["countdown"] is None

    kitchen_run(scenario)


def test_a_countdown_fires_a_timer_shutoff(kitchen_run: Any) -> None:
    """When a countdown reaches zero the burner is shut off with source timer."""

    async def scenario(k: Kitchen) -> None:
        await k.light("left")
        k.controller.set_countdown(["left"], 90, "cli")
        event = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF, within=100)
        assert event.source == "timer" and event.result is Result.VERIFIED
        await k.elapse(0.5)
        assert not k.stove("left").flame

    kitchen_run(scenario)


def test_unknown_burners_are_refused_with_the_valid_names(kitchen_run: Any) -> None:
    """An unknown burner name is refused and the message lists the burners."""

    async def scenario(k: Kitchen) -> None:
        with pytest.raises(CommandRefused) as refused:
            await k.controller.shutoff(["nope"], "cli")
        assert refused.value.code == "unknown_burner"
        assert "left" in str(refused.value) and "right" in str(refused.value)

    kitchen_run(scenario)
