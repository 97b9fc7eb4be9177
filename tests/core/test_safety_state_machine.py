"""The safety rules as invariants, under random commands, faults, tampering and crashes.

Hypothesis drives a controller on two simulated devices (on virtual time) with
every command from every source, device faults, relays switched behind its
back and restarts over the same database, and checks DESIGN §2 after each
step against a small model of what must hold.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from stovectl.core.events import Event, Kind, Result
from stovectl.devices.base import RelayState
from stovectl.errors import CommandRefused
from stovectl.settings import settings_from_mapping
from tests.support.kitchen import Kitchen, kitchen_config
from tests.support.virtual_time import VirtualTimeLoop

PIN = "4321"
BURNERS = ("left", "right")
DEVICE_OF = {"left": "front", "right": "back"}
LOCAL = ("cli", "schedule", "timer", "failsafe")
REMOTE = ("mqtt", "voice", "external")
CUT_HOLD = 2.0

names = st.sampled_from([["left"], ["right"], ["all"], ["left", "right"]])
sources = st.sampled_from(LOCAL + REMOTE)


class SafetyRules(RuleBasedStateMachine):
    """Remote relaxing is off, as by default."""

    allow_relax = False

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="stv-sm"))
        self.runner = asyncio.Runner(loop_factory=VirtualTimeLoop)
        config = kitchen_config(
            two_devices=True,
            remote={"allow_relax": self.allow_relax, "pin": PIN},
        )
        for burner in config["burners"]:
            burner["cut_hold"] = f"{CUT_HOLD}s"
        # The front relay has its own off-delay timer, so shutoffs of left pulse there.
        config["devices"][0]["device_pulse"] = True
        self.settings = settings_from_mapping(config)
        self.kitchen: Kitchen = self.runner.run(self._start())
        self.locks: dict[str, str] = {}
        self.lock_sources: dict[str, str] = {}
        self.countdown_due: dict[str, float] = {}
        self.faults = dict.fromkeys(DEVICE_OF.values(), "none")
        self.ever_faulty: set[str] = set()
        self.unseen_cut: set[str] = set()
        """Burners cut by hand whose countdown the controller may or may not have ended yet."""
        self.problems: list[str] = []

    async def _start(self) -> Kitchen:
        kitchen = Kitchen(self.settings, self.tmp)
        kitchen.listeners.append(self._check_event)
        self.relay_log: dict[str, list[tuple[float, RelayState]]] = {b: [] for b in BURNERS}
        for burner in BURNERS:
            spec = self.settings.burner(burner)
            kitchen.world.devices[spec.device].wire(self._logger(burner, spec.channel, kitchen))
        await kitchen.start()
        return kitchen

    def _logger(self, burner: str, channel: int, kitchen: Kitchen) -> Any:
        def log(changed: int, state: RelayState) -> None:
            if changed == channel:
                self.relay_log[burner].append((kitchen.loop.time(), state))

        return log

    def relay_at(self, burner: str, moment: float) -> RelayState:
        """The relay's true state at a past moment, from the wiring's log."""
        state = self.relay_log[burner][0][1]
        for when, changed in self.relay_log[burner]:
            if when > moment + 1e-9:
                break
            state = changed
        return state

    def relaxing_refused(self, source: str) -> bool:
        return source in REMOTE and not self.allow_relax

    def teardown(self) -> None:
        self.runner.run(self.kitchen.close())
        self.runner.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, coroutine: Any) -> Any:
        return self.runner.run(coroutine)

    def ids(self, burner_names: list[str]) -> list[str]:
        return list(BURNERS) if "all" in burner_names else list(dict.fromkeys(burner_names))

    def _check_event(self, event: Event) -> None:
        """Checks made at the moment an event happens."""
        if event.kind is Kind.SHUTOFF and event.source == "external":
            assert event.burner is not None
            self.countdown_due.pop(event.burner, None)
            self.unseen_cut.discard(event.burner)
        if event.kind is Kind.REARM and event.burner in self.locks:
            self.problems.append(f"re-armed {event.burner} while locked")
        if event.kind is Kind.ALARM and event.device not in self.ever_faulty:
            self.problems.append(f"alarm on healthy device {event.device}: {event.message}")
        if event.kind is Kind.COUNTDOWN_FIRE and event.source == "timer":
            assert event.burner is not None
            due = self.countdown_due.pop(event.burner, None)
            now = self.kitchen.now()
            if due is None:
                self.problems.append(f"countdown fired for {event.burner} with none pending")
            elif abs(now - due) > 0.05:
                self.problems.append(f"countdown for {event.burner} fired {now - due:+.3f}s off")

    def _check_outcomes(self, outcomes: list[Any], started: float, want_cut: bool) -> None:
        for outcome in outcomes:
            fault = self.faults[DEVICE_OF[outcome.burner]]
            if outcome.result is Result.VERIFIED:
                spec = self.settings.burner(outcome.burner)
                state = self.relay_at(outcome.burner, started + outcome.latency_ms / 1000)
                assert (state is RelayState(spec.cut_state)) is want_cut, (
                    f"{outcome.burner} reported verified but the relay was {state}"
                )
            superseded = outcome.message.startswith("superseded")  # a countdown cut in
            if fault == "none" and not superseded:
                assert outcome.result is Result.VERIFIED, (outcome, fault)
            if outcome.result is Result.FAILED and not superseded:
                # Rule 3: a slow device may miss alarm_after, but never quietly.
                assert self.kitchen.find(Kind.ALARM, outcome.burner), outcome
            if fault == "offline":
                assert outcome.result is Result.FAILED, outcome

    # -- commands -----------------------------------------------------------------------

    @rule(burner_names=names, source=sources)
    def shutoff(self, burner_names: list[str], source: str) -> None:
        started = self.kitchen.now()
        outcomes = self.run(self.kitchen.controller.shutoff(burner_names, source))
        for burner in self.ids(burner_names):
            self.countdown_due.pop(burner, None)
        self._check_outcomes(outcomes, started, want_cut=True)

    @rule(burner_names=names, source=sources, hazard=st.booleans())
    def lock(self, burner_names: list[str], source: str, hazard: bool) -> None:
        reason = "hazard" if hazard else "child"
        started = self.kitchen.now()
        outcomes = self.run(self.kitchen.controller.lock(burner_names, source, reason))
        for burner in self.ids(burner_names):
            self.countdown_due.pop(burner, None)
            self.lock_sources[burner] = source
            if self.locks.get(burner) != "hazard":
                self.locks[burner] = reason
        self._check_outcomes(outcomes, started, want_cut=True)

    @rule(burner_names=names, source=sources, pin=st.sampled_from([None, "0000", PIN]))
    def unlock(self, burner_names: list[str], source: str, pin: str | None) -> None:
        ids = self.ids(burner_names)
        expect_refusal = source in REMOTE and (
            not self.allow_relax or pin != PIN or any(self.locks.get(b) == "hazard" for b in ids)
        )
        started = self.kitchen.now()
        before = dict(self.locks)
        if not expect_refusal:
            for burner in ids:  # unlocked before the relays answer
                if source == "schedule" and (
                    self.lock_sources.get(burner) != "schedule"
                    or self.locks.get(burner) == "hazard"
                ):
                    continue  # a schedule clears only its own locks, never a hazard
                self.locks.pop(burner, None)
        try:
            outcomes = self.run(
                self.kitchen.controller.unlock(burner_names, source, pin=pin)
            )
        except CommandRefused:
            assert expect_refusal, f"unlock from {source} refused unexpectedly"
            self.locks = before
            return
        assert not expect_refusal, f"unlock from {source} with pin {pin!r} was obeyed"
        self._check_outcomes([o for o in outcomes if o.result is not Result.DONE],
                             started, want_cut=False)

    @rule(burner=st.sampled_from(BURNERS), seconds=st.floats(0.5, 60), source=sources,
          extend=st.booleans())
    def countdown(self, burner: str, seconds: float, source: str, extend: bool) -> None:
        now = self.kitchen.now()
        current = self.countdown_due.get(burner)
        controller = self.kitchen.controller

        async def call() -> None:
            controller.set_countdown([burner], seconds, source, extend=extend)

        uncertain = burner in self.unseen_cut
        try:
            self.run(call())
        except CommandRefused as refusal:
            later = current is not None and now + seconds > current
            assert uncertain or (extend and self.relaxing_refused(source)) or (
                later and not extend), refusal
            return
        assert not (extend and self.relaxing_refused(source)), "a remote extend was obeyed"
        remaining = self.kitchen.row(burner)["countdown"]["remaining"]
        if not uncertain:
            expected = current + seconds if extend and current is not None else now + seconds
            assert abs(now + remaining - expected) < 1e-6, (remaining, expected - now)
        self.countdown_due[burner] = now + remaining

    @rule(burner=st.sampled_from(BURNERS), source=sources)
    def cancel(self, burner: str, source: str) -> None:
        controller = self.kitchen.controller

        async def call() -> None:
            controller.cancel_countdown([burner], source)

        try:
            self.run(call())
        except CommandRefused:
            assert self.relaxing_refused(source)
            return
        assert not self.relaxing_refused(source), "a remote cancel was obeyed"
        self.countdown_due.pop(burner, None)

    # -- the world ----------------------------------------------------------------------

    @rule(device=st.sampled_from(sorted(DEVICE_OF.values())),
          fault=st.sampled_from(["none", "none", "offline", "stuck", "slow"]))
    def fault(self, device: str, fault: Any) -> None:
        self.faults[device] = fault
        if fault != "none":
            self.ever_faulty.add(device)
        self.kitchen.world.devices[device].set_fault(fault)

    @rule(burner=st.sampled_from(BURNERS), state=st.sampled_from(list(RelayState)))
    def switch_by_hand(self, burner: str, state: RelayState) -> None:
        spec = self.settings.burner(burner)
        was_cut = self.kitchen.is_cut(burner)
        self.kitchen.world.devices[spec.device].switch_by_hand(spec.channel, state)
        # An external cut ends the countdown (rule 7) once a poll sees it.
        if state is RelayState(spec.cut_state) and not was_cut:
            self.unseen_cut.add(burner)

    @rule(seconds=st.floats(0.05, 30))
    def elapse(self, seconds: float) -> None:
        self.run(self.kitchen.elapse(seconds))
        if seconds < 2.5:
            return
        # Long enough for tampering to be seen and undone on a healthy device.
        for burner in self.locks:
            if self.faults[DEVICE_OF[burner]] == "none":
                assert self.kitchen.is_cut(burner), f"locked {burner} is not cut"
                assert not self.kitchen.stove(burner).flame

    @rule()
    def restart(self) -> None:
        self.run(self.kitchen.restart())
        for burner in self.locks:
            if self.faults[DEVICE_OF[burner]] == "none":
                assert self.kitchen.is_cut(burner), f"locked {burner} not cut after restart"

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def locks_match_the_model(self) -> None:
        for burner in BURNERS:
            row = self.kitchen.row(burner)
            if burner in self.locks:
                assert row["mode"] == "locked", (burner, row)
                assert row["lock_reason"] == self.locks[burner], (burner, row)
            else:
                assert row["mode"] != "locked", (burner, row)

    @invariant()
    def no_problem_was_seen(self) -> None:
        assert not self.problems, self.problems


class RelaxedSafetyRules(SafetyRules):
    """Remote relaxing allowed with a PIN: still never for a hazard, never without the PIN."""

    allow_relax = True


MACHINE_SETTINGS = settings(
    # SAFETY_SOAK=N runs N examples instead, for a longer hunt outside CI.
    max_examples=int(os.environ.get("SAFETY_SOAK", "60")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SafetyRules.TestCase.settings = MACHINE_SETTINGS
RelaxedSafetyRules.TestCase.settings = MACHINE_SETTINGS
TestSafetyRules = SafetyRules.TestCase
TestRelaxedSafetyRules = RelaxedSafetyRules.TestCase
