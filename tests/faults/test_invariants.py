"""The invariants checker (tests.support.invariants) fails on each violation it claims to see.

The fault tests pass only if the checker can fail: here it is fed made-up
daemons and hobs, each breaking one rule, and must name that rule and the
burner. No sockets, no sleeps beyond one short settle window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from stovectl.devices.base import RelayState
from tests.support.invariants import SafetyInvariants, Switch, Wire

ON, OFF = RelayState.ON, RelayState.OFF  # NC wiring: on cuts
WIRING = {"left": Wire("relay", 1, ON, 2.0)}


def row(**changes: Any) -> dict[str, Any]:
    base = {"id": "left", "mode": "armed", "lock_reason": None, "relay": "armed",
            "pending": False, "alarm": False, "countdown": None, "last_error": None}
    return {**base, **changes}


def event(kind: str, result: str | None, at: float, **changes: Any) -> dict[str, Any]:
    return {"kind": kind, "burner": "left", "source": "cli", "time": at, "result": result,
            "latency_ms": 10.0, "message": f"{kind}", **changes}


@dataclass
class FakeDaemon:
    rows: list[dict[str, Any]] = field(default_factory=lambda: [row()])
    events: list[dict[str, Any]] = field(default_factory=list)
    locks: dict[str, str | None] | None = field(default_factory=dict)
    alive: bool = True

    def answers(self) -> bool:
        return self.alive

    def status(self) -> list[dict[str, Any]]:
        return self.rows

    def history(self, since: float | None) -> list[dict[str, Any]]:
        return [e for e in self.events if since is None or e["time"] >= since]

    def stored_locks(self) -> dict[str, str | None] | None:
        return self.locks


@dataclass
class FakeHob:
    state: RelayState = OFF
    log: list[Switch] = field(default_factory=lambda: [Switch(0.0, 0.0, OFF)])
    problems: list[str] = field(default_factory=list)

    def relay(self, burner: str) -> RelayState:
        return self.state

    def loop_closed(self, burner: str) -> bool:
        return self.state is OFF

    def switches(self, burner: str) -> list[Switch]:
        return self.log

    def wire_problems(self) -> list[str]:
        return self.problems


def checker() -> SafetyInvariants:
    return SafetyInvariants(WIRING, alarm_after=0.1)


def fails(invariants: SafetyInvariants, daemon: FakeDaemon, hob: FakeHob, rule: str) -> None:
    with pytest.raises(AssertionError, match=rule) as failure:
        invariants.check(daemon, hob, settle=0)
    assert "left" in str(failure.value) or "rule 1" in rule


def test_a_quiet_armed_hob_passes() -> None:
    """An armed burner whose relay reads armed, with no history, breaks nothing."""
    checker().check(FakeDaemon(), FakeHob(), settle=0)


def test_a_silent_daemon_breaks_rule_1() -> None:
    """A daemon that does not answer fails the check at once."""
    fails(checker(), FakeDaemon(alive=False), FakeHob(), "rule 1")


def test_a_locked_burner_whose_relay_is_armed_breaks_rule_6() -> None:
    """Mode locked, not pending, but the device reads armed: rule 6."""
    daemon = FakeDaemon(rows=[row(mode="locked", lock_reason="lock")], locks={"left": "lock"})
    fails(checker(), daemon, FakeHob(state=OFF), r"rule 6 \(a locked burner is cut\)")


def test_a_verified_cut_the_device_never_made_breaks_rule_2() -> None:
    """A shutoff recorded verified while the device's switch log never shows a cut: rule 2."""
    now = time.time()
    daemon = FakeDaemon(events=[event("shutoff", "verified", now)])
    fails(checker(), daemon, FakeHob(log=[Switch(0.0, now - 10, OFF)]), "rule 2")


def test_a_re_arm_sooner_than_cut_hold_breaks_rule_4() -> None:
    """A cut that lasted half of cut_hold, with no unlock recorded: rule 4."""
    log = [Switch(0.0, 100.0, OFF), Switch(1.0, 101.0, ON), Switch(2.0, 102.0, OFF)]
    fails(checker(), FakeDaemon(), FakeHob(log=log), "rule 4")


def test_a_lock_lost_without_an_unlock_breaks_rule_6() -> None:
    """A burner seen locked, later armed with no unlock in the history: rule 6."""
    invariants, hob = checker(), FakeHob(state=ON, log=[Switch(0.0, 0.0, ON)])
    daemon = FakeDaemon(rows=[row(mode="locked", lock_reason="lock")], locks={"left": "lock"})
    invariants.check(daemon, hob, settle=0)
    fails(invariants, FakeDaemon(), hob, r"rule 6 \(intent survives\)")


def test_a_store_that_disagrees_breaks_rule_6() -> None:
    """The store says locked, the daemon says armed: rule 6."""
    fails(checker(), FakeDaemon(locks={"left": "lock"}), FakeHob(), r"rule 6 \(intent is durable")


def test_a_countdown_moved_later_or_lost_breaks_rule_9() -> None:
    """A countdown now due later than acknowledged, or gone without a trace: rule 9."""
    invariants = checker()
    invariants.expect_countdown("left", time.monotonic() + 10)
    daemon = FakeDaemon(rows=[row(countdown={"remaining": 60.0, "due": 0, "source": "cli"})])
    fails(invariants, daemon, FakeHob(), "rule 9.*moved")
    invariants = checker()
    invariants.expect_countdown("left", time.monotonic() + 10)
    fails(invariants, FakeDaemon(), FakeHob(), "rule 9.*vanished")


@pytest.mark.parametrize("fired", [True, False])
def test_a_longer_countdown_is_allowed_only_once_the_earlier_one_fired(fired: bool) -> None:
    """Seen due in 1 s, then a 60 s one acknowledged: a new countdown if the first fired in
    between (the soak caught the checker calling that rule 9), otherwise one moved later."""
    invariants = checker()
    pending = FakeDaemon(rows=[row(countdown={"remaining": 1.0, "due": 0, "source": "cli"})])
    invariants.check(pending, FakeHob(), settle=0)
    invariants.expect_countdown("left", time.monotonic() + 60)
    later = FakeDaemon(
        rows=[row(countdown={"remaining": 60.0, "due": 0, "source": "cli"})],
        events=[event("countdown_fire", "done", time.time())] if fired else [],
    )
    if fired:
        invariants.check(later, FakeHob(), settle=0)
    else:
        fails(invariants, later, FakeHob(), "rule 9.*moved")


def test_pending_past_alarm_after_without_an_alarm_breaks_rule_3() -> None:
    """A burner pending beyond alarm_after with no alarm: rule 3."""
    daemon = FakeDaemon(rows=[row(pending=True)])
    with pytest.raises(AssertionError, match="rule 3"):
        checker().check(daemon, FakeHob(), settle=0.1 + 1.2)


def test_a_dropped_alarm_breaks_rule_3() -> None:
    """Fewer alarm events than at the previous check: rule 3."""
    invariants, daemon = checker(), FakeDaemon(events=[event("alarm", "failed", time.time())])
    invariants.check(daemon, FakeHob(), settle=0)
    fails(invariants, FakeDaemon(), FakeHob(), r"rule 3 \(no alarm dropped\)")


def test_a_remote_unlock_breaks_rule_5() -> None:
    """An unlock from MQTT that went through, with allow_relax off: rule 5."""
    daemon = FakeDaemon(events=[event("unlock", "done", time.time(), source="mqtt")])
    fails(checker(), daemon, FakeHob(), "rule 5")


def test_a_toggle_on_the_wire_breaks_rule_10() -> None:
    """Whatever the hob saw on the wire that must never be there: rule 10."""
    fails(checker(), FakeDaemon(), FakeHob(problems=["device relay: a toggle: left"]),
          "rule 10")


def test_a_relay_that_moved_by_itself_breaks_rule_7_unless_others_switch_it() -> None:
    """A tamper recorded where nobody else switches the relays: rule 7; with outsiders, fine."""
    tamper = event("tamper", "done", time.time(), source="external")
    fails(checker(), FakeDaemon(events=[tamper]), FakeHob(), "rule 7")
    SafetyInvariants(WIRING, alarm_after=0.1, outsiders=True).check(
        FakeDaemon(events=[tamper]), FakeHob(), settle=0)
