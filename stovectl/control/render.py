"""How the CLI shows replies to people: status tables, history lines, outcomes.

Pure functions of the reply data and the current time, so they are tested
without a daemon. Stdlib only (the CLI client imports this).
"""

from __future__ import annotations

import time
from typing import Any

from stovectl.durations import format_duration


def _remaining(seconds: float) -> str:
    return format_duration(max(0, round(seconds)))


def _local(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


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


def format_status(reply: dict[str, Any]) -> str:
    stove = reply.get("stove", {})
    lines = [f"{stove.get('name', 'stove')} ({stove.get('id', '?')})"]
    header = ("BURNER", "STATE", "RELAY", "DEVICE", "COUNTDOWN")
    rows = [header]
    for row in reply["burners"]:
        online = {True: "online", False: "OFFLINE", None: "?"}[row.get("device_online")]
        countdown = row.get("countdown")
        rows.append((
            row["id"],
            burner_state(row),
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
