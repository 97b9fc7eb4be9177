"""How long ``stovectl status`` and ``stovectl off`` take, start to exit, as a user runs them.

Each command runs as a fresh process against a real daemon over its Unix
socket, interleaved round by round with two floors run the same way on the same
interpreter: ``python -c pass`` (the interpreter alone) and ``python -c "import
click"`` (what any click CLI pays before doing anything). The issue's target
is a median of at most 100 ms; the ratio to the click floor is the CLI's own
cost. ``off left`` on a burner that is cut already is still a full write and
read-back at the relay, so every round does the same work.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

from tests.bench.figures import BenchError, Figure, summary
from tests.support.daemon import STOVECTL, DaemonProcess, clean_environment

ROUNDS = 30
WARM_UP_ROUNDS = 2
TARGET_MEDIAN_MS = 100.0
RUN_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Command:
    label: str
    argv: list[str]


def commands(daemon: DaemonProcess) -> list[Command]:
    """The two CLI commands under test, then the two floors."""
    socket = ["--socket", str(daemon.socket_path)]
    return [
        Command("stovectl status", [str(STOVECTL), *socket, "status"]),
        Command("stovectl off left", [str(STOVECTL), *socket, "off", "left"]),
        Command("python -c pass", [sys.executable, "-c", "pass"]),
        Command('python -c "import click"', [sys.executable, "-c", "import click"]),
    ]


def run_timed(command: Command) -> float:
    """Start-to-exit wall time of one run, in milliseconds; a failed run is an error."""
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command.argv,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=clean_environment(),
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BenchError(f"{command.label}: could not run: {error}") from None
    elapsed_ms = (time.perf_counter() - started) * 1000
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise BenchError(f"{command.label}: exited {result.returncode}: {stderr}")
    return elapsed_ms


def measure(daemon: DaemonProcess, rounds: int = ROUNDS) -> dict[str, list[float]]:
    """Milliseconds per run for each command, interleaved so drift hits all alike."""
    runs = commands(daemon)
    samples: dict[str, list[float]] = {command.label: [] for command in runs}
    for _ in range(WARM_UP_ROUNDS):  # fill the page cache and write any .pyc files
        for command in runs:
            run_timed(command)
    for index in range(rounds):
        shift = index % len(runs)  # rotate the order, so no command always runs first
        for command in runs[shift:] + runs[:shift]:
            samples[command.label].append(run_timed(command))
    return samples


def figures(samples: dict[str, list[float]]) -> list[Figure]:
    """Medians against both floors, tail percentiles against the click floor."""
    bare = summary(samples["python -c pass"])
    click = summary(samples['python -c "import click"'])
    result: list[Figure] = []
    for label in ("stovectl status", "stovectl off left"):
        stats = summary(samples[label])
        n = int(stats["n"])
        result += [
            Figure(f"{label}, median (n={n})", stats["median"], "python -c pass, median",
                   bare["median"], "ms", TARGET_MEDIAN_MS),
            Figure(f"{label}, median (n={n})", stats["median"], "import click, median",
                   click["median"], "ms", TARGET_MEDIAN_MS),
            *(
                Figure(f"{label}, {tail} (n={n})", stats[tail], f"import click, {tail}",
                       click[tail], "ms")
                for tail in ("p90", "p99")
            ),
        ]
    return result
