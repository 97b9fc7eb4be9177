"""How the CLI shows replies to people: status tables, history lines, outcomes.

Pure functions of the reply data and the current time, so they are tested
without a daemon. Stdlib only (the CLI client imports this).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from stovectl.durations import format_duration

NO_SCHEDULES = (
    "no schedules configured: add a [[schedules]] table to the config (id, cron, action; "
    "see \"Schedules\" in the README), then restart stovectl"
)


def _remaining(seconds: float) -> str:
    return format_duration(max(0, round(seconds)))


def _local(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _local_with_offset(timestamp: float) -> str:
    """``2026-11-22 23:00 +08:00``: local time, with the offset that makes it unambiguous."""
    moment = datetime.fromtimestamp(timestamp).astimezone()
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:5]}"


def burner_state(row: dict[str, Any]) -> str:
    """One phrase for a burner's situation, e.g. ``cut, re-arms in 3s``."""
    mode = row["mode"]
    if row.get("alarm"):
        wanted = "cut" if mode != "armed" else "re-arm"
        return f"ALARM: {wanted} not verified"
    if mode == "locked":
        return f"locked ({row.get('lock_reason') or 'lock'})"
    if mode == "pulse":
        if row.get("rearm_in") is not None:
            return f"cut, re-arms in {_remaining(row['rearm_in'])}"
        return "cutting" if row.get("pending") else "cut"
    return "re-arming" if row.get("pending") else "armed"


FAILSAFE_DEADLINES = (
    ("max_on", "max-on, off in {left}"),
    ("unattended_warning", "unattended, warning in {left}"),
    ("unattended", "unattended, off in {left} unless somebody comes back"),
)
"""What the status says of each failsafe deadline; a max-on warning shows as its shutoff."""
HAZARD_KINDS = ("gas", "smoke")


def flame_word(row: dict[str, Any]) -> str:
    """``on``, ``off``, ``?`` while its sensor is unheard or offline, ``-`` without one."""
    if not row.get("flame_sensor"):
        return "-"
    flame = row.get("flame")
    return "?" if flame is None else "on" if flame else "off"


def next_failsafe(row: dict[str, Any], now: float) -> str | None:
    """The burner's next failsafe deadline, e.g. ``max-on, off in 12m``; None if none runs."""
    failsafe = row.get("failsafe") or {}
    due = [(failsafe[key], words) for key, words in FAILSAFE_DEADLINES
           if failsafe.get(key) is not None]
    if not due:
        return None
    when, words = min(due, key=lambda pair: pair[0])
    return words.format(left=_remaining(when - now))


def sensor_lines(sensors: list[dict[str, Any]]) -> list[str]:
    """One line per gas or smoke sensor that detects, and per sensor that is offline."""
    lines = []
    for sensor in sensors:
        kind = sensor["kind"]
        label = sensor["id"] if sensor.get("name") in (None, sensor["id"]) else (
            f"{sensor['id']} ({sensor['name']})")
        if kind in HAZARD_KINDS and sensor.get("value") is True:
            lines.append(f"! {kind.upper()} DETECTED by {label}: every burner locked")
        elif sensor.get("available") is False:
            lost = f": no {kind} protection" if kind in HAZARD_KINDS else ""
            lines.append(f"! {kind} sensor {label} is OFFLINE{lost}")
    return lines


def format_status(reply: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    stove = reply.get("stove", {})
    lines = [f"{stove.get('name', 'stove')} ({stove.get('id', '?')})"]
    # The FLAME column only where some burner has a flame sensor.
    flame = any(row.get("flame_sensor") for row in reply["burners"])
    header = ("BURNER", "STATE", *(("FLAME",) if flame else ()), "RELAY", "DEVICE", "COUNTDOWN")
    rows = [header]
    for row in reply["burners"]:
        online = {True: "online", False: "OFFLINE", None: "?"}[row.get("device_online")]
        countdown = row.get("countdown")
        rows.append((
            row["id"],
            burner_state(row),
            *((flame_word(row),) if flame else ()),
            row.get("relay") or "unknown",
            f"{row['device']}/{row['channel']} {online}",
            f"off in {_remaining(countdown['remaining'])}" if countdown else "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    for row in reply["burners"]:
        if row.get("alarm") and row.get("last_error"):
            lines.append(f"! {row['id']}: {row['last_error']}")
    lines.extend(sensor_lines(reply.get("sensors") or []))
    for row in reply["burners"]:
        failsafe = next_failsafe(row, now)
        if failsafe is not None:
            lines.append(f"{row['id']}: failsafe {failsafe}")
    schedules = reply.get("schedules")
    if schedules:
        lines.append(next_schedule_run(schedules))
    mqtt = reply.get("mqtt")
    if mqtt is not None:
        word = "connected" if mqtt.get("connected") else "NOT CONNECTED (retrying)"
        lines.append(f"MQTT: {word} to {mqtt.get('broker', '?')}, topics {mqtt.get('base_topic')}/")
    return "\n".join(lines)


def format_event(event: dict[str, Any]) -> str:
    result = event.get("result") or ""
    if event.get("latency_ms") is not None and result:
        result += f" {event['latency_ms']:.0f}ms"
    who = event["source"] + (f" {event['actor']}" if event.get("actor") else "")
    return "  ".join((
        _local(event["time"]),
        event["kind"].ljust(16),
        (event.get("burner") or event.get("device") or "-").ljust(8),
        who.ljust(18),
        result.ljust(14),
        event.get("message", ""),
    )).rstrip()


def format_history(events: list[dict[str, Any]]) -> str:
    if not events:
        return "no events"
    return "\n".join(format_event(event) for event in events)


def format_outcome(outcome: dict[str, Any], action: str) -> str:
    result = outcome["result"]
    if result == "verified":
        latency = outcome.get("latency_ms")
        timing = f" in {latency:.0f} ms" if latency is not None else ""
        return f"{outcome['burner']}: {action}, verified{timing}"
    if result == "unverified":
        return (f"{outcome['burner']}: {action}, acknowledged but UNVERIFIED "
                "(the device cannot report its state)")
    if result == "done":
        return str(outcome.get("message") or f"{outcome['burner']}: {action}")
    return f"{outcome['burner']}: FAILED: {outcome.get('message') or result}"


def _schedule_action(row: dict[str, Any]) -> str:
    action = str(row["action"])
    if action == "lock" and row.get("reason"):
        action += f" ({row['reason']})"
    return action


def next_schedule_run(rows: list[dict[str, Any]]) -> str:
    """``next: night — lock all at 2026-11-22 23:00 +08:00`` (every schedule due then)."""
    due = [row for row in rows if row.get("next_run") is not None]
    if not due:
        return "next: no schedule will run again"
    soonest = min(row["next_run"] for row in due)
    what = "; ".join(
        f"{row['id']} — {row['action']} {', '.join(row['burners'])}"
        for row in due if row["next_run"] == soonest
    )
    return f"next: {what} at {_local_with_offset(soonest)}"


def format_schedules(rows: list[dict[str, Any]]) -> str:
    """A table of the calendar schedules; times are local, with their offset."""
    if not rows:
        return NO_SCHEDULES
    table = [("ID", "ACTION", "BURNERS", "WHEN", "NEXT RUN", "LAST RUN")]
    for row in rows:
        next_run, last_run = row.get("next_run"), row.get("last_run")
        table.append((
            row["id"],
            _schedule_action(row),
            ", ".join(row["burners"]),
            f"{row['cron']} {row['time_zone']}",
            "never again" if next_run is None else _local_with_offset(next_run),
            "-" if last_run is None else _local_with_offset(last_run),
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in table
    )
