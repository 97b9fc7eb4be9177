"""``python -m tests.bench``: run every benchmark, print one table, write bench-results.json.

The CLI and memory figures use one real daemon (``stovectl run``) on the
simulated stove, configured as ``config/stovectl.toml`` ships but with the
shortest ``cut_hold`` (2 s), on a socket and state folder in a private
temporary folder. The shutoff figure runs the controller in this process. The
miIO figures use a second daemon, driving simulated miIO relays over UDP
(``miio_latency``); its idle memory is read beside the first one's. The MQTT
figures use a third, taking commands from a real Mosquitto and driving
simulated miIO and Tasmota relays (``mqtt_latency``). The countdown figures use
a fourth, on 32 simulated burners, firing a few hundred countdowns beside bare
asyncio timers run alongside (``countdown_lateness``). The idle CPU figures use
two more on a Mosquitto of their own, polling simulated miIO relays, one with
simulated MQTT flame probes, presence and gas sensors subscribed, the other
without, beside a bare paho subscriber to the same topics (``idle_cpu``); in
the same window, the one without sensors (2 miIO devices polled every second
and MQTT connected) is read beside a bare python-miio poller with an idle paho
connection, CPU and then memory (``idle_polling``). The fleet figures use a
daemon on 16 simulated miIO relays over UDP: ``off all`` cutting their 32
burners at once, per burner, beside 16 bare python-miio clients making the
same 32 cuts at once (``fleet_shutoff``). The growth figures start daemons on
2, 16, 32 and 64 simulated burners in turn and read each one's start time,
idle memory and ``off all`` time, then the cost per burner added, against the
2-burner daemon's own (``burner_scaling``).
Exit status: 0 when every figure was measured (a missed target is reported,
not failed: these are benchmarks), 1 when a benchmark could not run.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from stovectl.errors import ConfigError
from stovectl.settings import Settings, SimulatedDeviceSettings, settings_from_mapping
from tests.bench import (
    burner_scaling,
    cli_latency,
    countdown_lateness,
    fleet_shutoff,
    idle_cpu,
    idle_memory,
    idle_polling,
    miio_latency,
    mqtt_latency,
    shutoff_latency,
)
from tests.bench.figures import BenchError, Figure, format_table, summary
from tests.support.daemon import running_daemon

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO_ROOT / "config" / "stovectl.toml"
RESULTS_PATH = REPO_ROOT / "bench-results.json"
CUT_HOLD = "2s"


def bench_config_text() -> str:
    """The shipped example config with every burner's ``cut_hold`` at the 2 s minimum."""
    try:
        text = SHIPPED_CONFIG.read_text(encoding="utf-8")
    except OSError as error:
        raise BenchError(f"cannot read {SHIPPED_CONFIG}: {error.strerror}") from None
    text, count = re.subn(r'(?m)^cut_hold\s*=\s*"[^"]*"', f'cut_hold = "{CUT_HOLD}"', text)
    if count == 0:
        raise BenchError(f"{SHIPPED_CONFIG} sets no cut_hold to shorten; update the benchmark")
    return text


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_all(config_text: str) -> tuple[list[Figure], dict[str, list[float]], dict[str, float]]:
    """Every benchmark in turn: figures, the timing samples (ms) and the RSS readings (MiB)."""
    progress("starting the daemon on the simulated stove")
    try:
        with running_daemon(config_text) as daemon:
            # Memory first, while the daemon has done nothing but start.
            progress(f"reading idle memory ({idle_memory.IDLE_SECONDS:g}s idle)")
            resident = idle_memory.measure(daemon)
            progress(f"timing the CLI, start to exit ({cli_latency.ROUNDS} rounds)")
            cli_samples = cli_latency.measure(daemon)
    except AssertionError as error:  # how tests.support.daemon reports a misbehaving daemon
        raise BenchError(f"the daemon misbehaved: {error}") from None
    settings = load_settings(config_text)
    device = settings.device(settings.burner(shutoff_latency.BURNER).device)
    if not isinstance(device, SimulatedDeviceSettings):
        raise BenchError(f"{SHIPPED_CONFIG}: {shutoff_latency.BURNER!r} is not on a simulated "
                         "device; update the benchmark")
    response_ms = device.response_time.total_seconds() * 1000
    progress(f"timing shutoffs in-process ({shutoff_latency.ROUNDS} rounds)")
    shutoff_samples = asyncio.run(shutoff_latency.measure(settings))
    progress("starting simulated miIO relays and a daemon driving them over UDP")
    with miio_latency.kitchen() as (simulator, miio_daemon):
        progress(f"reading its idle memory ({idle_memory.IDLE_SECONDS:g}s idle)")
        resident[idle_memory.MIIO_DAEMON] = idle_memory.idle_rss(miio_daemon)
        progress(f"timing shutoffs to the cut at a miIO relay ({miio_latency.ROUNDS} rounds)")
        miio_samples = miio_latency.measure(simulator, miio_daemon)
    progress("starting Mosquitto, simulated miIO and Tasmota relays, and a daemon on them")
    with mqtt_latency.kitchen() as mqtt_kitchen:
        progress(f"timing MQTT OFF to the cut at a miIO and a Tasmota relay "
                 f"({mqtt_latency.ROUNDS} rounds each)")
        mqtt_samples = mqtt_latency.measure(mqtt_kitchen)
    progress(f"starting a daemon on {len(countdown_lateness.burner_ids())} simulated burners")
    with countdown_lateness.kitchen() as countdown_daemon:
        progress(f"firing countdowns: {countdown_lateness.STAGGERED_ROUNDS} staggered rounds and "
                 "one all at once, bare asyncio timers alongside")
        countdown_samples = countdown_lateness.measure(countdown_daemon)
    progress("starting Mosquitto, simulated miIO relays and MQTT sensors, two daemons "
             "and a bare poller")
    with (
        idle_cpu.kitchen(idle_polling.floor_relays()) as idle_kitchen,
        idle_polling.floor_poller(idle_kitchen.broker) as poller,
    ):
        progress(f"reading idle CPU ({idle_cpu.SETTLE_SECONDS:g}s settling, "
                 f"{idle_cpu.WINDOW_SECONDS:g}s window), then memory")
        cpu, polling_resident = idle_polling.measure(idle_kitchen, poller)
    progress(f"starting {fleet_shutoff.RELAYS} simulated miIO relays and a daemon on them")
    with fleet_shutoff.kitchen() as fleet_kitchen:
        progress(f"timing off all to each relay's cut, beside bare python-miio clients "
                 f"({fleet_shutoff.ROUNDS} rounds each)")
        fleet_samples = fleet_shutoff.measure(fleet_kitchen)
    sizes = ", ".join(map(str, burner_scaling.SIZES))
    progress(f"starting daemons on {sizes} simulated burners: start times, memory, off all")
    scaling_samples, scaling_resident = burner_scaling.measure()
    figures = [  # in the issues' order
        *cli_latency.figures(cli_samples),
        *shutoff_latency.figures(shutoff_samples, response_ms),
        *miio_latency.figures(miio_samples),
        *mqtt_latency.figures(mqtt_samples),
        *idle_memory.figures(resident),
        *countdown_lateness.figures(countdown_samples),
        *idle_cpu.figures(cpu),
        *idle_polling.figures(cpu, polling_resident),
        *fleet_shutoff.figures(fleet_samples),
        *burner_scaling.figures(scaling_samples, scaling_resident),
    ]
    samples = {**cli_samples, **shutoff_samples, **miio_samples, **mqtt_samples,
               **countdown_samples, **fleet_samples, **scaling_samples}
    resident.update({**polling_resident, **scaling_resident})
    return figures, samples, resident


def load_settings(config_text: str) -> Settings:
    """The benchmark config as the in-process controller gets it (``STOVECTL_…`` applies)."""
    try:
        return settings_from_mapping(tomllib.loads(config_text), source=str(SHIPPED_CONFIG))
    except (tomllib.TOMLDecodeError, ConfigError) as error:
        raise BenchError(f"the benchmark config does not load: {error}") from None


def machine() -> dict[str, Any]:
    """What the figures were measured on, for reading them later."""
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }


def write_results(
    figures: list[Figure],
    samples: dict[str, list[float]],
    resident: dict[str, float],
    seconds: float,
    about: dict[str, Any],
) -> None:
    record = {
        "machine": about,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_seconds": round(seconds, 1),
        "figures": [figure.as_dict() for figure in figures],
        "timings_ms": {
            label: {
                **{key: round(value, 3) for key, value in summary(values).items()},
                "samples": [round(value, 3) for value in values],
            }
            for label, values in samples.items()
        },
        "rss_mib": {label: round(value, 1) for label, value in resident.items()},
    }
    RESULTS_PATH.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    started = time.perf_counter()
    about = machine()
    try:
        figures, samples, resident = run_all(bench_config_text())
    except BenchError as error:
        print(f"bench: FAILED: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(
        f"\nstovectl benchmarks: Python {about['python']}, {about['cpus']} CPU(s), "
        f"load {about['load_average_1m']:.2f} at start, {seconds:.0f} s\n"
        "ratio = value / floor; both measured in this run, on this interpreter\n"
    )
    print(format_table(figures))
    missed = [figure.name for figure in figures if figure.meets_target is False]
    if missed:
        print(f"\ntarget missed: {', '.join(dict.fromkeys(missed))}")
    try:
        write_results(figures, samples, resident, seconds, about)
    except OSError as error:
        print(f"bench: FAILED: cannot write {RESULTS_PATH}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"\nwrote {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
