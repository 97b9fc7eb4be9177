"""Specification of how the CLI shows replies to people (stovectl.control.render)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from stovectl.control.render import (
    NO_SCHEDULES,
    burner_state,
    format_history,
    format_outcome,
    format_schedules,
    format_status,
    next_schedule_run,
)

# 2024-03-01 12:00:00 UTC
NOON = 1_709_294_400.0


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, so printed times do not depend on the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def row(**fields: Any) -> dict[str, Any]:
    """A status row as the daemon sends it: an armed, verified burner unless told otherwise."""
    base: dict[str, Any] = {
        "id": "left", "name": "left", "device": "sim", "channel": 1, "mode": "armed",
        "lock_reason": None, "since": NOON, "source": "startup", "relay": "armed",
        "relay_state": "off", "pending": False, "alarm": False, "last_error": None,
        "device_online": True, "countdown": None, "rearm_in": None,
    }
    base.update(fields)
    return base


# -- one burner's phrase -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({}, "armed"),
        ({"pending": True}, "re-arming"),
        ({"mode": "pulse", "rearm_in": 3.2}, "cut, re-arms in 3s"),
        ({"mode": "pulse", "rearm_in": 90.0}, "cut, re-arms in 1m30s"),
        ({"mode": "pulse", "rearm_in": -0.4}, "cut, re-arms in 0s"),
        ({"mode": "pulse", "pending": True}, "cutting"),
        ({"mode": "pulse"}, "cut"),
        ({"mode": "locked", "lock_reason": "child"}, "locked (child)"),
        ({"mode": "locked", "lock_reason": None}, "locked (lock)"),
        ({"mode": "pulse", "alarm": True, "pending": True}, "ALARM: cut not verified"),
        ({"mode": "locked", "alarm": True}, "ALARM: cut not verified"),
        ({"mode": "armed", "alarm": True}, "ALARM: re-arm not verified"),
    ],
    ids=[
        "armed", "re-arming", "re-arm-countdown", "re-arm-minutes", "re-arm-overdue", "cutting",
        "cut", "locked-reason", "locked-default", "alarm-pulse", "alarm-locked", "alarm-rearm",
    ],
)
def test_burner_state_names_the_situation(fields: dict[str, Any], phrase: str) -> None:
    """Each mode, pending write, alarm and re-arm countdown reads as one short phrase."""
    assert burner_state(row(**fields)) == phrase


# -- the status table ----------------------------------------------------------------------


def test_status_shows_a_header_a_row_per_burner_and_aligned_columns() -> None:
    """The status names the stove, then one aligned row per burner: state, relay, device, timer."""
    reply = {
        "stove": {"id": "kitchen", "name": "Kitchen hob"},
        "burners": [
            row(id="left", mode="pulse", relay="cut", rearm_in=4.0),
            row(id="right", channel=2, mode="locked", lock_reason="child", relay="cut"),
            row(id="back", channel=3, countdown={"due": NOON, "remaining": 899.6,
                                                 "source": "cli"}),
        ],
    }
    assert format_status(reply) == "\n".join([
        "Kitchen hob (kitchen)",
        "BURNER  STATE               RELAY  DEVICE        COUNTDOWN",
        "left    cut, re-arms in 4s  cut    sim/1 online  -",
        "right   locked (child)      cut    sim/2 online  -",
        "back    armed               armed  sim/3 online  off in 15m",
    ])


def test_status_shows_an_alarm_with_its_last_error() -> None:
    """A burner in alarm reads ALARM and its last error is printed under the table."""
    reply = {
        "stove": {"id": "kitchen", "name": "Kitchen hob"},
        "burners": [
            row(mode="pulse", alarm=True, pending=True, relay="armed",
                last_error="device 'sim' channel 1 reads off after being told on"),
        ],
    }
    lines = format_status(reply).splitlines()
    assert "ALARM: cut not verified" in lines[2]
    assert lines[-1] == "! left: device 'sim' channel 1 reads off after being told on"


def test_status_hides_a_last_error_without_an_alarm() -> None:
    """A retry's last error is not shouted while no alarm is up."""
    reply = {"stove": {"id": "k", "name": "K"},
             "burners": [row(pending=True, last_error="no answer yet")]}
    assert "no answer yet" not in format_status(reply)


@pytest.mark.parametrize(("online", "word"), [(True, "online"), (False, "OFFLINE"), (None, "?")])
def test_status_shows_whether_the_device_answers(online: bool | None, word: str) -> None:
    """The device column says online, OFFLINE, or ? when it has not been heard from yet."""
    reply = {"stove": {"id": "k", "name": "K"}, "burners": [row(device_online=online)]}
    assert format_status(reply).splitlines()[2].split()[3:5] == ["sim/1", word]


def test_status_shows_an_unread_relay_as_unknown() -> None:
    """A relay never read back shows as unknown, not as armed."""
    reply = {"stove": {"id": "k", "name": "K"},
             "burners": [row(relay=None, device_online=False)]}
    assert format_status(reply).splitlines()[2].split()[2] == "unknown"


def test_status_without_stove_details_still_renders() -> None:
    """A reply lacking the stove block falls back to placeholders instead of failing."""
    assert format_status({"burners": [row()]}).splitlines()[0] == "stove (?)"


# -- history -------------------------------------------------------------------------------


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "shutoff", "source": "cli", "time": NOON, "burner": "left", "device": "sim",
        "actor": None, "reason": None, "result": "verified", "latency_ms": None,
        "message": "left cut; re-arms in 5s", "verified": True,
    }
    base.update(fields)
    return base


def test_history_without_events_says_so() -> None:
    """An empty history reads "no events", not an empty screen."""
    assert format_history([]) == "no events"


@pytest.mark.usefixtures("utc")
def test_history_prints_one_aligned_line_per_event() -> None:
    """Each event is one line: time, kind, burner, source and actor, result and latency, message."""
    text = format_history([
        event(actor="uid:1000 (alice)", latency_ms=41.6),
        event(kind="device_offline", source="device", time=NOON + 61, burner=None,
              result=None, message="device 'sim' does not answer"),
        event(kind="startup", source="startup", time=NOON + 62, burner=None, device=None,
              result=None, message="started: left armed"),
    ])
    assert text.splitlines() == [
        "2024-03-01 12:00:00  shutoff           left      cli uid:1000 (alice)  verified 42ms"
        "   left cut; re-arms in 5s",
        "2024-03-01 12:01:01  device_offline    sim       device" + " " * 30
        + "device 'sim' does not answer",
        "2024-03-01 12:01:02  startup           -         startup" + " " * 29
        + "started: left armed",
    ]


@pytest.mark.usefixtures("utc")
def test_history_line_has_no_trailing_spaces() -> None:
    """A line with an empty message ends at its last word."""
    assert not format_history([event(message="")]).endswith(" ")


# -- outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "text"),
    [
        ({"burner": "left", "result": "verified", "latency_ms": 41.6},
         "left: cut, verified in 42 ms"),
        ({"burner": "left", "result": "verified", "latency_ms": None}, "left: cut, verified"),
        ({"burner": "left", "result": "unverified"},
         "left: cut, acknowledged but UNVERIFIED (the device cannot report its state)"),
        ({"burner": "left", "result": "done", "message": "left shuts off in 15m"},
         "left shuts off in 15m"),
        ({"burner": "left", "result": "done", "message": ""}, "left: cut"),
        ({"burner": "left", "result": "failed", "message": "left: cut not verified after 10s"},
         "left: FAILED: left: cut not verified after 10s"),
        ({"burner": "left", "result": "failed", "message": ""}, "left: FAILED: failed"),
        ({"burner": "left", "result": "refused"}, "left: FAILED: refused"),
    ],
    ids=["verified", "verified-no-latency", "unverified", "done", "done-no-message", "failed",
         "failed-no-message", "refused"],
)
def test_an_outcome_reads_as_one_sentence(outcome: dict[str, Any], text: str) -> None:
    """Verified cuts give their latency, unverified ones say so loudly, failures say FAILED."""
    assert format_outcome(outcome, "cut") == text


@pytest.mark.parametrize(("connected", "word"), [
    (True, "connected"), (False, "NOT CONNECTED (retrying)")])
def test_status_shows_the_mqtt_connection(connected: bool, word: str) -> None:
    """With [mqtt], the last line says whether the broker is connected, and where."""
    reply = {
        "stove": {"id": "kitchen", "name": "Kitchen hob"},
        "burners": [row()],
        "mqtt": {"connected": connected, "broker": "10.0.0.2:1883",
                 "base_topic": "stovectl/kitchen"},
    }
    assert format_status(reply).splitlines()[-1] == (
        f"MQTT: {word} to 10.0.0.2:1883, topics stovectl/kitchen/")


def test_status_without_mqtt_says_nothing_of_it() -> None:
    """Without [mqtt] there is no MQTT line."""
    reply = {"stove": {"id": "kitchen", "name": "Kitchen hob"}, "burners": [row()]}
    assert "MQTT" not in format_status(reply)


# -- calendar schedules ----------------------------------------------------------------------

# 2026-11-22 23:00 in Asia/Shanghai (15:00 UTC), and 07:00 the next morning.
NIGHT_AT = 1_795_359_600.0
MORNING_AT = NIGHT_AT + 8 * 3600


@pytest.fixture
def shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is Asia/Shanghai (+08:00), so printed times are known."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def schedule_row(**fields: Any) -> dict[str, Any]:
    """A schedules row as the daemon sends it: the nightly lock of all, never run yet."""
    base: dict[str, Any] = {
        "id": "night", "action": "lock", "burners": ["all"], "reason": "night",
        "cron": "0 23 * * *", "time_zone": "Asia/Shanghai", "next_run": NIGHT_AT,
        "next_run_text": "2026-11-22T23:00:00+08:00", "last_run": None,
    }
    base.update(fields)
    return base


@pytest.mark.usefixtures("shanghai")
def test_schedules_show_as_an_aligned_table_in_local_time() -> None:
    """Each schedule is a row: action with reason, burners, cron and zone, next and last run."""
    rows = [
        schedule_row(last_run=NIGHT_AT - 86400 + 0.2),
        schedule_row(id="morning", action="unlock", burners=["left", "right"], reason=None,
                     cron="0 7 * * *", next_run=MORNING_AT),
    ]
    assert format_schedules(rows).splitlines() == [
        "ID       ACTION        BURNERS      WHEN                      NEXT RUN"
        "                 LAST RUN",
        "night    lock (night)  all          0 23 * * * Asia/Shanghai  2026-11-22 23:00 +08:00"
        "  2026-11-21 23:00 +08:00",
        "morning  unlock        left, right  0 7 * * * Asia/Shanghai   2026-11-23 07:00 +08:00"
        "  -",
    ]


@pytest.mark.usefixtures("utc")
def test_schedule_times_are_shown_in_the_readers_local_time() -> None:
    """Read in UTC, the 23:00 Shanghai run shows as 15:00 +00:00, beside its zone's cron."""
    line = format_schedules([schedule_row()]).splitlines()[1]
    assert "0 23 * * * Asia/Shanghai" in line
    assert "2026-11-22 15:00 +00:00" in line


def test_a_schedule_that_never_runs_again_says_so() -> None:
    """A schedule without a next run shows that instead of a time."""
    assert "never again" in format_schedules([schedule_row(next_run=None)])


def test_no_schedules_says_how_to_add_one() -> None:
    """No schedules is one sentence naming the config table and the README section."""
    assert format_schedules([]) == NO_SCHEDULES
    assert "[[schedules]]" in NO_SCHEDULES
    assert '"Schedules" in the README' in NO_SCHEDULES


@pytest.mark.usefixtures("shanghai")
def test_the_next_schedule_run_is_the_soonest() -> None:
    """The next-run line names the soonest schedule, what it does and when."""
    rows = [schedule_row(id="morning", action="unlock", next_run=MORNING_AT), schedule_row()]
    assert next_schedule_run(rows) == "next: night — lock all at 2026-11-22 23:00 +08:00"


@pytest.mark.usefixtures("shanghai")
def test_schedules_due_together_share_the_next_run_line() -> None:
    """Two schedules due at the same time are both named."""
    rows = [schedule_row(), schedule_row(id="gas", action="off", burners=["left"])]
    assert next_schedule_run(rows) == (
        "next: night — lock all; gas — off left at 2026-11-22 23:00 +08:00")


def test_no_future_schedule_run_says_so() -> None:
    """When no schedule has a next run, the line says none will run."""
    assert next_schedule_run([schedule_row(next_run=None)]) == "next: no schedule will run again"


@pytest.mark.usefixtures("shanghai")
def test_status_shows_the_next_schedule_run() -> None:
    """With schedules, status gains the next-run line after the burners."""
    reply = {"stove": {"id": "kitchen", "name": "Kitchen hob"}, "burners": [row()],
             "schedules": [schedule_row()]}
    assert format_status(reply).splitlines()[-1] == (
        "next: night — lock all at 2026-11-22 23:00 +08:00")


@pytest.mark.parametrize("reply_schedules", [None, []], ids=["absent", "empty"])
def test_status_without_schedules_says_nothing_of_them(reply_schedules: Any) -> None:
    """Without schedules there is no next-run line."""
    reply: dict[str, Any] = {"stove": {"id": "kitchen", "name": "Kitchen hob"},
                             "burners": [row()]}
    if reply_schedules is not None:
        reply["schedules"] = reply_schedules
    assert "next:" not in format_status(reply)


# -- flame, failsafes and sensors ------------------------------------------------------------

NO_FAILSAFE = {"max_on": None, "max_on_warning": None, "unattended": None,
               "unattended_warning": None}


def failsafe(**due_in: float) -> dict[str, float | None]:
    """A row's failsafe deadlines, each ``due_in`` seconds after NOON."""
    return {**NO_FAILSAFE, **{purpose: NOON + seconds for purpose, seconds in due_in.items()}}


def gas(**fields: Any) -> dict[str, Any]:
    """A sensor board row: a gas detector that reads clear, unless told otherwise."""
    base: dict[str, Any] = {"id": "hall_gas", "name": "hall_gas", "kind": "gas", "burner": None,
                            "source": "mqtt", "reading": False, "available": True,
                            "value": False, "changed": NOON}
    base.update(fields)
    return base


def test_status_shows_a_flame_column_where_a_burner_has_a_flame_sensor() -> None:
    """With a flame sensor somewhere, a FLAME column says on, off, ? (unknown) or - (none)."""
    reply = {
        "stove": {"id": "kitchen", "name": "Kitchen hob"},
        "burners": [
            row(id="left", flame_sensor="left_flame", flame=True),
            row(id="right", channel=2, flame_sensor="right_flame", flame=False),
            row(id="back", channel=3, flame_sensor="back_flame", flame=None),
            row(id="wok", channel=4, flame_sensor=None, flame=None),
        ],
    }
    assert format_status(reply, NOON).splitlines()[1:] == [
        "BURNER  STATE  FLAME  RELAY  DEVICE        COUNTDOWN",
        "left    armed  on     armed  sim/1 online  -",
        "right   armed  off    armed  sim/2 online  -",
        "back    armed  ?      armed  sim/3 online  -",
        "wok     armed  -      armed  sim/4 online  -",
    ]


def test_status_without_flame_sensors_has_no_flame_column() -> None:
    """No burner with a flame sensor, no FLAME column: the table stays as it was."""
    reply = {"burners": [row(flame_sensor=None, flame=None)]}
    assert "FLAME" not in format_status(reply, NOON)


@pytest.mark.parametrize(
    ("due_in", "line"),
    [
        ({"max_on": 720.4, "max_on_warning": 420.4}, "left: failsafe max-on, off in 12m"),
        ({"unattended_warning": 780.0}, "left: failsafe unattended, warning in 13m"),
        ({"unattended": 59.6}, "left: failsafe unattended, off in 1m unless somebody comes back"),
        ({"max_on": 10_000.0, "unattended": 60.0},
         "left: failsafe unattended, off in 1m unless somebody comes back"),
        ({"max_on": -3.0}, "left: failsafe max-on, off in 0s"),
    ],
    ids=["max-on", "unattended-warning", "unattended-off", "soonest-wins", "overdue"],
)
def test_status_shows_the_next_failsafe_deadline(due_in: dict[str, float], line: str) -> None:
    """A burner with failsafe deadlines running gets one line: the soonest, and how far off."""
    reply = {"burners": [row(failsafe=failsafe(**due_in))]}
    assert line in format_status(reply, NOON).splitlines()


def test_status_without_failsafe_deadlines_says_nothing_of_them() -> None:
    """No failsafe running (or a row from before failsafes) adds no line."""
    reply = {"burners": [row(failsafe=dict(NO_FAILSAFE)), row(id="right", channel=2)]}
    assert "failsafe" not in format_status(reply, NOON)


def test_status_shows_a_detecting_and_an_offline_hazard_sensor() -> None:
    """A detecting gas sensor and an offline smoke sensor each get a line; quiet ones none."""
    reply = {
        "burners": [row(mode="locked", lock_reason="hazard", relay="cut")],
        "sensors": [
            gas(value=True, reading=True, name="Hall gas"),
            gas(id="smoke", name="smoke", kind="smoke", available=False, value=None),
            gas(id="quiet_gas"),
            gas(id="motion", name="motion", kind="presence", value=False),
        ],
    }
    lines = format_status(reply, NOON).splitlines()
    assert lines[3:] == [
        "! GAS DETECTED by hall_gas (Hall gas): every burner locked",
        "! smoke sensor smoke is OFFLINE: no smoke protection",
    ]


def test_status_shows_any_offline_sensor() -> None:
    """A presence or flame sensor gone offline is named too, without a protection claim."""
    reply = {"burners": [row()], "sensors": [
        gas(id="motion", name="motion", kind="presence", available=False, value=None)]}
    assert format_status(reply, NOON).splitlines()[-1] == (
        "! presence sensor motion is OFFLINE")


def test_a_busy_kitchen_fits_in_80_columns() -> None:
    """Flames, an alarm, countdowns, failsafes and sensors together stay within 80 columns."""
    reply = {
        "stove": {"id": "kitchen", "name": "Kitchen hob"},
        "burners": [
            row(id="left", flame_sensor="left_flame", flame=True, mode="armed", alarm=True,
                device_online=False, relay=None, countdown={
                    "due": NOON + 5400, "remaining": 5400.0, "source": "cli"},
                failsafe=failsafe(unattended=60)),
            row(id="right", channel=2, mode="pulse", rearm_in=4.0, flame_sensor="rf",
                flame=None, failsafe=failsafe(max_on=10_000, max_on_warning=9_700)),
        ],
        "sensors": [gas(value=True, name="Gas under the sink"),
                    gas(id="kitchen_smoke", name="Kitchen smoke", kind="smoke",
                        available=False, value=None)],
        "mqtt": {"connected": True, "broker": "10.0.0.2:1883", "base_topic": "stovectl/kitchen"},
    }
    text = format_status(reply, NOON)
    assert len(text.splitlines()) == 9
    assert max(len(line) for line in text.splitlines()) <= 80, text
