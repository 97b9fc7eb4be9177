"""The real daemon under a fake systemd: READY, STATUS, WATCHDOG and STOPPING, and exit 78.

``stovectl run`` is a subprocess with ``NOTIFY_SOCKET`` (and ``WATCHDOG_USEC``)
pointing at a datagram socket this test holds (tests.support.notify), as
systemd would set them for ``Type=notify``. Relays are the miIO simulator on
127.0.20.x, so what a relay does across the daemon's stop can be read at the
device.
"""

from __future__ import annotations

import itertools
import signal
import subprocess

import pytest

from stovectl.control.client import ControlClient
from stovectl.devices.base import RelayState
from tests.support.daemon import STOP_TIMEOUT_SECONDS, hob_config, ping, running_daemon
from tests.support.notify import Notice, notify_listener
from tests.support.relay_sim import RelayConfig, miio_config, running_simulator

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

ON, OFF = RelayState.ON, RelayState.OFF
WATCHDOG_SECONDS = 1.0


def test_ready_only_once_the_socket_listens_and_every_device_was_probed() -> None:
    """At the moment READY=1 arrives, the socket answers and both relays have been read."""
    config = miio_config({
        "a": RelayConfig("127.0.20.1", ("left",)),
        "b": RelayConfig("127.0.20.2", ("right",)),
    })
    seen_at_ready: dict[str, object] = {}

    def look(notice: Notice) -> None:
        if notice.says("READY", "1"):
            seen_at_ready["ping"] = ping(daemon.socket_path)
            with ControlClient(daemon.socket_path, timeout_seconds=2) as client:
                seen_at_ready["burners"] = client.call("status")["result"]["burners"]

    with (
        running_simulator(config) as simulator,
        notify_listener(look) as listener,
        running_daemon(config, {"NOTIFY_SOCKET": str(listener.path)}, start=False) as daemon,
    ):
        # Slow answers: a READY sent before the devices were read would be caught out.
        simulator.set("a", delay=0.1)
        simulator.set("b", delay=0.1)
        daemon.launch()
        ready = listener.wait_for("READY", "1")

        assert not listener.hook_errors, listener.hook_errors
        assert seen_at_ready["ping"] is True
        burners = seen_at_ready["burners"]
        assert isinstance(burners, list)
        assert [(b["id"], b["device_online"], b["relay"]) for b in burners] == [
            ("left", True, "armed"), ("right", True, "armed"),
        ], burners
        assert ready.fields["STATUS"] == "2 burners: 2 armed; 2/2 devices online"
        assert listener.notices[0] is ready, "nothing may come before READY=1"


def test_watchdog_pings_at_half_the_interval_while_healthy() -> None:
    with (
        notify_listener() as listener,
        running_daemon(hob_config(), {
            "NOTIFY_SOCKET": str(listener.path),
            "WATCHDOG_USEC": str(int(WATCHDOG_SECONDS * 1_000_000)),
        }),
    ):
        listener.wait_for("READY", "1")
        pings = listener.saying("WATCHDOG", "1")
        while len(pings) < 5:
            listener.wait_for("WATCHDOG", "1", timeout=WATCHDOG_SECONDS)
            pings = listener.saying("WATCHDOG", "1")

        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(pings)]
        assert all(0.3 < gap < 0.8 for gap in gaps), gaps


def test_a_watchdog_for_another_pid_is_not_ours() -> None:
    """WATCHDOG_PID names the process to ping from; a child that inherited it stays quiet."""
    with (
        notify_listener() as listener,
        running_daemon(hob_config(), {
            "NOTIFY_SOCKET": str(listener.path),
            "WATCHDOG_USEC": "200000",
            "WATCHDOG_PID": "1",
        }) as daemon,
    ):
        ready = listener.wait_for("READY", "1")
        # STATUS= refreshes come from the same loop; one past READY shows it has turned.
        daemon.cli("off", "left")
        listener.wait_for("STATUS", "2 burners: 1 armed, 1 cut; 1/1 device online", timeout=15)

        assert listener.saying("WATCHDOG") == []
        assert ready.says("STATUS")


def test_sigterm_says_stopping_and_leaves_every_burner_as_intended() -> None:
    config = miio_config({"relay": RelayConfig("127.0.20.3", ("left", "right"))})
    with (
        running_simulator(config) as simulator,
        notify_listener() as listener,
        running_daemon(config, {"NOTIFY_SOCKET": str(listener.path)}) as daemon,
    ):
        listener.wait_for("READY", "1")
        assert daemon.cli("lock", "left").returncode == 0
        switches_before = len(simulator.switches("relay", 1) + simulator.switches("relay", 2))
        assert daemon.process is not None
        process = daemon.process
        process.send_signal(signal.SIGTERM)
        stopping = listener.wait_for("STOPPING", "1")
        code = process.wait(timeout=STOP_TIMEOUT_SECONDS)
        daemon.process = None

        assert code == 0, daemon.log
        assert stopping.fields["STATUS"].startswith("stopping")
        # NC wiring: left locked stays cut (ON), right stays armed (OFF), nothing switched.
        assert simulator.state("relay", 1) is ON and simulator.state("relay", 2) is OFF
        assert not simulator.loop_closed("left") and simulator.loop_closed("right")
        after = len(simulator.switches("relay", 1) + simulator.switches("relay", 2))
        assert after == switches_before


def test_a_bad_config_exits_78_before_ready() -> None:
    bad = hob_config(extra='[daemon]\nlog_levle = "debug"\n')
    with (
        notify_listener() as listener,
        running_daemon(bad, {"NOTIFY_SOCKET": str(listener.path)}, start=False) as daemon,
    ):
        process = daemon.launch()
        try:
            code = process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        daemon.process = None
        listener.flush()

        assert code == 78, daemon.log
        assert "daemon.log_levle: unknown key" in daemon.log
        assert listener.notices == []
