"""What a remote command on ``<base>/<burner>/set`` may do, judged from README's "Commands".

``Judge`` takes one delivered command, the hob before and after, and the reply,
and lists every broken promise: a bad payload changed something or got no clear
error, a valid cut was not obeyed and verified, a relaxing command got through
where rule 5 forbids it, a countdown moved later.

The parser (``parse_command``, specified in tests/mqtt/test_commands.py) says
what a payload asks for; everything after that (duplicates, unknown burners,
rule 5, what each command does to each burner) is written here afresh from
README and DESIGN, not from the controller's code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stovectl.mqtt.commands import MAX_PAYLOAD_BYTES, CommandRejected, RemoteCommand, parse_command
from tests.fuzz.hob import BURNERS, Snapshot, View
from tests.fuzz.mqtt_payloads import PIN, TTL_SECONDS

BOUNDARY_SECONDS = 1.0
"""A ``ts`` this close to the TTL's edge may be judged either way (processing takes time)."""

# What each refusal's message must mention, so the sender can tell what to fix.
NAMES_THE_PROBLEM: dict[str, tuple[str, ...]] = {
    "too_large": ("bytes",),
    "not_utf8": ("UTF-8",),
    "bad_json": ("JSON",),
    "bad_command": ("OFF", "unknown key", "object", "toggle", "unlock"),
    "bad_action": ('"action"',),
    "bad_seconds": ('"seconds"',),
    "bad_extend": ('"extend"',),
    "bad_reason": ('"reason"',),
    "bad_id": ('"id"',),
    "bad_pin": ('"pin"', "PIN"),
    "bad_ts": ('"ts"',),
    "duplicate": ("handled already",),
    "unknown_burner": ("left",),
    "remote_relax_disabled": ("allow_relax",),
    "hazard_local_only": ("hazard",),
    "stale": ("issued",),
    "would_extend": ("extend",),
    "retained": ("retained",),
}
MAX_MESSAGE_CHARS = MAX_PAYLOAD_BYTES + 300
"""Unknown keys are named in full, so a refusal can be nearly as long as the payload (a
known wart); longer would be a flood in the history."""


@dataclass(frozen=True)
class Policy:
    allow_relax: bool
    pin: str = PIN
    ttl_seconds: float = TTL_SECONDS


@dataclass
class Delivery:
    """One command as delivered, the hob around it, and what came back."""

    burner: str
    payload: bytes
    retain: bool
    expiry: int | None
    now: float
    before: Snapshot
    after: Snapshot
    reply: dict[str, Any]
    relay_cut: dict[str, bool]
    """Each burner's relay at the device right after the reply: cut or not."""
    fired: set[str]
    """Burners whose countdown reached zero during the exchange."""


@dataclass
class Verdict:
    label: str
    problems: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)


class Judge:
    """Judges deliveries in order, remembering the command ids seen (rule 10's duplicates).

    ``slack_seconds`` is how long after ``Delivery.now`` the daemon may have acted: nothing on
    virtual time, the trip through a broker on real time.
    """

    def __init__(self, policy: Policy, slack_seconds: float = 0.001) -> None:
        self.policy = policy
        self.slack = slack_seconds
        self.seen_ids: set[str] = set()

    def __call__(self, d: Delivery) -> Verdict:
        try:
            command = parse_command(d.burner, d.payload)
        except CommandRejected as rejected:
            return self._refused(d, "rejected", {rejected.code})
        if command.command_id is not None:
            if command.command_id in self.seen_ids:
                return self._refused(d, "duplicate", {"duplicate"})
            self.seen_ids.add(command.command_id)
        if d.burner != "all" and d.burner not in BURNERS:
            return self._refused(d, "unknown burner", {"unknown_burner"})
        targets = list(BURNERS) if d.burner == "all" else [d.burner]
        if command.action in ("off", "lock"):
            return self._cut(d, command, targets)
        if d.retain:  # it would come back at every reconnect: only cuts and locks may
            return self._refused(d, "retained", {"retained"})
        if command.action == "timer" and not command.extend:
            return self._countdown(d, command, targets)
        return self._relax(d, command, targets)

    # -- each kind of command ----------------------------------------------------------

    def _refused(self, d: Delivery, label: str, codes: set[str],
                 verdict: Verdict | None = None) -> Verdict:
        verdict = verdict or Verdict(f"refused: {label}")
        problems = verdict.problems
        reply = d.reply
        if reply.get("ok") is not False:
            problems.append(f"expected a refusal ({', '.join(sorted(codes))}), got {reply}")
            return verdict
        problems.extend(error_problems(reply))
        code = reply.get("error", {}).get("code")
        if code not in codes:
            problems.append(f"refused as {code!r}, expected one of {sorted(codes)}")
        verdict.label = f"refused {code}"
        for burner in BURNERS:
            if d.after[burner] != d.before[burner] and burner not in d.fired:
                problems.append(f"{burner} changed on a refusal: {d.before[burner]} -> "
                                f"{d.after[burner]}")
        return verdict

    def _cut(self, d: Delivery, command: RemoteCommand, targets: list[str]) -> Verdict:
        verdict = Verdict(f"obeyed {command.action}")
        problems = verdict.problems
        outcomes = d.reply.get("outcomes") or []
        if d.reply.get("ok") is not True:
            problems.append(f"a valid {command.action} was not obeyed (rule 1): {d.reply}")
        if sorted(str(o.get("burner")) for o in outcomes) != sorted(targets):
            problems.append(f"outcomes {outcomes} do not cover {targets}")
        for outcome in outcomes:
            if outcome.get("result") != "verified":
                problems.append(f"a cut on a healthy relay was not verified: {outcome}")
        for burner in targets:
            before, after = d.before[burner], d.after[burner]
            if not d.relay_cut[burner]:
                problems.append(f"{burner} reported cut but its relay is not (rule 2)")
            if after.due is not None:
                problems.append(f"{burner} kept its countdown through a cut")
            if command.action == "lock":
                reason = "hazard" if before.reason == "hazard" else (command.reason or "remote")
                wanted = View("locked", reason, None)
            elif before.mode == "locked":
                wanted = View("locked", before.reason, None)
            else:
                wanted = View("pulse", None, None)
            if after != wanted:
                problems.append(f"{burner} after {command.action}: {after}, expected {wanted}")
        self._others_unchanged(d, targets, problems)
        return verdict

    def _countdown(self, d: Delivery, command: RemoteCommand, targets: list[str]) -> Verdict:
        """Start or shorten: each burner in turn, until one would be extended."""
        assert command.seconds is not None
        verdict = Verdict("obeyed timer")
        earliest = d.now + command.seconds
        refused_at = None
        for burner in targets:
            current = d.before[burner].due
            # At the edge (within the slack) either is right, as the daemon saw it.
            if current is not None and earliest + self.slack > current + 0.001 and (
                earliest > current + 0.001 or d.reply.get("ok") is False
            ):
                refused_at = burner
                break
        if refused_at is not None:  # all or nothing: no burner's countdown started
            return self._refused(d, "would extend", {"would_extend"}, verdict)
        if d.reply.get("ok") is not True:
            verdict.problems.append(f"starting or shortening a countdown was refused: {d.reply}")
        for burner in targets:
            after = d.after[burner]
            if burner in d.fired:
                continue  # due at once: it has already fired
            if after.due is None or not earliest - 1e-3 <= after.due <= earliest + self.slack:
                verdict.problems.append(f"{burner} countdown due {after.due}, expected "
                                        f"{earliest} (+{self.slack:g}s)")
            if (after.mode, after.reason) != (d.before[burner].mode, d.before[burner].reason):
                verdict.problems.append(f"{burner} changed mode on a timer: {after}")
        self._others_unchanged(d, targets, verdict.problems)
        return verdict

    def _relax(self, d: Delivery, command: RemoteCommand, targets: list[str]) -> Verdict:
        action = "extend" if command.action == "timer" else command.action
        reasons, at_edge = self._refusal_reasons(d, command, targets)
        if at_edge and d.reply.get("ok") is False:  # the daemon may have seen it stale
            return self._refused(d, f"{action} at the TTL's edge", reasons | {"stale"})
        if reasons:
            return self._refused(d, f"relaxing {action}", reasons)
        verdict = Verdict(f"obeyed {action}")
        if d.reply.get("ok") is not True:
            verdict.problems.append(f"a permitted {action} was refused: {d.reply}")
            return verdict
        self._relaxed(d, command, targets, verdict)
        return verdict

    def _refusal_reasons(
        self, d: Delivery, command: RemoteCommand, targets: list[str]
    ) -> tuple[set[str], bool]:
        """Why rule 5 refuses this relaxing command (empty: it may pass), and whether its
        ``ts`` is so near the TTL's edge that it may also be refused as stale."""
        reasons: set[str] = set()
        at_edge = False
        if command.action == "unlock" and any(d.before[b].reason == "hazard" for b in targets):
            reasons.add("hazard_local_only")
        if not self.policy.allow_relax:
            return reasons | {"remote_relax_disabled"}, False
        if command.issued_at is None and d.expiry is None:
            reasons.add("stale")
        if command.issued_at is not None:
            off_by = abs(d.now - command.issued_at)
            at_edge = abs(off_by - self.policy.ttl_seconds) < BOUNDARY_SECONDS
            if off_by > self.policy.ttl_seconds and not at_edge:
                reasons.add("stale")
        if command.action == "unlock" and command.pin != self.policy.pin:
            reasons.add("bad_pin")
        return reasons, at_edge

    def _relaxed(self, d: Delivery, command: RemoteCommand, targets: list[str],
                 verdict: Verdict) -> None:
        """What an obeyed unlock, cancel or extension must have done."""
        for burner in targets:
            before, after = d.before[burner], d.after[burner]
            if command.action == "unlock":
                wanted = View("armed", None, before.due) if before.mode == "locked" else before
                if before.mode == "locked" and d.relay_cut[burner]:
                    verdict.problems.append(f"{burner} unlocked but its relay is still cut")
            elif command.action == "cancel":
                wanted = View(before.mode, before.reason, None)
            else:
                assert command.seconds is not None
                base = before.due if before.due is not None else d.now
                wanted = View(before.mode, before.reason, base + command.seconds)
            if not _same(after, wanted, self.slack):
                verdict.problems.append(f"{burner} after {command.action}: {after}, expected "
                                        f"{wanted}")
        self._others_unchanged(d, targets, verdict.problems)

    @staticmethod
    def _others_unchanged(d: Delivery, targets: list[str], problems: list[str]) -> None:
        for burner in BURNERS:
            if burner not in targets and d.after[burner] != d.before[burner]:
                problems.append(f"{burner} was not addressed but changed: {d.before[burner]} -> "
                                f"{d.after[burner]}")


def _same(actual: View, wanted: View, slack: float) -> bool:
    """Equal, but for a due time up to ``slack`` later than wanted."""
    if (actual.mode, actual.reason) != (wanted.mode, wanted.reason):
        return False
    if actual.due is None or wanted.due is None:
        return actual.due is wanted.due
    return wanted.due - 1e-3 <= actual.due <= wanted.due + slack


def error_problems(reply: dict[str, Any]) -> list[str]:
    """What is unclear about an error reply: no code, no message, or a message that does not
    name the problem, floods, or repeats the PIN."""
    error = reply.get("error")
    if not isinstance(error, dict):
        return [f"a refusal without an error object: {reply}"]
    code, message = error.get("code"), error.get("message")
    problems = []
    if not isinstance(code, str) or not code:
        problems.append(f"a refusal without a code: {reply}")
    if not isinstance(message, str) or not message.strip():
        return [*problems, f"a refusal without a message: {reply}"]
    if len(message) > MAX_MESSAGE_CHARS:
        problems.append(f"a refusal message of {len(message)} characters: {message[:80]}...")
    hints = NAMES_THE_PROBLEM.get(code or "")
    if hints is None:
        problems.append(f"an unexpected refusal code {code!r}: {message}")
    elif not any(hint.lower() in message.lower() for hint in hints):
        problems.append(f"{code} message names none of {hints}: {message!r}")
    if PIN in message:
        problems.append(f"a refusal repeats the PIN: {message!r}")
    return problems
