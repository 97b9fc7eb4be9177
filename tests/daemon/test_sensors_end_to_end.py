"""Sensors through a real Mosquitto into the real daemon: a gas leak latches the hob.

The daemon (``stovectl run``) runs on the simulated relays as a subprocess; the
gas detector is a Zigbee2MQTT-style publisher on a real broker; the CLI talks
to the daemon over the real Unix socket. Every wait polls an observable state
with a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.support.broker import Broker
from tests.support.daemon import hob_config, running_daemon
from tests.support.mqtt_probe import Probe

PIN = "2468"
GAS_TOPIC = "zigbee2mqtt/kitchen_gas"


@pytest.fixture
def probe(broker: Broker) -> Iterator[Probe]:
    client = Probe(broker)
    client.start()
    client.connack()
    yield client
    client.close()


def sensors_config(broker: Broker) -> str:
    return hob_config(
        remote=f'allow_relax = true\npin = "{PIN}"\nrelax_ttl = "30s"',
        extra=f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}
reconnect_max_interval = "500ms"

[[sensors]]
id = "kitchen_gas"
kind = "gas"
source = "mqtt"
topic = "{GAS_TOPIC}"
field = "gas"
""",
    )


def hazard_locked(burners: dict[str, dict[str, object]]) -> bool:
    return all(b["mode"] == "locked" and b["lock_reason"] == "hazard" and b["relay"] == "cut"
               for b in burners.values())


def test_a_gas_leak_latches_the_hob_until_a_local_unlock(broker: Broker, probe: Probe) -> None:
    """Gas on MQTT locks both burners within 1 s; a remote unlock (PIN and all) is refused;
    a local unlock is refused while gas is detected, and works once it cleared."""
    with running_daemon(sensors_config(broker)) as daemon:
        published = time.time()
        probe.client.publish(GAS_TOPIC, json.dumps({"gas": True}), qos=1, retain=True)
        daemon.wait_for(hazard_locked, 5, "both burners locked for the hazard")
        locks = [e for e in daemon.history() if e["kind"] == "lock"]
        assert {e["burner"] for e in locks} == {"left", "right"}
        assert all(e["source"] == "hazard" and e["result"] == "verified" for e in locks)
        assert max(e["time"] for e in locks) - published < 1.0
        [gas] = daemon.json("status")["sensors"]
        assert (gas["id"], gas["value"], gas["available"]) == ("kitchen_gas", True, True)
        shown = daemon.cli("status").stdout
        assert "! GAS DETECTED by kitchen_gas: every burner locked" in shown
        assert "locked (hazard)" in shown

        command = {"action": "unlock", "pin": PIN, "ts": time.time(), "id": "remote-unlock"}
        probe.client.publish("stovectl/testhob/all/set", json.dumps(command), qos=1)
        refused = daemon.wait_for_event("refused", "left", "mqtt", timeout=5)
        assert refused[0]["reason"] == "hazard_local_only"

        result = daemon.cli("unlock", "all")
        assert result.returncode != 0
        assert "still detected" in result.stdout + result.stderr
        assert hazard_locked(daemon.burners())

        probe.client.publish(GAS_TOPIC, json.dumps({"gas": False}), qos=1, retain=True)
        daemon.wait_for(lambda _: any(e["kind"] == "hazard" and "no longer" in e["message"]
                                      for e in daemon.history()), 5, "the gas cleared")
        assert hazard_locked(daemon.burners())  # clearing alone unlocks nothing
        result = daemon.cli("unlock", "all")
        assert result.returncode == 0, result.stdout + result.stderr
        daemon.wait_for(lambda b: all(row["mode"] == "armed" and row["relay"] == "armed"
                                      for row in b.values()), 5, "both burners armed")


def test_a_daemon_starting_into_a_gas_leak_locks_at_once(broker: Broker, probe: Probe) -> None:
    """A retained gas detection from before the daemon started locks the hob at start."""
    probe.client.publish(GAS_TOPIC, json.dumps({"gas": True}), qos=1, retain=True)
    with running_daemon(sensors_config(broker)) as daemon:
        daemon.wait_for(hazard_locked, 5, "both burners locked for the hazard")
        hazard = [e for e in daemon.history() if e["kind"] == "hazard"]
        assert hazard and hazard[0]["actor"] == "kitchen_gas"
    probe.client.publish(GAS_TOPIC, b"", qos=1, retain=True)  # leave the broker clean
