"""Specification of ``stovectl doctor --wiring-test``: a conversation through the running daemon.

A real daemon runs on the simulated hob (``left`` and ``right``, cut_hold 2s);
the person at the hob is played by the answers fed to the command's stdin.
What counts is the exit code, what the user is told, and what the daemon did:
its history and the burner's state.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.daemon import (
    CLI_TIMEOUT_SECONDS,
    STOVECTL,
    DaemonProcess,
    clean_environment,
    run_cli,
    running_daemon,
)

REARM_SECONDS = 10.0


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    with running_daemon() as process:
        yield process


def wiring_test(
    daemon: DaemonProcess, burner: str, answers: str | None
) -> subprocess.CompletedProcess[str]:
    """Run the wiring test with ``answers`` on stdin (None: stdin is /dev/null)."""
    return subprocess.run(
        [str(STOVECTL), "--socket", str(daemon.socket_path), "doctor", "--wiring-test", burner],
        input=answers,
        stdin=subprocess.DEVNULL if answers is None else None,
        capture_output=True, text=True, env=clean_environment(),
        timeout=CLI_TIMEOUT_SECONDS, check=False,
    )


def cuts(daemon: DaemonProcess, burner: str) -> list[dict[str, Any]]:
    return [e for e in daemon.history() if (e["kind"], e["burner"]) == ("shutoff", burner)]


def armed(burners: dict[str, dict[str, Any]]) -> bool:
    return all(row["mode"] == "armed" and row["relay"] == "armed" for row in burners.values())


def test_a_flame_that_went_out_passes_and_the_burner_re_arms(daemon: DaemonProcess) -> None:
    """Enter, the daemon cuts left, "y": exit 0, and left is re-armed when the command ends."""
    before = len(cuts(daemon, "left"))
    started = time.monotonic()
    result = wiring_test(daemon, "left", "\ny\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started >= 2.0  # it waited out cut_hold
    out = result.stdout
    assert out.index("Light left") < out.index("left: cut, verified") < out.index(
        "Did the flame go out") < out.index("recorded: the flame went out") < out.index(
        "left: re-armed") < out.index("Wiring test passed")
    assert len(cuts(daemon, "left")) == before + 1
    assert cuts(daemon, "left")[-1]["source"] == "cli"
    assert daemon.burners()["left"]["mode"] == "armed"


def test_a_flame_that_stayed_lit_fails_with_wiring_advice(daemon: DaemonProcess) -> None:
    """Enter, then "n": exit 1, advice on wiring, cut_state and NC vs NO, and still re-armed."""
    daemon.wait_for(armed, REARM_SECONDS, "every burner armed")
    result = wiring_test(daemon, "right", "\nn\n")
    assert result.returncode == 1
    assert "recorded: the flame stayed lit" in result.stdout
    assert "right: re-armed" in result.stdout
    assert "Wiring test FAILED for right" in result.stdout
    for advice in ("series with THIS burner's thermocouple", "cut_state", "NC vs NO"):
        assert advice in result.stdout


def test_an_empty_stdin_fails_at_once_and_cuts_nothing(daemon: DaemonProcess) -> None:
    """Stdin that is not a terminal and empty: exit 2 with a clear message, no cut, no hang."""
    daemon.wait_for(armed, REARM_SECONDS, "every burner armed")
    before = len(cuts(daemon, "left"))
    for answers in (None, ""):
        result = wiring_test(daemon, "left", answers)
        assert result.returncode == 2
        assert "stdin ended" in result.stderr
        assert "nothing was cut" in result.stderr
    assert len(cuts(daemon, "left")) == before
    assert daemon.burners()["left"]["mode"] == "armed"


def test_stdin_ending_after_the_cut_exits_2_and_the_burner_re_arms_anyway(
    daemon: DaemonProcess,
) -> None:
    """Enter but no y/N: exit 2 after the cut, which the daemon undoes after cut_hold."""
    daemon.wait_for(armed, REARM_SECONDS, "every burner armed")
    before = len(cuts(daemon, "left"))
    result = wiring_test(daemon, "left", "\n")
    assert result.returncode == 2
    assert "re-arms by itself" in result.stderr
    assert len(cuts(daemon, "left")) == before + 1
    daemon.wait_for(armed, REARM_SECONDS, "left re-armed by the daemon")


def test_a_locked_burner_cannot_be_tested(daemon: DaemonProcess) -> None:
    """A locked burner cannot be lit: exit 1 before asking anything."""
    daemon.wait_for(armed, REARM_SECONDS, "every burner armed")
    assert daemon.cli("lock", "right", "--reason", "child").returncode == 0
    try:
        result = wiring_test(daemon, "right", "\ny\n")
    finally:
        assert daemon.cli("unlock", "right").returncode == 0
    assert result.returncode == 1
    assert "right is locked (child); it must be armed" in result.stderr
    assert "Light right" not in result.stdout


def test_an_unknown_burner_is_a_usage_error(daemon: DaemonProcess) -> None:
    """Exit 2, naming the burners there are."""
    result = wiring_test(daemon, "middle", "\ny\n")
    assert result.returncode == 2
    assert "no burner 'middle'; burners: left, right" in result.stderr


def test_without_a_daemon_it_exits_69() -> None:
    """The wiring test needs the daemon; with none it says so and exits 69."""
    result = run_cli("--socket", "/nonexistent/stovectl.sock", "doctor", "--wiring-test", "left")
    assert result.returncode == 69
    assert "no stovectl daemon" in result.stderr
