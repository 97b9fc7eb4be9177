"""Who may ask for what (DESIGN §2 rules 1, 5 and 8), as pure decisions.

Anything that makes the hob safer — cut, lock, starting or shortening a
countdown — is allowed from every source, always. Anything that relaxes it —
unlock, cancelling or extending a countdown — is refused from remote sources
unless the config allows it, then only with the PIN for an unlock, and never
when the command is stale. A hazard lock is cleared only locally.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from stovectl.errors import CommandRefused

REMOTE_SOURCES = frozenset({"mqtt", "voice", "external"})
HAZARD = "hazard"


class Relaxing(StrEnum):
    UNLOCK = "unlock"
    CANCEL = "cancel"
    EXTEND = "extend"


@dataclass(frozen=True)
class RemotePolicy:
    allow_relax: bool
    pin: str | None
    relax_ttl_seconds: float


def check_relaxing(
    action: Relaxing,
    source: str,
    policy: RemotePolicy,
    *,
    pin: str | None = None,
    issued_at: float | None = None,
    age_known: bool = True,
    now: float,
    lock_reason: str | None = None,
) -> None:
    """Raise CommandRefused unless ``source`` may relax the hob this way now.

    ``age_known`` is False for a remote command that carries no issue time and
    no message expiry: it may have waited a day in a broker's queue, so it is
    treated as stale.
    """
    if source not in REMOTE_SOURCES:
        return
    if action is Relaxing.UNLOCK and lock_reason == HAZARD:
        raise CommandRefused(
            "hazard_local_only", "a hazard lock can only be cleared by a local unlock"
        )
    if not policy.allow_relax:
        raise CommandRefused(
            "remote_relax_disabled",
            f"{action.value} from {source} is refused: remote sources may only make the "
            "hob safer (set [remote] allow_relax = true to allow it)",
        )
    if not age_known:
        raise CommandRefused(
            "stale",
            f"{action.value} from {source} is refused: it says nothing of when it was issued "
            f"(give \"ts\", or an MQTT message expiry), so it may be older than "
            f"{policy.relax_ttl_seconds:g}s",
        )
    if issued_at is not None and abs(now - issued_at) > policy.relax_ttl_seconds:
        when = (f"{now - issued_at:.0f}s ago" if issued_at <= now
                else f"{issued_at - now:.0f}s in the future (is a clock wrong?)")
        raise CommandRefused(
            "stale",
            f"{action.value} from {source} is refused: it was issued {when}, more than "
            f"{policy.relax_ttl_seconds:g}s from now",
        )
    if action is Relaxing.UNLOCK:
        if policy.pin is None:
            raise CommandRefused(
                "pin_not_configured", "a remote unlock needs a PIN, and none is configured"
            )
        if pin is None or not hmac.compare_digest(pin.encode(), policy.pin.encode()):
            raise CommandRefused("bad_pin", "a remote unlock needs the right PIN")
