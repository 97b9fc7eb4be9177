"""Events: the record of everything that happened to a burner, and who hears of it.

The controller emits one Event per thing that happened (a cut, a re-arm, a
lock, a countdown fired, an alarm, a refusal). Subscribers — the store's
history, the log, later MQTT and the speaker — each get every event, on the
event loop, in order. A subscriber that raises is logged and never stops the
others, nor the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class Kind(StrEnum):
    SHUTOFF = "shutoff"
    REARM = "rearm"
    LOCK = "lock"
    UNLOCK = "unlock"
    COUNTDOWN_SET = "countdown_set"
    COUNTDOWN_CANCEL = "countdown_cancel"
    COUNTDOWN_FIRE = "countdown_fire"
    ALARM = "alarm"
    RECOVERED = "recovered"
    TAMPER = "tamper"
    REFUSED = "refused"
    DEVICE_ONLINE = "device_online"
    DEVICE_OFFLINE = "device_offline"
    STARTUP = "startup"
    WARNING = "warning"
    """A failsafe will act soon (max-on, unattended), or lost a sensor."""
    HAZARD = "hazard"
    """Gas or smoke detected, cleared, or its sensor lost."""
    FLAME_ON = "flame_on"
    FLAME_OFF = "flame_off"
    FLAME_OUT = "flame_out"
    """A cut confirmed by the flame sensor: the flame went out."""
    SERVICE_FAILED = "service_failed"
    """systemd gave up on the service: nothing guards the burners until it runs again."""


class Result(StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    """Acknowledged by a device that cannot report its state (``verify = false``)."""
    FAILED = "failed"
    REFUSED = "refused"
    DONE = "done"
    """Nothing had to reach a device (a countdown set, an unlock of an unlocked burner)."""


ALARM_CUT = "cut"
ALARM_REARM = "rearm"
"""An alarm's reason: which of the two could not be verified."""
ALARM_FLAME = "flame"
"""An alarm's reason: the relay reads cut, but the flame sensor still sees a flame."""


@dataclass(frozen=True)
class Event:
    kind: Kind
    source: str
    time: float
    """Wall-clock seconds since the epoch."""
    burner: str | None = None
    device: str | None = None
    actor: str | None = None
    reason: str | None = None
    result: Result | None = None
    latency_ms: float | None = None
    message: str = ""

    @property
    def is_verified(self) -> bool:
        return self.result is Result.VERIFIED

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verified"] = self.is_verified
        return data


Subscriber = Callable[[Event], None]


class EventBus:
    """Hands each event to every subscriber, isolating their failures."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def emit(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", subscriber, event.kind)


@dataclass(frozen=True)
class Outcome:
    """How one command ended for one burner; what the CLI's exit code is made of."""

    burner: str
    result: Result
    message: str = ""
    latency_ms: float | None = None
    device: str | None = None

    @property
    def is_success(self) -> bool:
        return self.result in (Result.VERIFIED, Result.DONE)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
