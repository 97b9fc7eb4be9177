"""The real daemon driving miIO relays over UDP, as in a kitchen: the issue's acceptance tests.

The daemon (``stovectl run``) and the CLI are real subprocesses on the real Unix
socket (tests.support.daemon); the relays are ``stovectl simulate``'s miIO
devices on 127.0.3.x, run in this process (tests.support.relay_sim) so a test
can switch faults and read a relay as a multimeter would. Where a test plays
Mi Home, it is python-miio itself. Every wait polls an observable state with a
deadline; the only fixed windows are a fault's duration and a relay shown to
stay put.
"""

from __future__ import annotations

import contextlib
import gc
import subprocess
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

# The class ``miio`` exports; named by module because it does not re-export it to mypy.
from miio.device import Device

from stovectl.control.client import ControlClient
from stovectl.devices.base import RelayState
from tests.bench.figures import percentile
from tests.support.daemon import STOVECTL, DaemonProcess, clean_environment, running_daemon
from tests.support.relay_sim import (
    TOKEN,
    RelayConfig,
    RelaySimulator,
    miio_config,
    running_simulator,
)

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

ON, OFF = RelayState.ON, RelayState.OFF
CUT_HOLD = 2.0
POLL_INTERVAL = 1.0
OFF_DELAY = (2, 3)
"""yeelink.switch.sw1 channel 1's off-delay property (siid 2, piid 3)."""
SWITCH = {"did": "left", "siid": 2, "piid": 1}
"""Channel 1's switch: with NC wiring (cut_state "on"), true cuts and false arms."""


@contextlib.contextmanager
def kitchen(
    relays: Mapping[str, RelayConfig], **options: str
) -> Iterator[tuple[RelaySimulator, DaemonProcess]]:
    """The simulated relays, then the daemon on the same config; stopped in reverse order."""
    config = miio_config(relays, **options)
    with running_simulator(config) as simulator, running_daemon(config) as daemon:
        yield simulator, daemon


def one_relay(host: str) -> dict[str, RelayConfig]:
    return {"relay": RelayConfig(host, ("left", "right"))}


def events(
    daemon: DaemonProcess, kind: str, burner: str, source: str | None = None
) -> list[dict[str, Any]]:
    return [
        event for event in daemon.history()
        if event["kind"] == kind and event["burner"] == burner
        and (source is None or event["source"] == source)
    ]


def mi_home(host: str, method: str, params: Any) -> Any:
    """One request from another miIO client, as the Mi Home app sends it."""
    try:
        return Device(host, TOKEN).send(method, params)
    finally:
        # Its unclosed sockets are collected here, under this module's warning filter.
        gc.collect()


def reads_armed(client: ControlClient, burner: str) -> bool:
    """Whether ``status`` shows the burner armed, its relay seen armed, and nothing pending."""
    reply = client.call("status")
    assert reply["ok"], reply
    [row] = [row for row in reply["result"]["burners"] if row["id"] == burner]
    return (row["mode"], row["relay"], row["pending"]) == ("armed", "armed", False)


def wait_until(moment: float) -> None:
    """Let a scenario's fixed duration pass (a fault lasting 20 s), on the monotonic clock."""
    while (left := moment - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


def test_off_cuts_the_relay_at_the_device() -> None:
    """`stovectl off left` exits 0 verified, and the relay and the stove's loop are cut."""
    with kitchen(one_relay("127.0.3.10")) as (simulator, daemon):
        result = daemon.cli("off", "left")

        assert result.returncode == 0, result.stderr + daemon.log
        assert "left" in result.stdout and "verified" in result.stdout
        assert simulator.state("relay", 1) is ON
        assert not simulator.loop_closed("left")
        assert simulator.state("relay", 2) is OFF and simulator.loop_closed("right")
        shutoffs = events(daemon, "shutoff", "left", "cli")
        assert [event["result"] for event in shutoffs] == ["verified"]


def test_shutoffs_are_verified_despite_packet_loss() -> None:
    """With 20 % of datagrams lost each way, at least 198 of 200 shutoffs are verified in 3 s.

    Every shutoff starts from an armed relay, so none is verified by a read-back alone:
    the 200 cycle through 24 burners on 12 relays, each re-armed (2 s hold) before its next.
    Four clients share them out, three relays each, so the run is bound by the holds rather
    than by one shutoff after another; no two clients share a device's lane.
    """
    relays = {
        f"relay{n}": RelayConfig(f"127.0.3.{40 + n}", (f"burner{2 * n}", f"burner{2 * n + 1}"))
        for n in range(12)
    }
    wiring = [(device, channel, burner) for device, relay in relays.items()
              for channel, burner in enumerate(relay.burners, start=1)]
    with kitchen(relays, cut_hold=f"{CUT_HOLD:g}s") as (simulator, daemon):
        for device in relays:
            simulator.set(device, loss_in=0.2, loss_out=0.2)  # seeded by the device id
        verified = {burner: 0 for _, _, burner in wiring}
        clients = 4

        def client_run(first: int) -> list[tuple[str, float]]:
            mine = [w for w in wiring if int(w[0].removeprefix("relay")) % clients == first]
            done: list[tuple[str, float]] = []
            with ControlClient(daemon.socket_path, timeout_seconds=30) as client:
                for n in range(200 // clients):
                    device, channel, burner = mine[n % len(mine)]
                    deadline = time.monotonic() + CUT_HOLD + 10
                    while not reads_armed(client, burner):
                        assert time.monotonic() < deadline, f"{burner} never re-armed"
                        time.sleep(0.05)  # polling the daemon's observed state, with a deadline
                    # NC wiring: the relay off is the burner armed, as a multimeter tells.
                    assert simulator.state(device, channel) is OFF, f"{burner} not armed"
                    started = time.perf_counter()
                    reply = client.call("off", burners=[burner])
                    took = time.perf_counter() - started
                    assert reply["ok"], reply
                    done.append((reply["result"]["outcomes"][0]["result"], took))
                    verified[burner] += done[-1][0] == "verified"
            return done

        with ThreadPoolExecutor(max_workers=clients) as pool:
            runs = list(pool.map(client_run, range(clients)))
        results = [result for run in runs for result, _ in run]
        seconds = [took for run in runs for _, took in run]
        assert len(results) == 200
        in_time = sum(
            1 for result, took in zip(results, seconds, strict=True)
            if result == "verified" and took <= 3.0
        )
        traffic = [simulator.miio_device(device).traffic for device in relays]
        datagrams, arrived = simulator.call(lambda: (
            sum(t.datagrams for t in traffic),
            sum(t.hellos + len(t.requests) + t.undecodable for t in traffic),
        ))
        lost_in = datagrams - arrived
        figures = (
            f"{in_time}/200 verified within 3 s; {results.count('verified')} verified in all; "
            f"latency median {percentile(seconds, 50) * 1000:.0f} ms, "
            f"p99 {percentile(seconds, 99) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms; "
            f"{lost_in} of {datagrams} datagrams lost on the way in"
        )
        print(f"\nloss test: {figures}")  # shown with -s: the figures the issue asks for

        assert in_time >= 198, figures
        assert lost_in > 0, "the loss fault was not in effect"
        # Each verified shutoff found its relay armed, so each switched it at the device.
        for device, channel, burner in wiring:
            cuts = [s for s in simulator.switches(device, channel) if s.state is ON]
            assert len(cuts) >= verified[burner], (burner, cuts, verified[burner])


def test_a_device_offline_for_20s_alarms_then_recovers_within_2s() -> None:
    """Offline for 20 s during a shutoff: an alarm meanwhile, and the cut verified 2 s after."""
    with kitchen(one_relay("127.0.3.12")) as (simulator, daemon):
        started = time.monotonic()
        offline_at = simulator.set("relay", offline=True)
        result = daemon.cli("off", "left")

        assert result.returncode == 1, result.stdout
        assert "left" in result.stderr and "'relay'" in result.stderr
        alarms = events(daemon, "alarm", "left")
        assert len(alarms) == 1 and offline_at + 9.5 <= alarms[0]["time"], alarms
        assert simulator.state("relay", 1) is OFF
        assert time.monotonic() - started < 20, "the alarm came too late to be seen meanwhile"

        wait_until(started + 20)
        online_at = simulator.set("relay", offline=False)
        recovered = daemon.wait_for_event("recovered", "left", "controller", timeout=5)
        print(  # shown with -s: the figures the issue asks for
            f"\noffline test: alarm {alarms[0]['time'] - offline_at:.2f} s after going offline, "
            f"cut verified {recovered[0]['time'] - online_at:.2f} s after coming back"
        )

        assert recovered[0]["time"] - online_at < 2.0, (recovered, online_at)
        assert alarms[0]["time"] < online_at
        assert recovered[0]["result"] == "verified"
        assert simulator.state("relay", 1) is ON


@pytest.mark.parametrize(
    ("fault", "host"), [("stuck", "127.0.3.13"), ("refuse_writes", "127.0.3.14")]
)
def test_a_relay_that_does_not_switch_fails_loudly(fault: str, host: str) -> None:
    """A stuck relay, or one refusing writes (-4005): `off left` exits 1, alarms, never succeeds."""
    with kitchen(one_relay(host), alarm_after="2s") as (simulator, daemon):
        simulator.set("relay", **{fault: True})
        since = time.time()
        result = daemon.cli("off", "left")

        assert result.returncode == 1, result.stdout
        assert "left" in result.stderr and "'relay'" in result.stderr
        # The operator can tell a refusal from a relay that does not move.
        assert ("-4005" in result.stderr) is (fault == "refuse_writes"), result.stderr
        assert [e for e in events(daemon, "alarm", "left") if e["time"] >= since]
        # Retrying goes on (rule 3): more writes arrive after the CLI gave up.
        device = simulator.miio_device("relay")
        writes = simulator.call(
            lambda: sum(r["method"] == "set_properties" for r in device.traffic.requests)
        )
        daemon.wait_for(
            lambda _: simulator.call(
                lambda: sum(r["method"] == "set_properties" for r in device.traffic.requests)
            ) > writes + 2,
            timeout=10, what="more writes after the CLI gave up",
        )
        burner = daemon.burners()["left"]
        assert burner["pending"] and burner["alarm"] and burner["relay"] == "armed", burner
        assert [e["result"] for e in events(daemon, "shutoff", "left")] == ["failed"]
        assert simulator.state("relay", 1) is OFF


def test_a_dead_device_does_not_slow_shutoffs_on_another() -> None:
    """With a cut pending on a dead device, 100 shutoffs on a healthy one have p99 < 50 ms."""
    relays = {
        "relay": RelayConfig("127.0.3.15", ("left", "right")),
        "dead": RelayConfig("127.0.3.16", ("back",), model="generic.relay.1"),
    }
    with kitchen(relays) as (simulator, daemon):
        simulator.set("dead", offline=True)
        pending = subprocess.Popen(
            [str(STOVECTL), "--socket", str(daemon.socket_path), "off", "back"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=clean_environment(),
        )
        try:
            daemon.wait_for(
                lambda b: b["back"]["pending"] and b["back"]["device_online"] is False,
                timeout=5, what="a cut pending on the dead device",
            )
            milliseconds = []
            with ControlClient(daemon.socket_path, timeout_seconds=30) as client:
                for _ in range(100):
                    started = time.perf_counter()
                    reply = client.call("off", burners=["left"])
                    milliseconds.append((time.perf_counter() - started) * 1000)
                    assert reply["ok"] and reply["result"]["outcomes"][0]["result"] == "verified"
            p99 = percentile(milliseconds, 99)
            print(f"\ndead-device test: p99 {p99:.1f} ms, max {max(milliseconds):.1f} ms")

            assert p99 < 50, sorted(milliseconds)[-5:]
            assert daemon.burners()["back"]["pending"], "the dead device's cut stopped retrying"
            assert pending.wait(timeout=15) == 1
        finally:
            if pending.poll() is None:
                pending.kill()
                pending.wait()


def test_a_relay_switched_by_mi_home_is_an_external_shutoff() -> None:
    """Another miIO client's cut is an external shutoff within two polls, re-armed after hold."""
    with kitchen(one_relay("127.0.3.17")) as (simulator, daemon):
        before = time.time()
        reply = mi_home("127.0.3.17", "set_properties", [{**SWITCH, "value": True}])

        assert reply == [{**SWITCH, "code": 0}]
        cut = simulator.switches("relay", 1)[-1]
        assert cut.state is ON
        shutoffs = daemon.wait_for_event("shutoff", "left", "external", timeout=5)
        assert shutoffs[0]["time"] - before < 2 * POLL_INTERVAL, shutoffs
        assert shutoffs[0]["result"] == "verified"

        rearmed_at = simulator.wait_state("relay", 1, OFF, timeout=CUT_HOLD + 2 * POLL_INTERVAL + 2)
        assert CUT_HOLD <= rearmed_at - cut.at < CUT_HOLD + 2 * POLL_INTERVAL + 0.5
        rearms = daemon.wait_for_event("rearm", "left", "external", timeout=5)
        assert [event["result"] for event in rearms] == ["verified"]
        assert simulator.loop_closed("left")


def test_a_locked_burner_switched_back_on_is_cut_again() -> None:
    """A locked burner armed by another miIO client is cut again within 2 s, as tampering."""
    with kitchen(one_relay("127.0.3.18")) as (simulator, daemon):
        assert daemon.cli("lock", "left").returncode == 0
        assert simulator.state("relay", 1) is ON

        reply = mi_home("127.0.3.18", "set_properties", [{**SWITCH, "value": False}])
        assert reply == [{**SWITCH, "code": 0}]
        armed = simulator.switches("relay", 1)[-1]
        assert armed.state is OFF
        cut_at = simulator.wait_state("relay", 1, ON, timeout=5)

        assert cut_at - armed.at < 2.0
        tampers = daemon.wait_for_event("tamper", "left", "external", timeout=5)
        assert tampers[0]["reason"] == "lock"
        burner = daemon.burners()["left"]
        assert burner["mode"] == "locked" and burner["relay"] == "cut", burner
        assert not simulator.loop_closed("left")


def test_a_shutoff_rearms_at_the_device_after_kill9() -> None:
    """NC wiring on yeelink.switch.sw1: after `off left` and kill -9, the relay re-arms itself."""
    with kitchen(one_relay("127.0.3.19")) as (simulator, daemon):
        result = daemon.cli("off", "left")
        assert result.returncode == 0, result.stderr
        daemon.kill9()

        cut = simulator.switches("relay", 1)[-1]
        assert cut.state is ON
        assert simulator.value("relay", OFF_DELAY) == CUT_HOLD
        rearmed_at = simulator.wait_state("relay", 1, OFF, timeout=CUT_HOLD + 2)
        assert CUT_HOLD - 0.05 <= rearmed_at - cut.at < CUT_HOLD + 0.5
        assert simulator.loop_closed("left")


def test_a_lock_holds_after_kill9() -> None:
    """`lock left` during a shutoff's pulse, then kill -9: the relay stays cut (no lock pulses)."""
    with kitchen(one_relay("127.0.3.20")) as (simulator, daemon):
        assert daemon.cli("off", "left").returncode == 0
        assert simulator.value("relay", OFF_DELAY) == CUT_HOLD  # the pulse is running
        result = daemon.cli("lock", "left")
        assert result.returncode == 0, result.stderr
        daemon.kill9()
        locked_at = time.monotonic()

        assert simulator.value("relay", OFF_DELAY) == -1
        # Shown by watching: past the pulse's end and a margin, the relay never switched back.
        while time.monotonic() < locked_at + CUT_HOLD + 1.5:
            assert simulator.state("relay", 1) is ON
            time.sleep(0.05)  # sampling a window in which nothing may happen
        assert [s.state for s in simulator.switches("relay", 1)] == [OFF, ON]
        assert not simulator.loop_closed("left")


def test_a_voice_button_switched_by_mi_home_starts_a_countdown() -> None:
    """A Mi Home scene switching the spare channel on starts the countdown (source voice)."""
    relays = {"relay": RelayConfig("127.0.3.30", ("left",))}
    voice = '\n[[voice]]\ndevice = "relay"\nchannel = 2\naction = "timer left 10m"\n'
    config = miio_config(relays) + voice
    with running_simulator(config) as simulator, running_daemon(config) as daemon:
        switched = time.monotonic()
        mi_home("127.0.3.30", "set_properties", [{"did": "button", "siid": 3, "piid": 1,
                                                  "value": True}])
        released = simulator.wait_state("relay", 2, OFF, timeout=2 * POLL_INTERVAL + 1)
        assert released - switched <= 2 * POLL_INTERVAL + 0.5
        [countdown] = events(daemon, "countdown_set", "left", "voice")
        assert countdown["message"] == "left shuts off in 10m"
        left = daemon.burners()["left"]
        assert 590 < left["countdown"]["remaining"] <= 600
        assert left["countdown"]["source"] == "voice"
