"""How the daemon's cost grows from 2 to 64 burners: time and memory per burner.

One real daemon (``stovectl run``) at a time, on 2, 16, 32 and 64 burners: a
burner per channel of two-channel simulated relays (in the daemon's process,
5 ms per request, read back every second), NC-wired, ``cut_hold`` 2 s. For each:

* start to ping: from launching the process to its first ``ping`` answered, on
  the control socket (the ping waits in the backlog until the daemon serves,
  so this is when it became ready); after a first start that creates the state
  folder (untimed), ``STARTS`` restarts on it, the median; the starts go round
  the sizes, one daemon running at a time, so a busy moment hits all alike;
* then, started once more and alone: idle RSS (``VmRSS``) after
  ``idle_memory.IDLE_SECONDS``;
* ``off all`` over an open control-socket connection, from sending it until
  the reply that every burner is verified; ``ROUNDS`` rounds, each once every
  burner is armed again (untimed), the median.

On the 2-burner daemon, rounds alternate with the time floor: ``off`` of one
burner over the same connection. The per-burner costs are the growth from 2 to
64 burners over the 62 burners added, from the medians. Their floors, and the
64-burner figures', are the 2-burner daemon's own (for the time of a cut, the
one-burner ``off``), so the ratio says how much of a base cost each further
burner adds.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

from stovectl.control.client import ControlClient
from tests.bench import idle_memory
from tests.bench.figures import BenchError, Figure, ask
from tests.support.daemon import DaemonProcess, ping, running_daemon

SIZES = (2, 16, 32, 64)
CHANNELS = 2
ROUNDS = 3
STARTS = 3
WARM_UP_STARTS = 1
READY_TIMEOUT_SECONDS = 15.0
ARMED_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.01
ONE_BURNER = "off 1 burner over the socket (2-burner daemon)"


def off_all(burners: int) -> str:
    return f"off all over the socket → all verified, {burners} burners"


def start(burners: int) -> str:
    return f"daemon start → ping answered, {burners} burners"


def idle(burners: int) -> str:
    return f"daemon idle, {burners} simulated burners"


def config_text(burners: int) -> str:
    """``burners`` burners, one per channel of two-channel simulated relays."""
    text = f'[stove]\nid = "scale{burners}"\nname = "Scaling bench hob"\n'
    for device in range(1, burners // CHANNELS + 1):
        text += (f'\n[[devices]]\nid = "sim{device:02d}"\nkind = "simulated"\n'
                 f'channels = {CHANNELS}\npoll_interval = "1s"\nresponse_time = "5ms"\n'
                 'timeout = "500ms"\n')
    for index in range(burners):
        device, channel = divmod(index, CHANNELS)
        text += (f'\n[[burners]]\nid = "b{index + 1:02d}"\ndevice = "sim{device + 1:02d}"\n'
                 f'channel = {channel + 1}\ncut_state = "on"\ncut_hold = "2s"\n')
    return text + '\n[safety]\nalarm_after = "10s"\nretry_max_interval = "500ms"\n'


@contextlib.contextmanager
def kitchen(burners: int) -> Iterator[DaemonProcess]:
    """A daemon on ``burners`` simulated burners, not yet started."""
    try:
        with running_daemon(config_text(burners), start=False) as daemon:
            yield daemon
    except AssertionError as error:  # how tests.support.daemon reports a misbehaving daemon
        raise BenchError(f"the {burners}-burner daemon misbehaved: {error}") from None


def timed_start(daemon: DaemonProcess) -> float:
    """Ms from launching the daemon to its first ``ping`` answered."""
    started = time.perf_counter()
    process = daemon.launch()
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ping(daemon.socket_path, timeout=READY_TIMEOUT_SECONDS):
        if process.poll() is not None:
            daemon.process = None
            raise BenchError(f"the daemon exited {process.returncode} at start:\n{daemon.log}")
        if time.monotonic() > deadline:
            raise BenchError(f"the daemon did not answer ping within "
                             f"{READY_TIMEOUT_SECONDS:g}s:\n{daemon.log}")
        time.sleep(POLL_INTERVAL_SECONDS)  # no socket yet: readiness polling with a deadline
    return (time.perf_counter() - started) * 1000


class _Rounds:
    def __init__(self, client: ControlClient) -> None:
        self.client = client

    def call(self, op: str, **args: Any) -> Any:
        return ask(self.client, op, **args)

    def wait_armed(self) -> None:
        """Poll ``status`` until every burner is armed and settled."""
        deadline = time.monotonic() + ARMED_TIMEOUT_SECONDS
        while True:
            rows = self.call("status")["burners"]
            if all((row["mode"], row["relay"], row["pending"]) == ("armed", "armed", False)
                   for row in rows):
                return
            if time.monotonic() > deadline:
                raise BenchError(f"not every burner was armed again within "
                                 f"{ARMED_TIMEOUT_SECONDS:g}s: {rows}")
            time.sleep(POLL_INTERVAL_SECONDS)  # polling an observable state with a deadline

    def off(self, names: list[str], expected: int) -> float:
        """Ms from sending ``off`` to the reply, from armed; every burner must be verified."""
        self.wait_armed()
        started = time.perf_counter()
        outcomes = self.call("off", burners=names)["outcomes"]
        elapsed_ms = (time.perf_counter() - started) * 1000
        if len(outcomes) != expected or any(o["result"] != "verified" for o in outcomes):
            raise BenchError(f"off {names} was not verified for every burner: {outcomes}")
        return elapsed_ms


def stopped(daemon: DaemonProcess) -> None:
    if (code := daemon.stop()) != 0:
        raise BenchError(f"the daemon exited {code} on SIGTERM:\n{daemon.log}")


def measure_size(
    burners: int, daemon: DaemonProcess, samples: dict[str, list[float]],
    resident: dict[str, float],
) -> None:
    """One daemon, started again: its idle RSS and its ``off all`` times; then stopped."""
    daemon.start()
    resident[idle(burners)] = idle_memory.idle_rss(daemon)
    samples[off_all(burners)] = []
    with ControlClient(daemon.socket_path, timeout_seconds=30) as client:
        bench = _Rounds(client)
        for _ in range(ROUNDS):
            samples[off_all(burners)].append(bench.off(["all"], burners))
            if burners == SIZES[0]:
                samples.setdefault(ONE_BURNER, []).append(bench.off(["b01"], 1))
    stopped(daemon)


def measure() -> tuple[dict[str, list[float]], dict[str, float]]:
    """Ms per start and per ``off all`` for each size, and the one-burner floor; idle MiB.

    The starts go round the sizes, so a busy moment of the machine hits them alike;
    then each daemon runs alone for its memory and its shutoffs.
    """
    samples: dict[str, list[float]] = {start(burners): [] for burners in SIZES}
    resident: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        daemons = {burners: stack.enter_context(kitchen(burners)) for burners in SIZES}
        for index in range(WARM_UP_STARTS + STARTS):
            for burners, daemon in daemons.items():
                elapsed_ms = timed_start(daemon)
                stopped(daemon)
                if index >= WARM_UP_STARTS:  # the first start creates the state folder
                    samples[start(burners)].append(elapsed_ms)
        for burners, daemon in daemons.items():
            measure_size(burners, daemon, samples, resident)
    return samples, resident


def figures(samples: dict[str, list[float]], resident: dict[str, float]) -> list[Figure]:
    """The largest daemon against the smallest, then each cost per burner added between them."""
    low, high = SIZES[0], SIZES[-1]
    added = high - low

    def median(label: str) -> float:
        return statistics.median(samples[label])

    one = median(ONE_BURNER)
    rss_low_kib, rss_high_kib = resident[idle(low)] * 1024, resident[idle(high)] * 1024
    per = f"per burner added, ({high} − {low} burners) / {added}"
    return [
        Figure(f"{off_all(high)}, median of {ROUNDS}", median(off_all(high)),
               f"{ONE_BURNER}, median", one, "ms"),
        Figure(f"off all time {per}", (median(off_all(high)) - median(off_all(low))) / added,
               f"{ONE_BURNER}, median", one, "ms", decimals=2),
        Figure(f"daemon idle RSS, {high} simulated burners", resident[idle(high)],
               f"the same, {low} burners", resident[idle(low)], "MiB"),
        Figure(f"daemon idle RSS {per}", (rss_high_kib - rss_low_kib) / added,
               f"whole idle RSS of the {low}-burner daemon", rss_low_kib, "KiB", decimals=0),
        Figure(f"{start(high)}, median of {STARTS}", median(start(high)),
               f"the same, {low} burners", median(start(low)), "ms"),
        Figure(f"daemon start time {per}", (median(start(high)) - median(start(low))) / added,
               f"whole start → ping of the {low}-burner daemon", median(start(low)), "ms",
               decimals=2),
    ]
