"""Safety deadlines across `kill -9` of the real daemon (DESIGN §2 rules 6 and 9)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.support.daemon import DaemonProcess

MAX_ON = 5.0
FAILSAFE = f"""
[failsafe]
max_on = "{MAX_ON:g}s"
warn_before = "1s"
assume_lit = true
"""


def test_a_pending_countdown_cuts_on_time_after_kill9(daemon: DaemonProcess) -> None:
    """A countdown pending at kill -9 cuts at its original moment once the daemon is back."""
    assert daemon.cli("timer", "left", "4s").returncode == 0
    set_at = time.monotonic()
    daemon.kill9()
    daemon.restart()
    assert daemon.burners()["left"]["countdown"] is not None

    daemon.wait_for_event("shutoff", "left", "timer", timeout=8)
    cut_after = time.monotonic() - set_at
    # The status poll that saw it adds up to a poll interval and a CLI call.
    assert 3.9 <= cut_after <= 5.0, cut_after


def test_a_pending_max_on_cuts_on_time_after_kill9(
    start_daemon: Callable[..., DaemonProcess],
) -> None:
    """A max-on deadline pending at kill -9 is kept: the restarted daemon cuts on time."""
    started = time.monotonic()
    daemon = start_daemon(extra=FAILSAFE)
    due = daemon.burners()["left"]["failsafe"]["max_on"]
    assert due is not None and due == pytest.approx(time.time() + MAX_ON, abs=1.0)
    daemon.kill9()
    daemon.restart()
    assert daemon.burners()["left"]["failsafe"]["max_on"] == pytest.approx(due, abs=0.01)

    shutoffs = daemon.wait_for_event("shutoff", "left", "failsafe", timeout=MAX_ON + 3)
    assert [event["result"] for event in shutoffs] == ["verified"]
    assert shutoffs[0]["time"] == pytest.approx(due, abs=0.3)
    assert time.monotonic() - started <= MAX_ON + 1.5
    warnings = [e for e in daemon.history() if e["kind"] == "warning" and e["burner"] == "left"]
    assert warnings and warnings[0]["source"] == "failsafe"


def test_an_overdue_max_on_cuts_at_start(start_daemon: Callable[..., DaemonProcess]) -> None:
    """A max-on deadline that passed while the daemon was dead cuts as soon as it is back."""
    daemon = start_daemon(extra=FAILSAFE)
    due = daemon.burners()["right"]["failsafe"]["max_on"]
    daemon.kill9()
    while time.time() <= due:  # poll the clock, not the (dead) daemon
        time.sleep(min(0.1, max(due - time.time(), 0) + 0.01))
    restarted = time.time()
    daemon.restart()

    shutoffs = daemon.wait_for_event("shutoff", "right", "failsafe", timeout=3)
    assert shutoffs[0]["time"] - restarted < 1.5
