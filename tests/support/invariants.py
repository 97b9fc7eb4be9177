"""DESIGN §2's safety rules as checks on what can be seen from outside, after any fault.

A fault test calls ``SafetyInvariants.check`` after every fault it injects. The
check reads the daemon (a ``DaemonView``: ``status`` and ``history`` as
``--json`` prints them, and the locks in its SQLite store) and the world (a
``Hob``: each relay as a multimeter reads it, each stove loop, every switch the
relays made, what went on the wire), lets pending burners settle for up to
``settle`` seconds, and fails naming the burner, the rule and what was seen. It
remembers what it saw before (locks, countdown due times, the alarms and other
events it has read), so a check after a restart also proves that intent
survived. Views of a daemon subprocess and of an in-process Kitchen are in
tests/faults/observers.py.

How each rule (R1..R10, DESIGN §2's numbers) maps to checks:

* R1 cutting always wins: the daemon answers at every check. That each cut is
  accepted is the fault tests' own assertion on their commands; that a cut never
  waits behind another device is timed in tests/daemon/test_miio_end_to_end.py.
* R2 nothing is done until it is seen: each event recorded ``verified`` (shutoff,
  lock, re-arm, unlock) had its relay in that state at the device at some moment
  between the command and the record, per the device's switch log.
* R3 bounded effort, loud failure: a burner pending past ``alarm_after`` shows an
  alarm and has an alarm event; a cut recorded failed for want of verification
  has its alarm beside it; a burner showing an alarm has an alarm event; an
  alarm once recorded stays in the history.
* R4 re-arm is gentle: no cut at a device ends sooner than ``cut_hold`` after it
  began unless an unlock explains it; a burner whose relay reads armed is in mode
  armed, or in a pulse whose cut already lasted ``cut_hold``.
* R5 remote may only make it safer: no unlock, and no countdown cancel, from a
  remote source (mqtt, voice, external) succeeded while ``allow_relax`` is off.
* R6 intent survives: a lock seen or acknowledged earlier still holds unless an
  unlock explains it; the store's locks are the daemon's; every locked burner's
  relay is cut at the device and its stove loop open (once settled).
* R7 others also switch the relay: a tampered lock must have been cut again, which
  R6's "locked means cut" covers once settled. In a test where nobody else
  switches the relays (``outsiders=False``, the default) a recorded tamper or
  external shutoff means a relay moved by itself: that fails too. Real outsiders
  are tests/daemon/test_miio_end_to_end.py's.
* R8 hazards latch: a hazard lock stays a hazard lock until an unlock is
  recorded. Hazard sensors themselves: tests/core/test_hazards.py.
* R9 deadlines are not the scheduler's to drop: every countdown seen or
  acknowledged is still pending with a due time (monotonic: now + remaining) no
  later than before, or it fired or was cancelled as the history says; none is
  still pending well past its due time; each one that fired has its shutoff.
  APScheduler's settings: tests/core/test_schedules.py.
* R10 only explicit states go on the wire: the Hob reports any toggle, retained
  command or switch write without an explicit true/false that reached a device.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from stovectl.devices.base import RelayState
from stovectl.settings import Settings

Event = Mapping[str, Any]
REMOTE_SOURCES = frozenset({"mqtt", "voice", "external"})
SETTLE_POLL_SECONDS = 0.05
SNAPSHOT_RACE_SECONDS = 1.0
"""A check reads status, then history: an event this much older may postdate the status."""
ALARM_MARGIN_SECONDS = 1.0
"""How long past ``alarm_after`` a pending burner may still be without its alarm."""
HISTORY_WINDOW_SECONDS = 600.0
"""How far back before the previous check each check reads the history."""


@dataclass(frozen=True)
class Wire:
    """How one burner is wired: its device channel, the state that cuts, its hold."""

    device: str
    channel: int
    cut_state: RelayState
    cut_hold: float


def wiring_of(settings: Settings) -> dict[str, Wire]:
    """Each burner's wiring, from the config the daemon runs on."""
    return {
        burner.id: Wire(burner.device, burner.channel, RelayState(burner.cut_state),
                        burner.cut_hold.total_seconds())
        for burner in settings.burners
    }


@dataclass(frozen=True)
class Switch:
    """A relay channel changing state at the device: when (both clocks) and to what."""

    mono: float
    wall: float
    state: RelayState


class Hob(Protocol):
    """The world as a multimeter and an eye see it."""

    def relay(self, burner: str) -> RelayState: ...

    def loop_closed(self, burner: str) -> bool: ...

    def switches(self, burner: str) -> list[Switch]:
        """Every change of the burner's relay channel; the first is its state at start."""

    def wire_problems(self) -> list[str]:
        """Anything that went on the wire that must never (a toggle, a retained command)."""


class DaemonView(Protocol):
    """The daemon as an operator sees it."""

    def answers(self) -> bool: ...

    def status(self) -> list[dict[str, Any]]: ...

    def history(self, since: float | None) -> list[dict[str, Any]]:
        """The events recorded at or after wall time ``since`` (all if None), oldest first."""

    def stored_locks(self) -> dict[str, str | None] | None:
        """Burners the store says are locked, with their reasons; None if it cannot tell."""


@dataclass
class Figures:
    """What the checks looked at, for a test's line of figures."""

    checks: int = 0
    verified_claims: int = 0
    locks_followed: int = 0
    countdowns_followed: int = 0


@dataclass
class _Snapshot:
    mono: float
    wall: float
    status: dict[str, dict[str, Any]]
    relays: dict[str, RelayState]
    loops: dict[str, bool]
    moving: set[str]


@dataclass
class _Seen:
    """One burner at one check: the daemon's row, the device, its events."""

    id: str
    wire: Wire
    row: Mapping[str, Any]
    relay: RelayState
    loop_closed: bool
    switches: Sequence[Switch]
    new: Sequence[Event]
    """Its events since the previous check."""
    all: Sequence[Event]
    pending_for: float | None
    """How long this check saw it pending, if it still is."""
    recent: Sequence[Event] = ()
    """Its events since the previous check's snapshot: the new ones, and those the previous
    check read in the history after its snapshot of the status was taken."""

    @property
    def cut(self) -> bool:
        return self.relay is self.wire.cut_state


@dataclass
class _Settling:
    """One check in progress: snapshots until nothing is pending or moving, or time is up."""

    daemon: DaemonView
    hob: Hob
    burners: Sequence[str]
    wait: float
    started: float = field(default_factory=time.monotonic)
    pending_since: dict[str, float] = field(default_factory=dict)
    snapshot: _Snapshot | None = None

    def step(self) -> bool:
        """Take a snapshot; True once it is settled or the wait is over."""
        hob = self.hob
        before = {b: hob.relay(b) for b in self.burners}
        mono, wall = time.monotonic(), time.time()
        status = {row["id"]: row for row in self.daemon.status()}
        relays = {b: hob.relay(b) for b in self.burners}
        loops = {b: hob.loop_closed(b) for b in self.burners}
        moving = {b for b in self.burners if before[b] is not relays[b]}
        self.snapshot = _Snapshot(mono, wall, status, relays, loops, moving)
        for burner, row in status.items():
            if row["pending"]:
                self.pending_since.setdefault(burner, mono)
            else:
                self.pending_since.pop(burner, None)
        # Settled: nothing moving, and every burner still pending has raised its alarm.
        settled = not moving and all(r["alarm"] for r in status.values() if r["pending"])
        return settled or mono - self.started >= self.wait


class SafetyInvariants:
    """Checks DESIGN §2 from outside; remembers locks, countdowns and alarms between checks."""

    def __init__(
        self,
        wiring: Mapping[str, Wire],
        *,
        alarm_after: float,
        allow_relax: bool = False,
        outsiders: bool = False,
        tolerance: float = 0.25,
        countdown_slack: float = 1.5,
    ) -> None:
        self.wiring = dict(wiring)
        self.alarm_after = alarm_after
        self.allow_relax = allow_relax
        self.outsiders = outsiders
        """Whether anyone but the daemon switches the relays in this test (Mi Home, buttons)."""
        self.tolerance = tolerance
        """Seconds of slack between two clocks read at slightly different moments."""
        self.countdown_slack = countdown_slack
        """How late (seconds) a running daemon may be to fire a countdown, polls included."""
        self.figures = Figures()
        self._events_seen: set[tuple[Any, ...]] = set()
        self._alarms_seen: dict[tuple[Any, ...], float] = {}
        self._last_check_wall: float | None = None
        self._locks: dict[str, str | None] = {}
        self._lifted: set[str] = set()
        self._countdowns: dict[str, float] = {}
        """Each pending countdown's due time (time.monotonic()), as last seen or acknowledged."""
        self._acknowledged: dict[str, float] = {}
        """Countdowns acknowledged since the last check."""
        self._switches_seen: dict[str, int] = {}

    @property
    def expected_locks(self) -> dict[str, str | None]:
        """The locks that must hold now (seen or acknowledged, not since lifted), by burner."""
        return {b: r for b, r in self._locks.items() if b not in self._lifted}

    def expect_locked(self, burner: str, reason: str | None = "lock") -> None:
        """A lock was acknowledged (or its intent made durable): it must hold from now on."""
        self._locks[burner] = reason
        self._lifted.discard(burner)

    def expect_unlocked(self, burner: str) -> None:
        """An unlock was asked for locally: the lock may go (history may lack it after a crash)."""
        self._lifted.add(burner)

    def expect_countdown(self, burner: str, monotonic_due: float) -> None:
        """A countdown was acknowledged, due at ``monotonic_due`` (time.monotonic())."""
        known = self._acknowledged.get(burner, monotonic_due)
        self._acknowledged[burner] = min(known, monotonic_due)

    def check(
        self, daemon: DaemonView, hob: Hob, *, settle: float | None = None, what: str = ""
    ) -> None:
        """Let pending burners settle (up to ``settle`` s), then assert every rule."""
        settling = self._begin(daemon, hob, settle, what)
        while not settling.step():
            time.sleep(SETTLE_POLL_SECONDS)  # polling the daemon's observable state
        self._judge(settling, what)

    async def check_async(
        self, daemon: DaemonView, hob: Hob, *, settle: float | None = None, what: str = ""
    ) -> None:
        """``check`` for a daemon in this process: it waits on the event loop."""
        settling = self._begin(daemon, hob, settle, what)
        while True:
            if settling.step():
                break
            await asyncio.sleep(SETTLE_POLL_SECONDS)  # polling: the state has no change signal
        self._judge(settling, what)

    def _begin(
        self, daemon: DaemonView, hob: Hob, settle: float | None, what: str
    ) -> _Settling:
        if not daemon.answers():
            raise AssertionError(f"rule 1 (cutting always wins): the daemon does not answer "
                                 f"({what or 'check'})")
        wait = self.alarm_after + ALARM_MARGIN_SECONDS if settle is None else settle
        return _Settling(daemon, hob, list(self.wiring), wait)

    def _judge(self, settling: _Settling, what: str) -> None:
        snapshot = settling.snapshot
        assert snapshot is not None
        since = None
        if self._last_check_wall is not None:
            since = min(self._last_check_wall, snapshot.wall) - HISTORY_WINDOW_SECONDS
        history = settling.daemon.history(since)
        new_events = [e for e in history if _identity(e) not in self._events_seen]
        problems: list[str] = self._alarms_kept(history, since)
        stored = settling.daemon.stored_locks()
        previous = self._last_check_wall
        for burner, wire in self.wiring.items():
            row = snapshot.status.get(burner)
            if row is None:
                problems.append(f"{burner}: missing from status")
                continue
            pending = settling.pending_since.get(burner)
            mine = [e for e in history if e.get("burner") == burner]
            new = [e for e in new_events if e.get("burner") == burner]
            seen = _Seen(
                burner, wire, row, snapshot.relays[burner], snapshot.loops[burner],
                settling.hob.switches(burner), new, mine,
                None if pending is None else snapshot.mono - pending,
                recent=new + [e for e in mine if previous is not None
                              and e["time"] >= previous - SNAPSHOT_RACE_SECONDS],
            )
            problems += self._loud_failure(seen)
            # A burner still pending is being driven (within alarm_after), or has declared
            # its failure with an alarm and retries: its relay is not judged.
            if seen.pending_for is None and burner not in snapshot.moving:
                problems += self._relay_follows_intent(seen)
            problems += self._rearms_gentle(seen)
            problems += self._locks_hold(seen, stored)
            problems += self._countdowns_keep(seen, snapshot)
            problems += self._verified_means_seen(seen)
            problems += self._remote_only_safer(seen)
            problems += self._nobody_else(seen)
        problems += [f"rule 10 (only explicit states on the wire): {p}"
                     for p in settling.hob.wire_problems()]
        self.figures.checks += 1
        self._events_seen = {_identity(e) for e in history}
        self._last_check_wall = snapshot.wall
        if problems:
            context = "\n".join(
                f"  {b}: mode {r['mode']} ({r['lock_reason']}), daemon sees relay {r['relay']}, "
                f"pending {r['pending']}, alarm {r['alarm']}, countdown {r['countdown']}; "
                f"device reads {snapshot.relays.get(b)}, loop closed {snapshot.loops.get(b)}"
                for b, r in snapshot.status.items())
            raise AssertionError(
                f"safety invariants broken ({what or 'check'}):\n- " + "\n- ".join(problems)
                + f"\nseen:\n{context}\nrecent events:\n"
                + "\n".join(f"  {_describe(e)}" for e in history[-12:]))

    # -- the rules ------------------------------------------------------------------------

    def _alarms_kept(self, history: Sequence[Event], since: float | None) -> list[str]:
        """Rule 3: an alarm, once recorded, stays in the history (none silently dropped)."""
        present = {_identity(e) for e in history}
        problems = [
            f"{key[2]}: rule 3 (no alarm dropped): the alarm recorded at {at:.2f} is gone "
            "from the history"
            for key, at in self._alarms_seen.items()
            if (since is None or at >= since) and key not in present
        ]
        self._alarms_seen = {_identity(e): e["time"] for e in history if e["kind"] == "alarm"}
        return problems

    def _loud_failure(self, b: _Seen) -> list[str]:
        """Rule 3."""
        problems = []
        alarms = [e for e in b.all if e["kind"] == "alarm"]
        overdue = b.pending_for is not None and (
            b.pending_for >= self.alarm_after + ALARM_MARGIN_SECONDS)
        if overdue and not (b.row["alarm"] and alarms):
            problems.append(
                f"{b.id}: rule 3 (loud failure): pending for over alarm_after "
                f"({self.alarm_after:g}s) without an alarm (alarm flag {b.row['alarm']}, "
                f"{len(alarms)} alarm events); last error {b.row.get('last_error')!r}")
        if b.row["alarm"] and not alarms:
            problems.append(f"{b.id}: rule 3 (loud failure): status shows an alarm that the "
                            "history does not hold")
        for event in b.new:
            unverified_cut = (event["kind"] in ("shutoff", "lock") and event["result"] == "failed"
                              and "not verified" in event["message"])
            if unverified_cut and not [
                a for a in alarms
                if event["time"] - 2 * self.alarm_after <= a["time"] <= event["time"] + 1
            ]:
                problems.append(f"{b.id}: rule 3 (loud failure): {_describe(event)} has no "
                                "alarm event beside it")
        return problems

    def _relay_follows_intent(self, b: _Seen) -> list[str]:
        """Rules 6 and 4, at this moment, for a burner that is not being driven."""
        problems = []
        mode, loop = b.row["mode"], "closed" if b.loop_closed else "open"
        if mode == "locked" and (not b.cut or b.loop_closed):
            problems.append(
                f"{b.id}: rule 6 (a locked burner is cut): mode locked ({b.row['lock_reason']}) "
                f"but the device reads {b.relay} and the stove loop is {loop}")
        if mode == "pulse" and not b.cut:
            last_cut = _last_cut_length(b.switches, b.wire.cut_state)
            if last_cut is None or last_cut < b.wire.cut_hold - self.tolerance:
                lasted = "no cut" if last_cut is None else f"a cut of {last_cut:.2f}s"
                problems.append(
                    f"{b.id}: rule 4 (re-arm after cut_hold): mode pulse, not pending, but the "
                    f"device reads armed ({b.relay}) after {lasted} "
                    f"(cut_hold {b.wire.cut_hold:g}s)")
        if b.cut is b.loop_closed:
            problems.append(f"{b.id}: the stove loop is {loop} while the relay reads "
                            f"{b.relay}: the simulated wiring is broken")
        return problems

    def _rearms_gentle(self, b: _Seen) -> list[str]:
        """Rule 4, over every cut the device made since the previous check."""
        problems = []
        for index in range(max(self._switches_seen.get(b.id, 0), 1), len(b.switches)):
            began, ended = b.switches[index - 1], b.switches[index]
            length = ended.mono - began.mono
            if (began.state is not b.wire.cut_state or ended.state is b.wire.cut_state
                    or length >= b.wire.cut_hold - self.tolerance):
                continue
            # An unlock ends a cut early on purpose; a cut made again after someone else
            # re-armed the relay mid-hold keeps the hold's first deadline (rule 7).
            unlocked = [e for e in b.all if e["kind"] == "unlock" and began.wall - self.tolerance
                        <= e["time"] <= ended.wall + 2 * self.alarm_after]
            recut = [e for e in b.all if e["kind"] == "tamper" and e["time"] - self.tolerance
                     <= began.wall <= e["time"] + 2 * self.alarm_after]
            if not unlocked and not recut and b.id not in self._lifted:
                problems.append(
                    f"{b.id}: rule 4 (re-arm after cut_hold): the device re-armed {length:.2f}s "
                    f"after it was cut (cut_hold {b.wire.cut_hold:g}s; cut at {began.wall:.2f}, "
                    f"armed at {ended.wall:.2f}), and no unlock explains it")
        self._switches_seen[b.id] = len(b.switches)
        return problems

    def _locks_hold(self, b: _Seen, stored: Mapping[str, str | None] | None) -> list[str]:
        """Rules 6 and 8."""
        problems = []
        locked, before = b.row["mode"] == "locked", self._locks.get(b.id, "")
        if b.id in self._locks and not locked and b.id not in self._lifted and not [
            e for e in b.recent if e["kind"] == "unlock"
        ]:
            problems.append(f"{b.id}: rule 6 (intent survives): it was locked ({before}), now "
                            f"mode {b.row['mode']} with no unlock recorded")
        if locked and before == "hazard" and b.row["lock_reason"] != "hazard":
            problems.append(f"{b.id}: rule 8 (hazards latch): the hazard lock became "
                            f"{b.row['lock_reason']!r}")
        if stored is not None and (b.id in stored) is not locked:
            problems.append(f"{b.id}: rule 6 (intent is durable): the store says "
                            f"{'locked' if b.id in stored else 'not locked'}, the daemon says "
                            f"mode {b.row['mode']}")
        if locked:
            self._locks[b.id] = b.row["lock_reason"]
            self.figures.locks_followed += 1
        else:
            self._locks.pop(b.id, None)
            self._lifted.discard(b.id)  # the unlock asked for is accounted for
        return problems

    def _countdowns_keep(self, b: _Seen, snapshot: _Snapshot) -> list[str]:
        """Rule 9."""
        problems = []
        known, countdown = self._countdowns.pop(b.id, None), b.row.get("countdown")
        if any(e["kind"] in ("countdown_fire", "countdown_cancel") for e in b.new):
            # The one known before ended since (as the history says): any pending now is a
            # newer one, asked for after it ended, and only its acknowledgement binds it.
            known = None
        acknowledged = self._acknowledged.pop(b.id, None)
        if acknowledged is not None:
            known = acknowledged if known is None else min(known, acknowledged)
        if countdown is not None:
            due = snapshot.mono + float(countdown["remaining"])
            if known is not None and due > known + self.tolerance:
                problems.append(f"{b.id}: rule 9 (deadlines keep): the countdown's due time "
                                f"moved {due - known:.2f}s later")
            if known is not None and snapshot.mono > known + self.countdown_slack:
                problems.append(f"{b.id}: rule 9 (deadlines keep): the countdown is still "
                                f"pending {snapshot.mono - known:.2f}s past its due time")
            self._countdowns[b.id] = due if known is None else min(known, due)
            self.figures.countdowns_followed += 1
        elif known is not None and not [
            e for e in b.recent if e["kind"] in ("countdown_fire", "countdown_cancel")
        ]:
            problems.append(f"{b.id}: rule 9 (deadlines keep): a countdown due in "
                            f"{known - snapshot.mono:.2f}s vanished without firing or "
                            "being cancelled")
        for fired in (e for e in b.new if e["kind"] == "countdown_fire"):
            # Its shutoff is recorded once verified, or failed at alarm_after.
            late = snapshot.wall - fired["time"] > self.alarm_after + ALARM_MARGIN_SECONDS
            if late and not [e for e in b.new if e["kind"] == "shutoff"
                             and e["time"] >= fired["time"] - self.tolerance]:
                problems.append(f"{b.id}: rule 9 (deadlines keep): {_describe(fired)} was "
                                "followed by no shutoff")
        return problems

    def _verified_means_seen(self, b: _Seen) -> list[str]:
        """Rule 2."""
        problems = []
        for event in b.new:
            if event["result"] != "verified" or event["kind"] not in (
                "shutoff", "lock", "rearm", "unlock"
            ):
                continue
            self.figures.verified_claims += 1
            cut_state = b.wire.cut_state
            wanted = cut_state if event["kind"] in ("shutoff", "lock") else cut_state.inverse()
            start = event["time"] - (event.get("latency_ms") or 0.0) / 1000 - self.tolerance
            end = event["time"] + self.tolerance
            if not _was_in(b.switches, wanted, start, end):
                problems.append(
                    f"{b.id}: rule 2 (nothing is done until it is seen): {_describe(event)}, "
                    f"but the device was never {wanted} between {start:.2f} and {end:.2f} "
                    f"(switches: {_describe_switches(b.switches[-6:])})")
        return problems

    def _nobody_else(self, b: _Seen) -> list[str]:
        """Rule 7, where nobody else switches the relays: any relay that moved on its own."""
        if self.outsiders:
            return []
        return [
            f"{b.id}: rule 7 (others also switch the relay): {_describe(event)}, but nobody "
            "else switches the relays here: the relay moved without the daemon's intent"
            for event in b.new
            if event["kind"] == "tamper" or (event["kind"] == "shutoff"
                                             and event["source"] == "external")
        ]

    def _remote_only_safer(self, b: _Seen) -> list[str]:
        """Rule 5."""
        if self.allow_relax:
            return []
        return [
            f"{b.id}: rule 5 (remote may only make it safer): {_describe(event)}"
            for event in b.new
            if event["source"] in REMOTE_SOURCES
            and event["result"] not in ("refused", "failed")
            and (event["kind"] == "unlock" or (event["kind"] == "countdown_cancel"
                                               and event["message"].endswith("cancelled")))
        ]


def _last_cut_length(switches: Sequence[Switch], cut_state: RelayState) -> float | None:
    """How long the last completed cut lasted at the device (the relay now reads armed)."""
    for index in range(len(switches) - 1, 0, -1):
        if switches[index].state is not cut_state and switches[index - 1].state is cut_state:
            return switches[index].mono - switches[index - 1].mono
    return None


def _was_in(switches: Sequence[Switch], state: RelayState, start: float, end: float) -> bool:
    """Whether the channel read ``state`` at some moment between ``start`` and ``end`` (wall).

    Each switch's state lasts until the next switch. Where the wall clock jumped back in
    between, that stretch is open-ended on both sides: across a jump the check errs
    towards passing rather than inventing a violation.
    """
    for index, switch in enumerate(switches):
        if switch.state is not state:
            continue
        following = switches[index + 1].wall if index + 1 < len(switches) else None
        if following is None or following < switch.wall:
            if switch.wall <= end or (following is not None and following >= start):
                return True
        elif switch.wall <= end and following >= start:
            return True
    return False


def _identity(event: Event) -> tuple[Any, ...]:
    """An event's identity: the history has no ids, but no two events share all of these."""
    return (event["time"], event["kind"], event.get("burner"), event["source"],
            event.get("result"), event["message"])


def _describe(event: Event) -> str:
    return (f"{event['kind']} of {event.get('burner')} by {event['source']} at "
            f"{event['time']:.2f}: {event['result']} ({event['message']})")


def _describe_switches(switches: Iterable[Switch]) -> str:
    return ", ".join(f"{s.state}@{s.wall:.2f}" for s in switches) or "none"
