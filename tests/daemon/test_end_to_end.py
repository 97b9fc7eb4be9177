"""The real daemon and the real CLI over the real Unix socket, as a user runs them."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.daemon import STOVECTL, DaemonProcess, clean_environment

CUT_HOLD = 2.0
ALARM_AFTER = 1.0
Burners = dict[str, dict[str, Any]]


def is_cut(burner: dict[str, Any]) -> bool:
    return bool(burner["mode"] == "pulse" and burner["relay"] == "cut")


def is_armed(burner: dict[str, Any]) -> bool:
    return bool(burner["mode"] == "armed" and burner["relay"] == "armed")


def events(daemon: DaemonProcess, kind: str, burner: str, source: str | None = None) -> list[Any]:
    return [
        event for event in daemon.history()
        if event["kind"] == kind and event["burner"] == burner
        and (source is None or event["source"] == source)
    ]


def test_off_cuts_at_once_and_rearms_after_cut_hold(daemon: DaemonProcess) -> None:
    """`stovectl off left` is verified within 1 s; left stays cut for cut_hold, then re-arms."""
    started = time.monotonic()
    result = daemon.cli("off", "left")
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed < 1.0
    assert "left" in result.stdout and "verified" in result.stdout
    burners = daemon.burners()
    assert is_cut(burners["left"]), burners["left"]
    assert burners["left"]["rearm_in"] is not None
    assert is_armed(burners["right"]), burners["right"]

    daemon.wait_for(lambda b: is_armed(b["left"]), CUT_HOLD + 5, "left re-armed")
    assert time.monotonic() - started >= CUT_HOLD


def test_timer_cuts_when_it_runs_out(daemon: DaemonProcess) -> None:
    """`stovectl timer left 3s` cuts left about 3 s later, recorded as a shutoff by the timer."""
    started = time.monotonic()
    result = daemon.cli("timer", "left", "3s")
    assert result.returncode == 0, result.stderr
    countdown = daemon.burners()["left"]["countdown"]
    assert countdown is not None and 0 < countdown["remaining"] <= 3.0

    shutoffs = daemon.wait_for_event("shutoff", "left", "timer", timeout=3.0 + 5)
    assert time.monotonic() - started >= 2.9
    assert [event["result"] for event in shutoffs] == ["verified"]
    burners = daemon.burners()
    assert burners["left"]["countdown"] is None
    assert burners["left"]["mode"] == "pulse"
    assert is_armed(burners["right"])


def test_intent_survives_kill9(daemon: DaemonProcess) -> None:
    """After kill -9, a restart keeps the lock and fires the overdue countdown as `startup`."""
    assert daemon.cli("timer", "left", "3s").returncode == 0
    assert daemon.cli("lock", "right", "--reason", "child").returncode == 0
    due = daemon.burners()["left"]["countdown"]["due"]

    daemon.kill9()
    while time.time() <= due:  # poll the clock, not the (dead) daemon
        time.sleep(min(0.1, max(due - time.time(), 0) + 0.01))
    daemon.restart()

    burners = daemon.burners()
    assert burners["right"]["mode"] == "locked"
    assert burners["right"]["lock_reason"] == "child"
    assert burners["right"]["relay"] == "cut"
    assert burners["left"]["countdown"] is None
    shutoffs = daemon.wait_for_event("shutoff", "left", "startup", timeout=5)
    assert [event["result"] for event in shutoffs] == ["verified"]
    assert events(daemon, "shutoff", "left", "timer") == []

    # The fired countdown is gone from the store too: another start does not fire it again.
    assert daemon.stop() == 0
    daemon.restart()
    assert daemon.burners()["left"]["countdown"] is None
    assert len(events(daemon, "shutoff", "left", "startup")) == 1


@pytest.mark.parametrize("fault", ["stuck", "offline"])
def test_unverified_cut_fails_loudly(
    start_daemon: Callable[..., DaemonProcess], fault: str
) -> None:
    """A cut a faulty relay does not confirm exits 1 naming burner and device, with an alarm."""
    daemon = start_daemon(fault=fault)
    since = time.time()
    started = time.monotonic()
    result = daemon.cli("off", "left")
    elapsed = time.monotonic() - started

    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "left" in output and "'sim'" in output
    assert elapsed < ALARM_AFTER + 4
    alarms = [
        event for event in events(daemon, "alarm", "left")
        if event["time"] >= since and "cut" in event["message"]
    ]
    assert alarms, daemon.history()
    assert daemon.burners()["left"]["alarm"] is True


def test_unknown_burner_is_a_usage_error(daemon: DaemonProcess) -> None:
    """`stovectl off nope` exits 2 and lists the burners there are; nothing is cut."""
    result = daemon.cli("off", "nope")

    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "nope" in output and "left" in output and "right" in output
    burners = daemon.burners()
    assert is_armed(burners["left"]) and is_armed(burners["right"])


def test_timer_refuses_to_extend_unless_asked(daemon: DaemonProcess) -> None:
    """A later deadline is refused (exit 1) without --extend, accepted with it; --cancel ends it."""
    assert daemon.cli("timer", "left", "10s").returncode == 0

    refused = daemon.cli("timer", "left", "20s")
    assert refused.returncode == 1
    assert "extend" in refused.stderr
    assert daemon.burners()["left"]["countdown"]["remaining"] <= 10

    extended = daemon.cli("timer", "left", "20s", "--extend")
    assert extended.returncode == 0, extended.stderr
    assert daemon.burners()["left"]["countdown"]["remaining"] > 25

    shorter = daemon.cli("timer", "left", "15s")
    assert shorter.returncode == 0, shorter.stderr
    assert daemon.burners()["left"]["countdown"]["remaining"] <= 15

    cancelled = daemon.cli("timer", "left", "--cancel")
    assert cancelled.returncode == 0, cancelled.stderr
    burners = daemon.burners()
    assert burners["left"]["countdown"] is None
    assert is_armed(burners["left"])


def test_sigterm_stops_cleanly_and_a_lock_survives(daemon: DaemonProcess) -> None:
    """SIGTERM makes the daemon exit 0 and remove its socket; a lock holds after the next start."""
    assert daemon.cli("lock", "right").returncode == 0

    assert daemon.stop() == 0
    assert not os.path.exists(daemon.socket_path)
    assert daemon.cli("status").returncode == 69

    daemon.restart()
    burners = daemon.burners()
    assert burners["right"]["mode"] == "locked" and burners["right"]["relay"] == "cut"
    assert is_armed(burners["left"])


def test_status_watch_streams_live_countdowns(daemon: DaemonProcess) -> None:
    """`status --watch --json` keeps printing fresh states, with the countdown ticking down."""
    assert daemon.cli("timer", "left", "60s").returncode == 0
    watcher = subprocess.Popen(
        [str(STOVECTL), "--socket", str(daemon.socket_path), "status", "--watch", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=clean_environment(), text=True,
    )
    try:
        assert watcher.stdout is not None
        remaining = []
        deadline = time.monotonic() + 10
        while len(remaining) < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([watcher.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            frame = json.loads(watcher.stdout.readline())
            left = next(b for b in frame["burners"] if b["id"] == "left")
            remaining.append(left["countdown"]["remaining"])
        assert len(remaining) == 3, "the watch printed fewer than three frames in 10 s"
        assert remaining[0] > remaining[1] > remaining[2] > 55
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=5) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        for stream in (watcher.stdout, watcher.stderr):
            if stream is not None:
                stream.close()
