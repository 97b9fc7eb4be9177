"""Wall-clock jumps while a countdown, a lock and a pulse are all pending (issue 7; rule 9).

time-machine cannot move a subprocess's clock, so these run the controller in
this process on a real event loop (tests.support.kitchen with SystemClock, as
tests/core/test_deadlines.py does), with the system's wall clock moved by
time-machine while the loop's monotonic clock runs on. tests/core covers one
countdown across a jump; here a countdown, a lock and a daemon-timed pulse are
pending together when the clock jumps forward an hour and then back two, and
every DESIGN §2 invariant is checked after each jump (tests.support.invariants).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine

from stovectl.core.deadlines import SystemClock
from stovectl.core.events import Kind, Result
from stovectl.settings import Settings, settings_from_mapping
from tests.faults.observers import KitchenHob, KitchenView
from tests.support.invariants import SafetyInvariants, wiring_of
from tests.support.kitchen import Kitchen

COUNTDOWN = 4.0
CUT_HOLD = 3.0
SHORT_HOLD = 2.0
"""The shortest hold there is, where a test must wait one out."""
CLOCK_WATCH = 1.0
"""The controller compares its clocks every second (controller.CLOCK_CHECK_SECONDS)."""
SETTLE = 0.5


def settings(cut_hold: float = CUT_HOLD) -> Settings:
    """left (a countdown), middle (a lock) and right (a pulse) on one simulated relay whose
    re-arms the daemon times itself (no device-side pulse)."""
    return settings_from_mapping({
        "devices": [{"kind": "simulated", "id": "sim", "channels": 3}],
        "burners": [
            {"id": burner, "device": "sim", "channel": channel, "cut_state": "on",
             "cut_hold": f"{cut_hold:g}s"}
            for channel, burner in enumerate(("left", "middle", "right"), start=1)
        ],
    })


def run_in_time_machine(
    tmp_path: Path,
    scenario: Callable[[Kitchen, KitchenHob, Any, SafetyInvariants, Any], Awaitable[None]],
    config: Settings | None = None,
) -> None:
    """Run ``scenario(kitchen, hob, traveller, invariants, check)`` on a real loop, the wall
    clock under time-machine; ``check(what)`` asserts every invariant now."""
    config = config or settings()

    async def main() -> None:
        with time_machine.travel(datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
                                 tick=True) as traveller:
            kitchen = Kitchen(config, tmp_path, SystemClock())
            hob = KitchenHob(kitchen, wiring_of(config))
            invariants = SafetyInvariants(
                wiring_of(config), alarm_after=config.safety.alarm_after.total_seconds())
            await kitchen.start()

            async def check(what: str, settle: float = SETTLE) -> None:
                await invariants.check_async(KitchenView(kitchen), hob, settle=settle,
                                             what=what)

            try:
                await scenario(kitchen, hob, traveller, invariants, check)
            finally:
                await kitchen.close()

    asyncio.run(main())


def test_jumps_during_a_countdown_a_lock_and_a_pulse_move_none_of_them(tmp_path: Path) -> None:
    """Forward 1 h, then back 2 h, with a countdown, a lock and a pulse pending: the countdown
    cuts at its monotonic moment, the pulse re-arms after cut_hold, the lock holds, and every
    invariant holds after each jump."""
    figures: dict[str, float] = {}

    async def scenario(
        k: Kitchen, hob: KitchenHob, traveller: Any, invariants: SafetyInvariants, check: Any
    ) -> None:
        started = time.monotonic()
        k.controller.set_countdown(["left"], COUNTDOWN, "cli")
        invariants.expect_countdown("left", started + COUNTDOWN)
        [locked] = await k.controller.lock(["middle"], "cli")
        invariants.expect_locked("middle")
        [pulse] = await k.controller.shutoff(["right"], "cli")
        assert (locked.result, pulse.result) == (Result.VERIFIED, Result.VERIFIED)
        await check("before the jumps")

        traveller.shift(3600)
        await check("right after +1 h")
        await asyncio.sleep(CLOCK_WATCH + 0.2)  # the controller's clock watch takes a look
        await check("after the clock watch saw +1 h")
        traveller.shift(-2 * 3600)
        await check("right after -2 h")

        fired = await k.wait_event(lambda e: e.kind is Kind.SHUTOFF and e.burner == "left",
                                   within=COUNTDOWN + 2)
        figures["countdown"] = time.monotonic() - started
        rearm = await k.wait_event(lambda e: e.kind is Kind.REARM and e.burner == "right",
                                   within=CUT_HOLD + 2)
        cut, armed = hob.switches("right")[-2:]  # measured at the relay, on the monotonic clock
        figures["hold"] = armed.mono - cut.mono
        await check("after the countdown fired and the pulse re-armed")

        assert fired.source == "timer" and fired.result is Result.VERIFIED
        assert figures["countdown"] == pytest.approx(COUNTDOWN, abs=0.25)
        assert rearm.result is Result.VERIFIED
        assert CUT_HOLD - 0.05 <= figures["hold"] <= CUT_HOLD + 0.5
        assert k.mode("middle") == "locked" and k.is_cut("middle")

    run_in_time_machine(tmp_path, scenario)
    print(  # shown with -s: the figures the README quotes
        f"\nwall-clock jumps (+1 h, -2 h): countdown of {COUNTDOWN:g}s cut after "
        f"{figures['countdown']:.2f}s, pulse of {CUT_HOLD:g}s re-armed after "
        f"{figures['hold']:.2f}s, lock held; 5 invariant checks, 0 violations"
    )


@pytest.mark.parametrize("jump", [3600, -3600])
def test_a_pulse_keeps_its_hold_across_a_jump_and_a_restart(tmp_path: Path, jump: int) -> None:
    """A pulse pending when the wall clock jumps and the daemon restarts re-arms cut_hold
    after its cut: not at once, and not an hour late."""

    async def scenario(
        k: Kitchen, hob: KitchenHob, traveller: Any, invariants: SafetyInvariants, check: Any
    ) -> None:
        [pulse] = await k.controller.shutoff(["right"], "cli")
        assert pulse.result is Result.VERIFIED
        cut_at = time.monotonic()
        traveller.shift(jump)
        await k.restart()  # a crash and a restart on the same store, same boot
        await check("right after the restart")
        while True:  # watching the relay, with a deadline
            if not k.is_cut("right") or time.monotonic() - cut_at > SHORT_HOLD + 0.6:
                break
            await asyncio.sleep(0.02)
        held = time.monotonic() - cut_at
        await check("after the re-arm")
        what = "still cut" if k.is_cut("right") else "re-armed"
        assert SHORT_HOLD - 0.05 <= held <= SHORT_HOLD + 0.5, (
            f"right {what} {held:.2f}s after its cut (cut_hold {SHORT_HOLD:g}s)")

    run_in_time_machine(tmp_path, scenario, settings(SHORT_HOLD))
