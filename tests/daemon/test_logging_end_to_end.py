"""The daemon's log as an operator reads it: one line per message, no secrets, changes once.

The real daemon at debug level, with every kind of secret the config knows (a miIO
token, the MQTT password on a real password-protected Mosquitto, the PIN), drives a
miIO relay on 127.0.20.31 that goes offline for a while and comes back.
"""

from __future__ import annotations

import re

import pytest

from tests.support.broker import PASSWORDS, running_broker
from tests.support.daemon import running_daemon
from tests.support.relay_sim import TOKEN, RelayConfig, miio_config, running_simulator

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

PIN = "739146"
LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def test_debug_logs_hold_no_secret_and_say_each_availability_change_once() -> None:
    with running_broker("password") as broker:
        config = miio_config({"relay": RelayConfig("127.0.20.31", ("left", "right"))})
        config += f"""
[remote]
pin = "{PIN}"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "stovectl"
password = "{PASSWORDS['stovectl']}"

[daemon]
log_level = "debug"
"""
        with running_simulator(config) as simulator, running_daemon(config) as daemon:
            assert daemon.cli("off", "left").returncode == 0
            simulator.set("relay", offline=True)
            daemon.wait_for_event("device_offline", None, "device", timeout=10)
            simulator.set("relay", offline=False)
            daemon.wait_for_event("device_online", None, "device", timeout=10)
            assert daemon.json("status")["mqtt"]["connected"] is True
            assert daemon.stop() == 0
            log = daemon.log

    for secret in (TOKEN, PASSWORDS["stovectl"], PIN):
        assert secret not in log
    assert log.count("device relay is offline") == 1, log
    assert log.count("device relay is back online") == 1, log
    lines = [line for line in log.splitlines() if line.strip()]
    strays = [line for line in lines if not LINE.match(line)
              and not line.startswith(("Traceback", "  "))]
    assert strays == [], strays
    assert any(line.startswith("DEBUG ") for line in lines)
