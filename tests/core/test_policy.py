"""Who may relax the hob (DESIGN §2 rules 5 and 8), as pure decisions."""

from __future__ import annotations

import pytest

from stovectl.core.policy import HAZARD, REMOTE_SOURCES, Relaxing, RemotePolicy, check_relaxing
from stovectl.errors import CommandRefused

NOW = 1_700_000_000.0
LOCAL_SOURCES = ["cli", "schedule", "startup"]
STRICT = RemotePolicy(allow_relax=False, pin=None, relax_ttl_seconds=30.0)
RELAXED = RemotePolicy(allow_relax=True, pin="2468", relax_ttl_seconds=30.0)
RELAXED_NO_PIN = RemotePolicy(allow_relax=True, pin=None, relax_ttl_seconds=30.0)


def refusal_code(
    action: Relaxing,
    source: str,
    policy: RemotePolicy,
    *,
    pin: str | None = None,
    issued_at: float | None = None,
    lock_reason: str | None = None,
) -> str:
    """The code of the CommandRefused that the check must raise."""
    with pytest.raises(CommandRefused) as caught:
        check_relaxing(
            action, source, policy, pin=pin, issued_at=issued_at, now=NOW,
            lock_reason=lock_reason,
        )
    return caught.value.code


def test_remote_sources_are_mqtt_voice_and_external() -> None:
    """The remote sources are exactly those DESIGN §2 rule 5 names."""
    assert frozenset({"mqtt", "voice", "external"}) == REMOTE_SOURCES


@pytest.mark.parametrize("source", LOCAL_SOURCES)
@pytest.mark.parametrize("action", list(Relaxing))
def test_local_sources_may_always_relax(source: str, action: Relaxing) -> None:
    """A local unlock, cancel or extend is allowed without PIN, even stale or of a hazard lock."""
    check_relaxing(
        action, source, STRICT, issued_at=NOW - 3600, now=NOW, lock_reason=HAZARD
    )


@pytest.mark.parametrize("source", sorted(REMOTE_SOURCES))
@pytest.mark.parametrize("action", list(Relaxing))
def test_remote_relaxing_is_refused_unless_allowed(source: str, action: Relaxing) -> None:
    """Without allow_relax, every remote relaxing command is refused as remote_relax_disabled."""
    assert refusal_code(action, source, STRICT, pin="2468") == "remote_relax_disabled"


def test_refusal_message_says_how_to_allow_it() -> None:
    """The refusal names the action and source and points at [remote] allow_relax."""
    with pytest.raises(CommandRefused, match=r"cancel from voice .*allow_relax = true"):
        check_relaxing(Relaxing.CANCEL, "voice", STRICT, now=NOW)


@pytest.mark.parametrize("action", [Relaxing.CANCEL, Relaxing.EXTEND])
@pytest.mark.parametrize("source", sorted(REMOTE_SOURCES))
def test_allowed_cancel_and_extend_need_no_pin(action: Relaxing, source: str) -> None:
    """With allow_relax, a fresh remote cancel or extend is allowed without a PIN."""
    check_relaxing(action, source, RELAXED_NO_PIN, issued_at=NOW - 1, now=NOW)


@pytest.mark.parametrize("action", list(Relaxing))
def test_stale_relaxing_is_refused(action: Relaxing) -> None:
    """A remote relaxing command older than relax_ttl is refused as stale."""
    assert refusal_code(action, "mqtt", RELAXED, pin="2468", issued_at=NOW - 31) == "stale"


def test_command_exactly_relax_ttl_old_is_not_stale() -> None:
    """A command issued exactly relax_ttl ago is still fresh."""
    check_relaxing(Relaxing.EXTEND, "mqtt", RELAXED, issued_at=NOW - 30, now=NOW)


def test_staleness_uses_the_configured_ttl() -> None:
    """relax_ttl sets the age limit: 5 s old is stale under a 3 s TTL."""
    policy = RemotePolicy(allow_relax=True, pin=None, relax_ttl_seconds=3.0)
    assert refusal_code(Relaxing.CANCEL, "mqtt", policy, issued_at=NOW - 5) == "stale"


def test_remote_unlock_with_the_pin_is_allowed() -> None:
    """With allow_relax and the right PIN, a remote unlock is allowed."""
    check_relaxing(Relaxing.UNLOCK, "mqtt", RELAXED, pin="2468", issued_at=NOW, now=NOW)


@pytest.mark.parametrize("pin", [None, "", "1357", "24680", "246"])
def test_remote_unlock_with_a_wrong_pin_is_refused(pin: str | None) -> None:
    """A remote unlock without the PIN or with another one is refused as bad_pin."""
    assert refusal_code(Relaxing.UNLOCK, "voice", RELAXED, pin=pin) == "bad_pin"


def test_remote_unlock_without_configured_pin_is_refused() -> None:
    """With allow_relax but no PIN configured, a remote unlock is refused as pin_not_configured."""
    code = refusal_code(Relaxing.UNLOCK, "mqtt", RELAXED_NO_PIN, pin="2468")
    assert code == "pin_not_configured"


@pytest.mark.parametrize("policy", [STRICT, RELAXED])
def test_hazard_lock_is_cleared_only_locally(policy: RemotePolicy) -> None:
    """A remote unlock of a hazard lock is refused even when allowed and with the right PIN."""
    code = refusal_code(Relaxing.UNLOCK, "mqtt", policy, pin="2468", lock_reason=HAZARD)
    assert code == "hazard_local_only"


def test_other_lock_reasons_may_be_unlocked_remotely() -> None:
    """A lock for another reason is unlocked remotely when allowed, with the PIN."""
    check_relaxing(Relaxing.UNLOCK, "mqtt", RELAXED, pin="2468", now=NOW, lock_reason="manual")


@pytest.mark.parametrize("action", list(Relaxing))
def test_remote_relaxing_of_unknown_age_is_refused_as_stale(action: Relaxing) -> None:
    """A relaxing MQTT command with neither issue time nor message expiry counts as stale."""
    with pytest.raises(CommandRefused, match="says nothing of when it was issued") as caught:
        check_relaxing(action, "mqtt", RELAXED, pin="2468", age_known=False, now=NOW)
    assert caught.value.code == "stale"


def test_unknown_age_is_checked_after_relaxing_is_allowed_at_all() -> None:
    """With allow_relax off, an ageless command is refused for that, the more useful reason."""
    with pytest.raises(CommandRefused) as caught:
        check_relaxing(Relaxing.UNLOCK, "mqtt", STRICT, age_known=False, now=NOW)
    assert caught.value.code == "remote_relax_disabled"


def test_a_command_issued_in_the_future_beyond_the_ttl_is_stale() -> None:
    """An issue time far ahead of our clock is refused too, and the message suspects a clock."""
    with pytest.raises(CommandRefused, match="in the future") as caught:
        check_relaxing(Relaxing.CANCEL, "mqtt", RELAXED, issued_at=NOW + 120, now=NOW)
    assert caught.value.code == "stale"


def test_a_local_source_ignores_unknown_age() -> None:
    """The CLI's commands carry no age and need none."""
    check_relaxing(Relaxing.UNLOCK, "cli", STRICT, age_known=False, now=NOW)
