"""What stovectl publishes: burner and sensor state, events and command replies, as JSON bytes.

Home Assistant templates, scripts and people read these, so they are built in
one place, deterministically (the time zone is a parameter), as compact UTF-8
standard JSON: every timestamp is ISO 8601 with its UTC offset, since Home
Assistant refuses a timestamp without one, and no NaN or Infinity ever goes out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from stovectl.core.burner import Mode
from stovectl.core.events import Event, Outcome
from stovectl.core.failsafes import MAX_ON, MAX_ON_WARNING, UNATTENDED, UNATTENDED_WARNING
from stovectl.core.hazards import HAZARD
from stovectl.settings.sensors import HAZARD_KINDS


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 standard JSON; a NaN or infinity is a bug here, so it raises."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def iso_time(seconds: float, tz: tzinfo | None = None) -> str:
    """Epoch seconds as ISO 8601 with an offset, in ``tz`` (default: the host's zone)."""
    moment = datetime.fromtimestamp(seconds, UTC).astimezone(tz)
    return moment.isoformat(timespec="seconds")


def state_payload(
    row: Mapping[str, Any], last_shutoff: Event | None, tz: tzinfo | None = None
) -> bytes:
    """The retained ``<base>/<burner>/state`` message for one row of the controller's status."""
    countdown = row.get("countdown")
    failsafe = row.get("failsafe") or {}
    due = remaining = source = None
    if countdown is not None:
        due = _iso_or_none(countdown["due"], tz)
        left = _finite(countdown["remaining"])
        # Rounded up: a countdown still running never shows 0 seconds left.
        remaining = None if left is None else max(0, math.ceil(left))
        source = countdown["source"]
    state: dict[str, Any] = {
        "burner": row["id"],
        "name": row["name"],
        "relay": row["relay"],
        "mode": row["mode"],
        "locked": row["mode"] == Mode.LOCKED.value,
        "lock_reason": row["lock_reason"],
        "countdown_due": due,
        "countdown_remaining": remaining,
        "countdown_source": source,
        # When the failsafes act: a max-on shutoff and its warning; the unattended
        # warning, then (only once it has gone out) the unattended shutoff.
        "max_on_due": _iso_or_none(failsafe.get(MAX_ON), tz),
        "max_on_warning_due": _iso_or_none(failsafe.get(MAX_ON_WARNING), tz),
        "unattended_warning_due": _iso_or_none(failsafe.get(UNATTENDED_WARNING), tz),
        "unattended_due": _iso_or_none(failsafe.get(UNATTENDED), tz),
        "flame": _flag(row.get("flame")),
        "flame_sensor": row.get("flame_sensor"),
        "device": row["device"],
        "device_online": row["device_online"],
        "alarm": bool(row["alarm"]),
        "pending": bool(row["pending"]),
        "last_shutoff": None,
        "last_shutoff_source": None,
        "last_shutoff_result": None,
    }
    if last_shutoff is not None:
        state["last_shutoff"] = iso_time(last_shutoff.time, tz)
        state["last_shutoff_source"] = last_shutoff.source
        state["last_shutoff_result"] = _text(last_shutoff.result)
    return encode_json(state)


def sensor_payload(row: Mapping[str, Any], tz: tzinfo | None = None) -> bytes:
    """The retained ``<base>/sensors/<id>/state`` message for one row of the sensor board.

    ``value`` is null while the sensor is offline or not yet heard from: unknown is
    never "no". ``available`` is null until the sensor has said anything at all.
    """
    return encode_json({
        "sensor": row["id"],
        "name": row["name"],
        "kind": row["kind"],
        "burner": row.get("burner"),
        "value": _flag(row.get("value")),
        "available": _flag(row.get("available")),
        "changed": _iso_or_none(row.get("changed"), tz),
    })


def hazard_payload(
    burner_rows: Sequence[Mapping[str, Any]], sensor_rows: Sequence[Mapping[str, Any]]
) -> bytes:
    """The retained ``<base>/hazard`` message: is the hazard latch holding, and why.

    ``locked`` stays true after the gas or smoke clears, until a local unlock
    (DESIGN §2 rule 8); ``detecting`` and ``offline`` name gas and smoke sensors.
    """
    hazards = [row for row in sensor_rows if row["kind"] in HAZARD_KINDS]
    locked = [
        row["id"] for row in burner_rows
        if row["mode"] == Mode.LOCKED.value and row.get("lock_reason") == HAZARD
    ]
    return encode_json({
        "locked": bool(locked),
        "locked_burners": locked,
        "detecting": [row["id"] for row in hazards if row.get("value") is True],
        "offline": [row["id"] for row in hazards if row.get("available") is False],
    })


def event_payload(event: Event, tz: tzinfo | None = None) -> bytes:
    """One message for ``<base>/events``: the event's fields plus its time in ISO 8601."""
    data = _plain(event.as_dict())
    data["time_iso"] = iso_time(event.time, tz)
    return encode_json(data)


def reply_ok(command_id: str | None, outcomes: Sequence[Outcome]) -> bytes:
    """The reply to a command that ran; ``ok`` only if every burner's outcome succeeded."""
    return encode_json({
        "id": command_id,
        "ok": bool(outcomes) and all(outcome.is_success for outcome in outcomes),
        "outcomes": [_plain(outcome.as_dict()) for outcome in outcomes],
    })


def reply_error(command_id: str | None, code: str, message: str) -> bytes:
    """The reply to a command that was rejected or refused before it ran."""
    return encode_json({"id": command_id, "ok": False, "error": {"code": code, "message": message}})


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Enum members as their values, non-finite floats as null."""
    plain: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, float):
            plain[key] = _finite(value)
        elif isinstance(value, str):
            plain[key] = str(value)
        else:
            plain[key] = value
    return plain


def _flag(value: object) -> bool | None:
    return None if value is None else bool(value)


def _iso_or_none(seconds: object, tz: tzinfo | None) -> str | None:
    finite = _finite(seconds)
    return None if finite is None else iso_time(finite, tz)


def _text(value: str | None) -> str | None:
    return None if value is None else str(value)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
