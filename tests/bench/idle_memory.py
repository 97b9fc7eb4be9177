"""How much memory the daemon holds when idle, beside two bare interpreters.

The daemon's resident set is read from ``/proc/<pid>/status`` (``VmRSS``)
after it answers ``ping`` and then sits idle for a fixed two seconds — a fixed
pause is fine here: this is a benchmark, not a test, and it only lets start-up
garbage settle. The floors are read the same way from two processes on the
same interpreter that signal readiness and then sleep: one that imports
nothing, and one that imports ``pydantic_settings``, the heaviest thing the
daemon needs. The ratio to the second is what stovectl itself adds.
"""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tests.bench.figures import BenchError, Figure
from tests.support.daemon import DaemonProcess, clean_environment

IDLE_SECONDS = 2.0
READY_TIMEOUT_SECONDS = 30.0
SLEEPER = 'import time{imports}; print("ready", flush=True); time.sleep(600)'
FLOORS = {
    "bare python, sleeping": "",
    "python + pydantic_settings": ", pydantic_settings",
}
DAEMON = "daemon idle"
MIIO_DAEMON = "daemon idle, miio relays"


def rss_mib(pid: int) -> float:
    """The resident set size of process ``pid`` in MiB, from ``/proc``."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    kib = int(line.split()[1])  # "VmRSS:   12345 kB"
                    return kib / 1024
    except OSError as error:
        raise BenchError(f"cannot read the memory of process {pid}: {error}") from None
    raise BenchError(f"/proc/{pid}/status has no VmRSS line (a kernel thread, or a zombie?)")


@contextmanager
def sleeper(imports: str) -> Iterator[subprocess.Popen[str]]:
    """A floor process on this interpreter; killed on exit."""
    process = subprocess.Popen(
        [sys.executable, "-c", SLEEPER.format(imports=imports)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_environment(),
    )
    try:
        yield process
    finally:
        process.kill()
        process.communicate()


def wait_ready(label: str, process: subprocess.Popen[str], deadline: float) -> None:
    """Return once the floor process printed ``ready``; fail if it dies or the deadline passes."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            raise BenchError(f"{label}: not ready within {READY_TIMEOUT_SECONDS:g}s")
    if process.stdout.readline().strip() != "ready":
        _, stderr = process.communicate()
        raise BenchError(f"{label}: exited {process.returncode} before it was ready: {stderr}")


def measure(daemon: DaemonProcess) -> dict[str, float]:
    """MiB resident for a daemon that just answered ``ping``, and for each floor.

    Everything is read after the floors are ready and a further idle pause, so the
    daemon has been idle at least that long since it answered.
    """
    if daemon.process is None:
        raise BenchError("the daemon is not running")
    with ExitStack() as stack:
        floors = {
            label: stack.enter_context(sleeper(imports)) for label, imports in FLOORS.items()
        }
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for label, process in floors.items():
            wait_ready(label, process, deadline)
        time.sleep(IDLE_SECONDS)  # let start-up settle: a benchmark, not a synchronisation
        resident = {DAEMON: rss_mib(daemon.process.pid)}
        resident.update({label: rss_mib(process.pid) for label, process in floors.items()})
    return resident


def idle_rss(daemon: DaemonProcess) -> float:
    """MiB resident for a daemon that just answered ``ping``, after the same idle pause."""
    if daemon.process is None:
        raise BenchError("the daemon is not running")
    time.sleep(IDLE_SECONDS)  # let start-up settle: a benchmark, not a synchronisation
    return rss_mib(daemon.process.pid)


def figures(resident: dict[str, float]) -> list[Figure]:
    """The daemon's idle RSS against each floor; with miio loaded, against the daemon without."""
    name = f"daemon RSS after ping + {IDLE_SECONDS:g}s idle"
    result = [
        Figure(name, resident[DAEMON], f"{label}, RSS", resident[label], "MiB")
        for label in FLOORS
    ]
    if MIIO_DAEMON in resident:
        result.append(Figure(
            f"{name}, miio relays configured (python-miio loaded)", resident[MIIO_DAEMON],
            "the same, simulated relays only", resident[DAEMON], "MiB",
        ))
    return result
