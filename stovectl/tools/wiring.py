"""``stovectl doctor --wiring-test BURNER``: prove with a real flame that a cut puts it out.

Only a person at the hob can see the flame, so this is a conversation: light the
burner, press Enter, the daemon cuts it (as ``stovectl off`` does), say whether
the flame went out, and see it re-armed after ``cut_hold``. It needs the daemon
and goes through the control socket like every client command. Answers are read
straight from stdin's file descriptor: a closed or empty stdin ends the test
with exit 2 before anything is cut, and a silent pipe is waited on only so long.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from typing import Any

import click

from stovectl.control.render import burner_state, format_outcome

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
PIPE_WAIT_SECONDS = 30.0
"""How long a stdin that is not a terminal may stay silent before the test gives up."""
REARM_MARGIN_SECONDS = 15.0
"""How long past the announced re-arm to wait for the read-back of the re-armed relay."""
STATUS_POLL_SECONDS = 0.2
YES = ("y", "yes")

NO_ADVICE = """\
stovectl switched the relay to cut, but the flame stayed lit. Check:
  - wiring: the relay's contacts must be in series with THIS burner's thermocouple lead
    (not another burner's, and not bridged by a second path);
  - cut_state: "on" when the loop runs through the relay's NC contacts (energising
    opens it), "off" when it runs through NO;
  - NC vs NO: the terminals used must match cut_state;
  - some valves take up to ~10 s to drop: run the test again and wait longer before answering.
Do not rely on stovectl for this burner until the test passes."""

Call = Callable[..., dict[str, Any]]


class NoAnswer(Exception):
    """Stdin ended, or stayed silent too long, before a line came."""


class _Ended(Exception):
    """The test ends early with this exit code; the user has been told why."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class AnswerReader:
    """Lines from a file descriptor, unbuffered so a timeout never misses buffered input."""

    def __init__(self, fd: int, timeout_seconds: float | None) -> None:
        self._fd = fd
        self._timeout_seconds = timeout_seconds
        self._buffer = b""

    @classmethod
    def for_stdin(cls, stdin: Any) -> AnswerReader:
        """A terminal is waited on for ever (people take time); anything else is not."""
        try:
            fd = stdin.fileno()
        except (AttributeError, OSError, ValueError):  # closed, or not a real file
            return cls(-1, 0)
        return cls(fd, None if os.isatty(fd) else PIPE_WAIT_SECONDS)

    def line(self) -> str:
        if self._fd < 0:
            raise NoAnswer("there is no stdin")
        while b"\n" not in self._buffer:
            if self._timeout_seconds is not None:
                ready, _, _ = select.select([self._fd], [], [], self._timeout_seconds)
                if not ready:
                    raise NoAnswer(f"no answer on stdin within {self._timeout_seconds:g}s")
            chunk = os.read(self._fd, 1024)
            if not chunk:
                if self._buffer:  # a last line without its newline
                    line, self._buffer = self._buffer, b""
                    return line.decode(errors="replace")
                raise NoAnswer("stdin ended")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace")


def _burners(call: Call) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in call("status")["burners"]}


def _wait_rearmed(call: Call, burner: str, within_seconds: float) -> bool:
    deadline = time.monotonic() + within_seconds
    while True:
        row = _burners(call)[burner]
        if row["mode"] == "armed" and not row.get("pending") and row.get("relay") == "armed":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(STATUS_POLL_SECONDS)  # polling the daemon's observed state, with a deadline


def _check_ready(burner: str, call: Call) -> None:
    """Go on only with an armed burner that exists."""
    rows = _burners(call)
    row = rows.get(burner)
    if row is None:
        click.echo(f"stovectl: no burner {burner!r}; burners: {', '.join(rows)}", err=True)
        raise _Ended(EXIT_USAGE)
    if row["mode"] != "armed" or row.get("pending"):
        click.echo(f"stovectl: {burner} is {burner_state(row)}; it must be armed to be lit "
                   "(wait for it, or `stovectl unlock` it)", err=True)
        raise _Ended(EXIT_FAILED)
    name = row.get("name") or burner
    called = f"{burner} ({name})" if name != burner else burner
    click.echo(f"Wiring test for {called} on {row['device']}/{row['channel']}: stovectl will "
               "cut it, and its flame must go out.")


def _cut_and_ask(burner: str, call: Call, answers: AnswerReader) -> bool:
    """Cut once the flame burns; True when the user saw it go out."""
    click.echo(f"Light {burner} by hand and let it burn steadily, then press Enter.")
    try:
        answers.line()
    except NoAnswer as error:
        click.echo(f"stovectl: {error}: the wiring test needs someone at the hob to answer; "
                   "nothing was cut", err=True)
        raise _Ended(EXIT_USAGE) from None
    outcome = call("off", burners=[burner])["outcomes"][0]
    click.echo(format_outcome(outcome, "cut"))
    if outcome["result"] == "failed":
        click.echo("stovectl: the relay did not confirm the cut; check the device first "
                   "(`stovectl doctor`)", err=True)
        raise _Ended(EXIT_FAILED)
    click.echo("Did the flame go out within a few seconds? [y/N] ", nl=False)
    try:
        went_out = answers.line().strip().lower() in YES
    except NoAnswer as error:
        click.echo("")
        click.echo(f"stovectl: {error}; {burner} re-arms by itself after its cut_hold", err=True)
        raise _Ended(EXIT_USAGE) from None
    click.echo("recorded: the flame went out" if went_out else "recorded: the flame stayed lit")
    return went_out


def run_wiring_test(burner: str, call: Call, answers: AnswerReader) -> int:
    """The conversation; ``call`` asks the daemon (and exits on any failure to get an answer)."""
    try:
        _check_ready(burner, call)
        went_out = _cut_and_ask(burner, call, answers)
    except _Ended as ended:
        return ended.code
    rearm_in = _burners(call)[burner].get("rearm_in") or 0.0
    rearmed = _wait_rearmed(call, burner, rearm_in + REARM_MARGIN_SECONDS)
    if rearmed:
        click.echo(f"{burner}: re-armed; it can be lit again")
    else:
        click.echo(f"stovectl: {burner} has not re-armed; see `stovectl status`", err=True)
    if not went_out:
        click.echo(f"Wiring test FAILED for {burner}.\n{NO_ADVICE}")
        return EXIT_FAILED
    if not rearmed:
        return EXIT_FAILED
    click.echo(f"Wiring test passed: cutting {burner} puts its flame out.")
    return EXIT_PASSED
