"""What goes on the wire: burner state, events and replies as compact, standard, zoned JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stovectl.core.events import Event, Kind, Outcome, Result
from stovectl.mqtt.payloads import (
    event_payload,
    hazard_payload,
    iso_time,
    reply_error,
    reply_ok,
    sensor_payload,
    state_payload,
)
from tests.support.kitchen import Kitchen, kitchen_config

BEIJING = timezone(timedelta(hours=8))
NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
STATE_KEYS = {
    "burner", "name", "relay", "mode", "locked", "lock_reason", "countdown_due",
    "countdown_remaining", "countdown_source", "max_on_due", "max_on_warning_due",
    "unattended_warning_due", "unattended_due", "flame", "flame_sensor", "device",
    "device_online", "alarm", "pending", "last_shutoff", "last_shutoff_source",
    "last_shutoff_result",
}
SENSOR_KEYS = {"sensor", "name", "kind", "burner", "value", "available", "changed"}
NO_FAILSAFE = {"max_on": None, "max_on_warning": None, "unattended": None,
               "unattended_warning": None}


def status_row(**changes: Any) -> dict[str, Any]:
    """A controller status row for an armed burner, with ``changes`` applied."""
    row: dict[str, Any] = {
        "id": "left", "name": "左灶", "device": "sim", "channel": 1, "mode": "armed",
        "lock_reason": None, "since": NOW - 60, "source": "startup", "relay": "armed",
        "relay_state": "off", "pending": False, "alarm": False, "last_error": None,
        "device_online": True, "countdown": None, "rearm_in": None, "flame": None,
        "flame_sensor": None, "failsafe": dict(NO_FAILSAFE),
    }
    row.update(changes)
    return row


def sensor_row(**changes: Any) -> dict[str, Any]:
    """A sensor board status row for a gas detector that reads clear, with ``changes``."""
    row: dict[str, Any] = {
        "id": "hall_gas", "name": "Hall gas", "kind": "gas", "burner": None, "source": "mqtt",
        "reading": False, "available": True, "value": False, "changed": NOW - 30,
    }
    row.update(changes)
    return row


def shutoff_event(**changes: Any) -> Event:
    fields: dict[str, Any] = {
        "kind": Kind.SHUTOFF, "source": "timer", "time": NOW - 3600, "burner": "left",
        "device": "sim", "result": Result.VERIFIED, "latency_ms": 12.5,
    }
    fields.update(changes)
    return Event(**fields)


def decoded(payload: bytes) -> Any:
    """Decode strictly: standard JSON only (no NaN or Infinity)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a payload")

    return json.loads(payload.decode("utf-8"), parse_constant=refuse)


def test_an_armed_burner_has_every_state_key() -> None:
    """The state of an idle armed burner has exactly the documented keys, nulls where unknown."""
    state = decoded(state_payload(status_row(), None, BEIJING))

    assert set(state) == STATE_KEYS
    assert state["burner"] == "left" and state["name"] == "左灶"
    assert state["relay"] == "armed" and state["mode"] == "armed"
    assert state["locked"] is False and state["lock_reason"] is None
    assert state["countdown_due"] is None and state["countdown_remaining"] is None
    assert state["flame"] is None and state["flame_sensor"] is None
    assert state["max_on_due"] is None and state["unattended_due"] is None
    assert state["device_online"] is True and state["alarm"] is False
    assert state["last_shutoff"] is None and state["last_shutoff_result"] is None


def test_a_countdown_shows_its_zoned_deadline_and_whole_seconds_left() -> None:
    """A running countdown gives its due time with the offset, and seconds left rounded up."""
    countdown = {"due": NOW + 599.2, "remaining": 599.2, "source": "mqtt"}
    state = decoded(state_payload(status_row(countdown=countdown), None, BEIJING))

    assert state["countdown_due"] == "2025-06-15T23:16:39+08:00"
    assert state["countdown_remaining"] == 600
    assert state["countdown_source"] == "mqtt"


@pytest.mark.parametrize("flame", [True, False, None])
def test_the_flame_is_its_sensors_word_or_null(flame: bool | None) -> None:
    """With a flame sensor, flame is true, false, or null while the sensor is unknown."""
    state = decoded(state_payload(
        status_row(flame=flame, flame_sensor="left_flame"), None, BEIJING))

    assert state["flame"] is flame
    assert state["flame_sensor"] == "left_flame"


def test_failsafe_deadlines_are_zoned_times() -> None:
    """Each pending failsafe deadline is ISO 8601 with the offset; those not running are null."""
    failsafe = {**NO_FAILSAFE, "max_on": NOW + 3600, "max_on_warning": NOW + 3300,
                "unattended_warning": NOW + 900}
    state = decoded(state_payload(status_row(failsafe=failsafe), None, BEIJING))

    assert state["max_on_due"] == "2025-06-16T00:06:40+08:00"
    assert state["max_on_warning_due"] == "2025-06-16T00:01:40+08:00"
    assert state["unattended_warning_due"] == "2025-06-15T23:21:40+08:00"
    assert state["unattended_due"] is None


def test_a_row_without_failsafe_or_flame_fields_still_gives_every_key() -> None:
    """A row from before flame sensing (no flame, failsafe keys) gives nulls, not an error."""
    row = status_row()
    for key in ("flame", "flame_sensor", "failsafe"):
        del row[key]

    state = decoded(state_payload(row, None, BEIJING))

    assert set(state) == STATE_KEYS
    assert state["flame"] is None and state["max_on_due"] is None


def test_a_lock_and_the_last_shutoff_are_shown() -> None:
    """A locked burner says so with its reason; the last shutoff has its time, source and result."""
    row = status_row(mode="locked", lock_reason="away", relay="cut", alarm=True, pending=True)
    state = decoded(state_payload(row, shutoff_event(), BEIJING))

    assert state["locked"] is True and state["lock_reason"] == "away"
    assert state["alarm"] is True and state["pending"] is True
    assert state["last_shutoff"] == "2025-06-15T22:06:40+08:00"
    assert state["last_shutoff_source"] == "timer"
    assert state["last_shutoff_result"] == "verified"


def test_state_is_deterministic_compact_and_unescaped() -> None:
    """The same row gives the same bytes: compact separators, Chinese as UTF-8, no escapes."""
    row = status_row(countdown={"due": NOW + 10, "remaining": 10.0, "source": "cli"})
    first = state_payload(row, shutoff_event(), BEIJING)

    assert first == state_payload(row, shutoff_event(), BEIJING)
    assert "左灶".encode() in first
    assert b"\\u" not in first and b": " not in first and b", " not in first


def test_the_time_zone_changes_the_offset_not_the_instant() -> None:
    """Two zones give two spellings of the same instant."""
    utc = iso_time(NOW, UTC)
    beijing = iso_time(NOW, BEIJING)

    assert utc == "2025-06-15T15:06:40+00:00"
    assert beijing == "2025-06-15T23:06:40+08:00"
    assert datetime.fromisoformat(utc) == datetime.fromisoformat(beijing)


def test_without_a_zone_the_host_zone_still_carries_an_offset() -> None:
    """With no zone given, timestamps use the host's zone and still carry an offset."""
    assert datetime.fromisoformat(iso_time(NOW)).utcoffset() is not None


def test_a_countdown_that_is_not_finite_becomes_null() -> None:
    """A non-finite remaining time or deadline is published as null, never as NaN."""
    countdown = {"due": float("inf"), "remaining": float("nan"), "source": "cli"}
    state = decoded(state_payload(status_row(countdown=countdown), None, BEIJING))

    assert state["countdown_due"] is None and state["countdown_remaining"] is None


@given(
    st.floats(0, 4e9),
    st.floats(-1e4, 1e6, allow_nan=False),
    st.integers(-14 * 60, 14 * 60),
)
def test_any_countdown_gives_standard_json_with_offsets(
    due: float, remaining: float, offset_minutes: int
) -> None:
    """Any deadline and zone give standard JSON, the deadline with an offset, seconds >= 0."""
    tz = timezone(timedelta(minutes=offset_minutes))
    countdown = {"due": due, "remaining": remaining, "source": "timer"}
    state = decoded(state_payload(status_row(countdown=countdown), shutoff_event(), tz))

    assert datetime.fromisoformat(state["countdown_due"]).utcoffset() == tz.utcoffset(None)
    assert datetime.fromisoformat(state["last_shutoff"]).tzinfo is not None
    assert isinstance(state["countdown_remaining"], int) and state["countdown_remaining"] >= 0


def test_a_lit_burner_from_the_controller_shows_its_flame_and_max_on(kitchen_run: Any) -> None:
    """A flame sensor's reading and the max-on deadline it starts reach the state JSON."""

    async def scenario(k: Kitchen) -> dict[str, Any]:
        k.controller.sensors.sensor_reading("left_flame", True)
        [row] = [row for row in k.controller.status() if row["id"] == "left"]
        return {"state": decoded(state_payload(row, None, BEIJING)), "now": k.controller.now()}

    result = kitchen_run(scenario, kitchen_config(
        mqtt={}, failsafe={"max_on": "1h", "warn_before": "5m"},
        sensors=[{"id": "left_flame", "kind": "flame", "burner": "left", "source": "mqtt",
                  "topic": "test/left_flame"}],
    ))
    state, now = result["state"], result["now"]

    assert state["flame"] is True and state["flame_sensor"] == "left_flame"
    due = datetime.fromisoformat(state["max_on_due"]).timestamp()
    warning = datetime.fromisoformat(state["max_on_warning_due"]).timestamp()
    # Published to the second, so up to a second before the exact deadline.
    assert due - now == pytest.approx(3600, abs=1)
    assert warning - now == pytest.approx(3300, abs=1)
    assert state["unattended_due"] is None


def test_real_controller_rows_become_state(kitchen_run: Any) -> None:
    """Rows from the controller's own status(), with a countdown and a lock, become full state."""

    async def scenario(k: Kitchen) -> tuple[dict[str, Any], dict[str, Any]]:
        k.controller.set_countdown(["left"], 600, "mqtt")
        await k.controller.lock(["right"], "cli", "away")
        await k.controller.shutoff(["left"], "cli")
        [shutoff] = k.find(Kind.SHUTOFF, "left")
        rows = {row["id"]: row for row in k.controller.status()}
        return (decoded(state_payload(rows["left"], shutoff, BEIJING)),
                decoded(state_payload(rows["right"], None, BEIJING)))

    left, right = kitchen_run(scenario)

    assert set(left) == set(right) == STATE_KEYS
    assert left["relay"] == "cut" and left["last_shutoff_source"] == "cli"
    assert right["locked"] is True and right["lock_reason"] == "away" and right["relay"] == "cut"


def test_a_sensor_state_has_its_kind_value_availability_and_change_time() -> None:
    """A sensor's retained state names it and gives its value, availability and zoned change."""
    state = decoded(sensor_payload(sensor_row(value=True, reading=True), BEIJING))

    assert state == {
        "sensor": "hall_gas", "name": "Hall gas", "kind": "gas", "burner": None,
        "value": True, "available": True, "changed": "2025-06-15T23:06:10+08:00",
    }


def test_an_unknown_sensor_reads_null_not_no() -> None:
    """Offline or never heard from, a sensor's value is null; unheard, availability is too."""
    offline = decoded(sensor_payload(sensor_row(available=False, value=None), BEIJING))
    unheard = decoded(sensor_payload(
        sensor_row(available=None, value=None, reading=None, changed=None), BEIJING))

    assert (offline["value"], offline["available"]) == (None, False)
    assert (unheard["value"], unheard["available"], unheard["changed"]) == (None, None, None)
    assert set(offline) == set(unheard) == SENSOR_KEYS


def test_the_hazard_latch_names_locked_burners_and_detecting_or_offline_sensors() -> None:
    """The hazard message: locked while any burner holds a hazard lock; detectors by state."""
    burners = [
        status_row(id="left", mode="locked", lock_reason="hazard"),
        status_row(id="right", mode="locked", lock_reason="child"),
        status_row(id="back"),
    ]
    sensors = [
        sensor_row(id="hall_gas", value=True),
        sensor_row(id="smoke", kind="smoke", available=False, value=None),
        sensor_row(id="motion", kind="presence", available=False, value=None),
        sensor_row(id="left_flame", kind="flame", burner="left", value=True),
    ]

    assert decoded(hazard_payload(burners, sensors)) == {
        "locked": True, "locked_burners": ["left"], "detecting": ["hall_gas"],
        "offline": ["smoke"],
    }


def test_without_a_hazard_lock_the_latch_is_open() -> None:
    """No hazard lock (another lock reason counts not) and clear sensors read unlocked."""
    burners = [status_row(mode="locked", lock_reason="child")]

    assert decoded(hazard_payload(burners, [sensor_row()])) == {
        "locked": False, "locked_burners": [], "detecting": [], "offline": [],
    }


def test_an_event_carries_its_fields_and_a_zoned_time() -> None:
    """An event message has the event's fields as plain values plus its time in ISO 8601."""
    message = decoded(event_payload(shutoff_event(), BEIJING))

    assert message["kind"] == "shutoff" and message["result"] == "verified"
    assert message["verified"] is True and message["latency_ms"] == 12.5
    assert message["time"] == NOW - 3600
    assert message["time_iso"] == "2025-06-15T22:06:40+08:00"


def test_an_event_with_a_non_finite_latency_is_still_standard_json() -> None:
    """A non-finite number in an event is published as null."""
    message = decoded(event_payload(shutoff_event(latency_ms=float("inf")), BEIJING))

    assert message["latency_ms"] is None


def test_a_reply_is_ok_only_when_every_burner_succeeded() -> None:
    """``ok`` is true only when every outcome is verified or done, and false with none."""
    verified = Outcome("left", Result.VERIFIED, "left cut", 10.0, "sim")
    unverified = Outcome("right", Result.UNVERIFIED, "right cut, unverified", None, "plug")

    good = decoded(reply_ok("req-1", [verified]))
    mixed = decoded(reply_ok("req-2", [verified, unverified]))

    assert good == {"id": "req-1", "ok": True, "outcomes": [
        {"burner": "left", "result": "verified", "message": "left cut", "latency_ms": 10.0,
         "device": "sim"}]}
    assert mixed["ok"] is False and len(mixed["outcomes"]) == 2
    assert decoded(reply_ok(None, []))["ok"] is False


def test_an_error_reply_carries_code_and_message() -> None:
    """A refusal's reply says not ok, with the code and the message."""
    assert decoded(reply_error("req-3", "bad_pin", "wrong PIN")) == {
        "id": "req-3", "ok": False, "error": {"code": "bad_pin", "message": "wrong PIN"},
    }


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (Kind.WARNING, {"source": "failsafe", "message": "left has been lit for nearly 3h: "
                        "the failsafe shuts it off in 5m"}),
        (Kind.HAZARD, {"source": "hazard", "burner": None, "reason": "gas",
                       "actor": "hall_gas", "message": "gas detected by 'hall_gas': locking "
                       "every burner"}),
        (Kind.FLAME_ON, {"source": "sensor", "actor": "left_flame",
                          "message": "left: flame lit"}),
        (Kind.ALARM, {"source": "controller", "reason": "flame", "result": Result.FAILED}),
    ],
)
def test_warnings_hazards_and_flames_read_as_events(kind: Kind, fields: dict[str, Any]) -> None:
    """The new kinds go out with their kind, source, reason, actor and message as plain JSON."""
    event = Event(**{"kind": kind, "time": NOW, "burner": "left", **fields})
    message = decoded(event_payload(event, BEIJING))

    assert message["kind"] == kind.value
    for key in ("source", "reason", "actor", "message", "burner"):
        if key in fields:
            value = fields[key]
            assert message[key] == (value.value if isinstance(value, Result) else value)
