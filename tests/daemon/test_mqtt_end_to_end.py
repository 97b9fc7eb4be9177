"""The real daemon driving MQTT relays through a real Mosquitto: the issue's acceptance tests.

The daemon (``stovectl run``) and the CLI are subprocesses on the real Unix
socket (tests.support.daemon); the broker is a real Mosquitto on a free
loopback port (tests.support.broker); the relays are ``stovectl simulate``'s
MQTT devices of every preset, run in this process (tests.support.relay_sim) so
a test reads the relay as a multimeter would. Every wait polls an observable
state with a deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from stovectl.devices.base import RelayState
from tests.support.broker import PASSWORDS, Broker, running_broker
from tests.support.daemon import DaemonProcess, running_daemon
from tests.support.mqtt_probe import Probe
from tests.support.relay_sim import RelaySimulator, running_simulator

ON, OFF = RelayState.ON, RelayState.OFF
CUT_HOLD = 2.0
_ids = itertools.count(1)

# Each preset's device table: the topic it lives on, and what else it needs.
DEVICES = {
    "tasmota": 'topic = "hob{n}"\nchannels = 2',
    "zigbee2mqtt": 'topic = "zigbee2mqtt/hob{n}"\nchannels = 2',
    "shelly": 'topic = "shelly/hob{n}"\nchannels = 2',
    "esphome": 'topic = "esphome/hob{n}"\nchannels = 2',
    "generic": (
        'command_topic = "relays/hob{n}/{{channel}}/set"\n'
        'state_topic = "relays/hob{n}/{{channel}}"\nchannels = 2'
    ),
}


def mqtt_config(broker: Broker, preset: str, *, device: str | None = None,
                login: str = "", remote: str = "") -> str:
    """Burners left and right on a two-channel relay of ``preset``, NC wiring, 2 s hold."""
    n = next(_ids)
    table = device or DEVICES[preset].format(n=n)
    return f"""\
[stove]
id = "e2e"
name = "MQTT hob"

[[devices]]
id = "relay"
kind = "mqtt"
preset = "{preset}"
{table}
timeout = "500ms"
poll_interval = "500ms"

[[burners]]
id = "left"
device = "relay"
channel = 1
cut_hold = "{CUT_HOLD:g}s"

[[burners]]
id = "right"
device = "relay"
channel = 2
cut_hold = "{CUT_HOLD:g}s"

[safety]
alarm_after = "1s"
retry_max_interval = "500ms"

[remote]
{remote}

[mqtt]
host = "{broker.host}"
port = {broker.port}
client_id = "stovectl-e2e-{n}"
reconnect_max_interval = "500ms"
{login}
"""


@contextlib.contextmanager
def kitchen(config: str) -> Iterator[tuple[RelaySimulator, DaemonProcess]]:
    """The simulated relays, then the daemon on the same config; stopped in reverse order."""
    with running_simulator(config) as simulator, running_daemon(config) as daemon:
        yield simulator, daemon


@pytest.mark.parametrize("preset", sorted(DEVICES))
def test_off_cuts_and_verifies_each_presets_relay(broker: Broker, preset: str) -> None:
    """`stovectl off left` exits 0 verified; the relay and the loop are cut; it re-arms."""
    with kitchen(mqtt_config(broker, preset)) as (simulator, daemon):
        daemon.wait_for(lambda b: b["left"]["relay"] == "armed", 5, "left seen armed")

        result = daemon.cli("off", "left")

        assert result.returncode == 0, result.stdout + result.stderr + daemon.log
        assert "verified" in result.stdout
        assert simulator.state("relay", 1) is ON
        assert not simulator.loop_closed("left")
        assert simulator.state("relay", 2) is OFF
        simulator.wait_state("relay", 1, OFF, CUT_HOLD + 5)
        daemon.wait_for(lambda b: b["left"]["mode"] == "armed", 5, "left re-armed")
        device = simulator.mqtt_device("relay")
        commands = simulator.call(lambda: list(device.commands))
        assert commands, "the device heard no command"
        assert not any(command.retain for command in commands)
        assert simulator.call(lambda: list(device.toggles)) == []


@pytest.mark.parametrize("preset", ["tasmota", "shelly"])
def test_a_shutoff_re_arms_even_if_the_daemon_dies(broker: Broker, preset: str) -> None:
    """Killed right after a verified off, the daemon leaves a relay that re-arms by itself."""
    with kitchen(mqtt_config(broker, preset)) as (simulator, daemon):
        daemon.wait_for(lambda b: b["left"]["relay"] == "armed", 5, "left seen armed")
        assert daemon.cli("off", "left").returncode == 0
        daemon.kill9()

        simulator.wait_state("relay", 1, OFF, CUT_HOLD + 5)
        assert simulator.loop_closed("left")


def test_a_lock_stays_cut_after_a_pulse(broker: Broker) -> None:
    """A lock right after a device-side pulse stays cut past the pulse's end (PulseTime 0)."""
    with kitchen(mqtt_config(broker, "tasmota")) as (simulator, daemon):
        daemon.wait_for(lambda b: b["left"]["relay"] == "armed", 5, "left seen armed")
        assert daemon.cli("off", "left").returncode == 0
        assert daemon.cli("lock", "left").returncode == 0
        device = simulator.mqtt_device("relay")

        with pytest.raises(AssertionError, match="not off within"):
            simulator.wait_state("relay", 1, OFF, CUT_HOLD + 1.5)
        assert simulator.call(lambda: device.pulse_time(1)) == 0
        assert daemon.burners()["left"]["mode"] == "locked"


def test_a_remote_off_is_verified_and_answered(broker: Broker) -> None:
    """OFF on stovectl/e2e/left/set with a response topic: relay cut, reply verified."""
    with kitchen(mqtt_config(broker, "tasmota")) as (simulator, daemon):
        daemon.wait_for(lambda b: b["left"]["relay"] == "armed", 5, "left seen armed")
        probe = Probe(broker)
        probe.start()
        try:
            probe.connack()
            probe.subscribe("remote/replies")
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho's hint gap
            properties.ResponseTopic = "remote/replies"
            properties.CorrelationData = b"e2e"
            probe.client.publish("stovectl/e2e/left/set", b"OFF", qos=1, properties=properties)
            reply = probe.next_message()
        finally:
            probe.close()

        assert reply.properties.CorrelationData == b"e2e"
        answer = json.loads(reply.payload)
        assert answer["ok"] is True, answer
        assert [o["result"] for o in answer["outcomes"]] == ["verified"]
        assert simulator.state("relay", 1) is ON
        [shutoff] = [e for e in daemon.history() if e["kind"] == "shutoff"]
        assert shutoff["source"] == "mqtt"


def test_a_command_the_broker_denies_is_a_failure() -> None:
    """A relay command the ACL forbids: `off` exits 1, the reason names the ACL, an alarm."""
    with running_broker("password") as broker:
        device = ('command_topic = "denied/hob/{channel}/set"\n'
                  'state_topic = "relays/hob/{channel}"\nchannels = 2')
        login = f'username = "stovectl"\npassword = "{PASSWORDS["stovectl"]}"'
        config = mqtt_config(broker, "generic", device=device, login=login)
        with running_daemon(config) as daemon:
            result = daemon.cli("off", "left")

            assert result.returncode == 1, result.stdout + daemon.log
            assert "not authorised" in result.stdout + result.stderr
            kinds = [event["kind"] for event in daemon.history()]
            assert "alarm" in kinds
