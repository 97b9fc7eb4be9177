"""`stovectl simulate`: the config's miIO relays on loopback, wired to a simulated stove."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import queue
import signal
import socket
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The class ``miio`` exports; named by module because it does not re-export it to mypy.
from miio.device import Device

from stovectl.devices.base import RelayState
from stovectl.mqtt.connection import MqttConnection
from stovectl.mqtt.options import options_from_settings
from stovectl.sensors.miot import MiotSensors
from stovectl.sensors.mqtt import MqttSensors
from stovectl.settings import (
    MiotSensorSettings,
    MqttSensorSettings,
    Settings,
    settings_from_mapping,
)
from stovectl.sim.runner import (
    DEVICE_ID_MASK,
    Simulation,
    SimulationRefused,
    device_id_for,
)
from tests.support.broker import free_port, running_broker
from tests.support.daemon import STOVECTL, clean_environment
from tests.support.mqtt_probe import Probe
from tests.support.relay_sim import TOKEN, RelayConfig, miio_config
from tests.support.sensor_input import RecordingInput

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

ON, OFF = RelayState.ON, RelayState.OFF
LINE_TIMEOUT_SECONDS = 10.0
HOB = {"relay": RelayConfig("127.0.3.30", ("left", "right"))}


def settings(text: str) -> Settings:
    return settings_from_mapping(tomllib.loads(text), source="<test>")


def mixed_config() -> str:
    """A relay on 127.0.3.31 with NC ``left`` and NO ``right``, and an in-process device."""
    text = miio_config({"relay": RelayConfig("127.0.3.31", ("left",))}).replace(
        '[safety]', '''[[devices]]
id = "sim"
kind = "simulated"

[[burners]]
id = "right"
device = "relay"
channel = 2
cut_state = "off"

[[burners]]
id = "back"
device = "sim"

[safety]''')
    return text


def mqtt_config(port: int, *, connect_timeout: str = "5s", login: str = "") -> str:
    """A two-burner hob on a Tasmota relay (NC ``left``, NO ``right``) through a broker."""
    return f'''[stove]
id = "mqtthob"

[mqtt]
host = "127.0.0.1"
port = {port}
connect_timeout = "{connect_timeout}"
{login}
[[devices]]
id = "hob"
kind = "mqtt"
preset = "tasmota"
topic = "simhob"
channels = 2

[[burners]]
id = "left"
device = "hob"
channel = 1

[[burners]]
id = "right"
device = "hob"
channel = 2
cut_state = "off"
'''


# Derived device ids.


def test_device_ids_are_stable_and_fit_the_header() -> None:
    """The same config id gives the same non-zero 31-bit device id; another id, another."""
    first = device_id_for("relay", set())
    assert first == device_id_for("relay", set())
    assert 0 < first <= DEVICE_ID_MASK
    assert device_id_for("relay2", set()) != first


def test_device_ids_step_past_a_taken_one() -> None:
    """An id already taken (two config ids hashing alike) is stepped past, and recorded."""
    taken = {device_id_for("relay", set())}
    second = device_id_for("relay", taken)
    assert second not in {0, *taken - {second}}
    assert second == device_id_for("relay", set()) % DEVICE_ID_MASK + 1
    assert second in taken


# Building the simulation from the config.


@pytest.mark.parametrize("host", ["192.168.1.50", "10.0.0.2", "relay.local", "::1", "0.0.0.0"])
def test_hosts_outside_loopback_are_refused(host: str) -> None:
    """A host outside 127.0.0.0/8 is never simulated: the refusal names device and host."""
    config = miio_config({"relay": RelayConfig(host, ("left",))})
    with pytest.raises(SimulationRefused, match=rf"'relay'.*'{host}'.*loopback"):
        Simulation(settings(config))


def test_two_devices_on_one_address_are_refused() -> None:
    """Two devices on one loopback address are refused, naming both."""
    config = miio_config({
        "front": RelayConfig("127.0.3.32", ("left",)),
        "back": RelayConfig("127.0.3.32", ("right",)),
    })
    with pytest.raises(SimulationRefused, match=r"'front' and 'back' share host 127\.0\.3\.32"):
        Simulation(settings(config))


def test_a_config_without_miio_or_mqtt_devices_is_refused() -> None:
    """A config with only in-process simulated devices has nothing to simulate."""
    config = settings_from_mapping({
        "devices": [{"kind": "simulated", "id": "sim"}],
        "burners": [{"id": "left", "device": "sim"}],
    })
    with pytest.raises(SimulationRefused, match='no kind = "miio" or kind = "mqtt" device'):
        Simulation(config)


def test_each_device_has_the_configured_address_token_model_and_id() -> None:
    """A device per miIO device: its host, port 54321, model and the id derived from its id."""
    simulation = Simulation(settings(mixed_config()))

    assert set(simulation.devices) == {"relay"}
    device = simulation.devices["relay"]
    assert (device.host, device.port, device.model) == ("127.0.3.31", 54321, "yeelink.switch.sw1")
    assert device.device_id == device_id_for("relay", set())
    assert simulation.stove.burner_ids == ("left", "right")
    assert simulation.describe() == [
        "simulating relay yeelink.switch.sw1 at 127.0.3.31:54321 (2 channels: left, right)"
    ]


def test_an_explicit_channel_mapping_is_simulated() -> None:
    """The config's channels (siid, piid) are the simulated device's switches."""
    config = miio_config({"relay": RelayConfig("127.0.3.33", ("left",), model="acme.relay.x3")})
    config = config.replace(
        'model = "acme.relay.x3"',
        'model = "acme.relay.x3"\nchannels = [{ siid = 5, piid = 1 }, { siid = 6, piid = 2 }, '
        "{ siid = 7, piid = 1 }]",
    )
    simulation = Simulation(settings(config))

    assert simulation.devices["relay"].spec.switches == ((5, 1), (6, 2), (7, 1))
    assert simulation.describe() == [
        "simulating relay acme.relay.x3 at 127.0.3.33:54321 (3 channels: left, unwired, unwired)"
    ]


def test_loops_follow_the_relays_through_each_burners_wiring() -> None:
    """NC ``left`` opens its loop when channel 1 is on; NO ``right`` when channel 2 is off."""
    simulation = Simulation(settings(mixed_config()))
    device, stove = simulation.devices["relay"], simulation.stove
    assert stove.snapshot("left").loop_closed and not stove.snapshot("right").loop_closed

    device.switch_by_hand(1, ON)
    device.switch_by_hand(2, ON)

    assert not stove.snapshot("left").loop_closed
    assert stove.snapshot("right").loop_closed


def test_switches_are_reported_per_burner() -> None:
    """Each burner's loop is said at once, then on every switch of its channel."""
    simulation = Simulation(settings(mixed_config()))
    lines: list[str] = []
    simulation.report_switches(lines.append)
    simulation.devices["relay"].switch_by_hand(1, ON)

    assert lines == [
        "left: relay channel 1 off: armed (loop closed)",
        "right: relay channel 2 off: CUT (loop open)",
        "left: relay channel 1 on: CUT (loop open)",
    ]


def test_mqtt_devices_connect_to_the_configured_broker_with_its_login(tmp_path: Path) -> None:
    """An mqtt device gets the [mqtt] host, port, user, password and TLS files, and its own id."""
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("-", encoding="utf-8")
    login = f'''username = "device"
password = "device-secret"
tls = {{ ca_file = "{tmp_path}/ca.pem", cert_file = "{tmp_path}/cert.pem", \
key_file = "{tmp_path}/key.pem" }}
'''
    simulation = Simulation(settings(mqtt_config(18883, login=login)))

    options = simulation.mqtt_devices["hob"].options
    assert (options.host, options.port, options.client_id) == (
        "127.0.0.1", 18883, "stovectl-sim-hob")
    assert (options.username, options.password) == ("device", "device-secret")
    assert options.tls
    assert (options.ca_file, options.cert_file, options.key_file) == (
        f"{tmp_path}/ca.pem", f"{tmp_path}/cert.pem", f"{tmp_path}/key.pem")
    assert (options.will_topic, options.will_payloads) == ("tele/simhob/LWT", ("Online", "Offline"))
    assert simulation.describe() == [
        "simulating tasmota relay 'hob' via the MQTT broker at 127.0.0.1:18883: "
        "cmnd/simhob/POWER<n> -> stat/simhob/POWER<n> (2 channels: left, right)"
    ]


def test_miio_and_mqtt_relays_drive_one_stove() -> None:
    """miIO and MQTT devices of one config are both described, and both drive the stove."""
    text = miio_config({"relay": RelayConfig("127.0.3.35", ("front",))}) + """
[mqtt]
host = "127.0.0.1"

[[devices]]
id = "hob"
kind = "mqtt"
preset = "tasmota"
topic = "simhob"

[[burners]]
id = "left"
device = "hob"
"""
    simulation = Simulation(settings(text))
    lines: list[str] = []
    simulation.report_switches(lines.append)

    simulation.mqtt_devices["hob"].switch_by_hand(1, ON)
    simulation.devices["relay"].switch_by_hand(1, ON)

    assert simulation.stove.burner_ids == ("front", "left")
    assert [line.split(" (")[0] for line in simulation.describe()] == [
        "simulating relay yeelink.switch.sw1 at 127.0.3.35:54321",
        "simulating tasmota relay 'hob' via the MQTT broker at 127.0.0.1:1883: "
        "cmnd/simhob/POWER -> stat/simhob/POWER",
    ]
    assert lines == [
        "front: relay channel 1 off: armed (loop closed)",
        "left: relay channel 1 off: armed (loop closed)",
        "left: relay channel 1 on: CUT (loop open)",
        "front: relay channel 1 on: CUT (loop open)",
    ]


# `stovectl simulate` as a user runs it.


class Simulator:
    """``stovectl simulate`` as a subprocess, its output lines collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="simulate-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))

    def line(self) -> str:
        """The next line it prints, waiting at most LINE_TIMEOUT_SECONDS."""
        try:
            return self._lines.get(timeout=LINE_TIMEOUT_SECONDS)
        except queue.Empty:
            ended = "" if self.process.poll() is None else f" (it exited {self.finish()!r})"
            raise AssertionError(
                f"no line from `stovectl simulate` in {LINE_TIMEOUT_SECONDS}s{ended}"
            ) from None

    def finish(self) -> str:
        """Wait for the exit and return what it wrote to stderr."""
        assert self.process.stderr is not None
        self.process.wait(timeout=30)
        self._reader.join(timeout=5)
        return self.process.stderr.read()


@contextlib.contextmanager
def simulate(tmp_path: Path, config: str) -> Iterator[Simulator]:
    path = tmp_path / "stovectl.toml"
    path.write_text(config, encoding="utf-8")
    process = subprocess.Popen(
        [str(STOVECTL), "simulate", "--config", str(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=clean_environment(), text=True,
    )
    try:
        yield Simulator(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def mi_home(host: str, method: str, params: Any) -> Any:
    try:
        return Device(host, TOKEN, timeout=2).send(method, params)
    finally:
        gc.collect()  # python-miio's unclosed sockets, under this module's filter


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_simulate_serves_until_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    """It prints each device, answers miIO on its address, reports the cut, and exits 0."""
    with simulate(tmp_path, miio_config(HOB)) as simulator:
        assert simulator.line() == (
            "simulating relay yeelink.switch.sw1 at 127.0.3.30:54321 (2 channels: left, right)"
        )
        assert simulator.line() == "left: relay channel 1 off: armed (loop closed)"
        assert simulator.line() == "right: relay channel 2 off: armed (loop closed)"

        switch = {"did": "left", "siid": 2, "piid": 1}
        assert mi_home("127.0.3.30", "set_properties", [{**switch, "value": True}]) == [
            {**switch, "code": 0}
        ]
        assert simulator.line() == "left: relay channel 1 on: CUT (loop open)"
        [state] = mi_home("127.0.3.30", "get_properties", [switch])
        assert state["value"] is True

        simulator.process.send_signal(signum)
        assert simulator.finish() == ""
        assert simulator.process.returncode == 0


def test_simulate_refuses_a_real_network_address(tmp_path: Path) -> None:
    """A device on a LAN address: exit 2, naming it, and nothing listens."""
    config = miio_config({"relay": RelayConfig("192.168.1.50", ("left",))})
    with simulate(tmp_path, config) as simulator:
        stderr = simulator.finish()

    assert simulator.process.returncode == 2
    assert "'relay'" in stderr and "192.168.1.50" in stderr and "loopback" in stderr


def test_simulate_fails_when_the_address_is_taken(tmp_path: Path) -> None:
    """Another program on the device's address and port: exit 1, saying so."""
    config = miio_config({"relay": RelayConfig("127.0.3.34", ("left",))})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.3.34", 54321))
        with simulate(tmp_path, config) as simulator:
            stderr = simulator.finish()

    assert simulator.process.returncode == 1
    assert "'relay'" in stderr and "127.0.3.34:54321" in stderr and "in use" in stderr


def test_simulate_with_a_bad_config_exits_78(tmp_path: Path) -> None:
    """A config that does not load exits 78 before anything listens."""
    config = miio_config(HOB).replace('kind = "miio"', 'kind = "zwave"')
    with simulate(tmp_path, config) as simulator:
        stderr = simulator.finish()

    assert simulator.process.returncode == 78
    assert "stovectl.toml" in stderr and "devices" in stderr


def next_on(probe: Probe, topic: str) -> bytes:
    """The payload of the next message on ``topic``, passing over others."""
    while True:
        message = probe.next_message()
        if message.topic == topic:
            return bytes(message.payload)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_simulate_serves_mqtt_relays_until_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """It says preset and topics, obeys the broker's commands, reports the cut, and exits 0."""
    with running_broker("anonymous") as broker:
        probe = Probe(broker)
        probe.start()
        try:
            assert not probe.connack().is_failure
            probe.subscribe("stat/simhob/#")
            probe.subscribe("tele/simhob/LWT")
            with simulate(tmp_path, mqtt_config(broker.port)) as simulator:
                assert simulator.line() == (
                    f"simulating tasmota relay 'hob' via the MQTT broker at 127.0.0.1:"
                    f"{broker.port}: cmnd/simhob/POWER<n> -> stat/simhob/POWER<n> "
                    "(2 channels: left, right)"
                )
                assert simulator.line() == "left: relay channel 1 off: armed (loop closed)"
                assert simulator.line() == "right: relay channel 2 off: CUT (loop open)"
                assert next_on(probe, "tele/simhob/LWT") == b"Online"
                assert next_on(probe, "stat/simhob/POWER1") == b"OFF"  # at start

                probe.publish("cmnd/simhob/POWER1", b"ON")
                assert simulator.line() == "left: relay channel 1 on: CUT (loop open)"
                assert next_on(probe, "stat/simhob/POWER1") == b"ON"

                simulator.process.send_signal(signum)
                assert simulator.finish() == ""
                assert simulator.process.returncode == 0
                assert next_on(probe, "tele/simhob/LWT") == b"Offline"
        finally:
            probe.close()


def test_simulate_refuses_when_the_broker_cannot_be_reached(tmp_path: Path) -> None:
    """No broker on the configured port: exit 2, naming the device and the broker."""
    port = free_port()
    with simulate(tmp_path, mqtt_config(port, connect_timeout="500ms")) as simulator:
        stderr = simulator.finish()

    assert simulator.process.returncode == 2
    assert "cannot simulate" in stderr and "'hob'" in stderr and f"127.0.0.1:{port}" in stderr


# The config's sensors, simulated (each test on addresses of 127.0.13.x).


SENSOR_TOKEN = "0123456789abcdef0123456789abcdef"


def sensors_config(relay_host: str, sensors: str, *, mqtt_port: int | None = None) -> str:
    """A relay hob on ``relay_host`` with the given ``[[sensors]]`` (and a broker)."""
    text = miio_config({"relay": RelayConfig(relay_host, ("left", "right"))})
    if mqtt_port is not None:
        text += f'\n[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
    return text + sensors


def miot_sensor(sensor_id: str, host: str, kind: str, siid: int, **fields: Any) -> str:
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in fields.items())
    return f'''
[[sensors]]
id = "{sensor_id}"
source = "miot"
kind = "{kind}"
host = "{host}"
siid = {siid}
piid = 1
poll_interval = "50ms"
timeout = "150ms"
{extra}'''


def test_miot_sensors_are_served_on_the_relay_or_a_device_of_their_own() -> None:
    """A sensor on the relay's host is a property of that simulator; elsewhere, a new device."""
    config = sensors_config("127.0.13.2", miot_sensor(
        "probe", "127.0.13.2", "flame", 10, token=TOKEN, burner="left", on_above=80
    ) + miot_sensor("gas", "127.0.13.3", "gas", 2, token=SENSOR_TOKEN)
      + miot_sensor("smoke", "127.0.13.3", "smoke", 3, token=SENSOR_TOKEN))
    simulation = Simulation(settings(config))

    probe, gas = simulation.miot_sensors["probe"], simulation.miot_sensors["gas"]
    assert probe.device is simulation.devices["relay"]
    assert probe.value == 25.0  # the cold thermocouple, in °C
    assert set(simulation.sensor_devices) == {"127.0.13.3"}
    assert gas.device is simulation.sensor_devices["127.0.13.3"]
    assert simulation.miot_sensors["smoke"].device is gas.device
    gas.set(True)
    assert gas.device.values[(2, 1)] is True
    assert simulation.describe()[1:] == [
        "simulating MiOT sensor at 127.0.13.2:54321 (on relay 'relay'): "
        "flame probe serves temperature at siid 10 piid 1",
        "simulating MiOT sensor at 127.0.13.3:54321: gas gas serves true/false at siid 2 piid 1",
        "simulating MiOT sensor at 127.0.13.3:54321: "
        "smoke smoke serves true/false at siid 3 piid 1",
    ]


@pytest.mark.parametrize(
    ("sensors", "complaint"),
    [
        (miot_sensor("gas", "192.168.1.9", "gas", 2, token=TOKEN),
         r"sensor 'gas' has host '192\.168\.1\.9', not a loopback address"),
        (miot_sensor("gas", "127.0.13.4", "gas", 2, token=TOKEN),
         r"sensor 'gas' cannot be simulated: \(2, 1\) is a property of model yeelink"),
    ],
    ids=["lan-address", "relay-switch"],
)
def test_miot_sensors_that_cannot_be_simulated_are_refused(sensors: str, complaint: str) -> None:
    """A LAN address or a relay's own switch: refused, named (two tokens for one device are
    refused when the config loads)."""
    relay_host = "127.0.13.4"
    with pytest.raises(SimulationRefused, match=complaint):
        Simulation(settings(sensors_config(relay_host, sensors)))


def test_mqtt_sensors_sharing_a_topic_are_one_simulated_device() -> None:
    """Sensors on one topic share a publisher, described once with its fields."""
    config = sensors_config("127.0.13.6", '''
[[sensors]]
id = "motion"
source = "mqtt"
kind = "presence"
topic = "zigbee2mqtt/kitchen"
field = "occupancy"
availability_topic = "zigbee2mqtt/kitchen/availability"

[[sensors]]
id = "smoke"
source = "mqtt"
kind = "smoke"
topic = "zigbee2mqtt/kitchen"
field = "smoke"
''', mqtt_port=18883)
    simulation = Simulation(settings(config))

    assert simulation.mqtt_sensors["motion"] is simulation.mqtt_sensors["smoke"]
    assert simulation.mqtt_sensors["motion"].options.client_id == "stovectl-sim-sensor-motion"
    assert simulation.describe()[1:] == [
        "simulating MQTT sensors via the MQTT broker at 127.0.0.1:18883: zigbee2mqtt/kitchen: "
        "presence motion [occupancy], smoke smoke [smoke], "
        "availability zigbee2mqtt/kitchen/availability"
    ]


def test_a_config_with_only_sensors_to_simulate_is_accepted() -> None:
    """In-process relays and a MiOT gas detector: the detector alone is simulated."""
    config = settings_from_mapping({
        "devices": [{"kind": "simulated", "id": "sim"}],
        "burners": [{"id": "left", "device": "sim"}],
        "sensors": [{"source": "miot", "id": "gas", "kind": "gas", "host": "127.0.13.7",
                     "token": SENSOR_TOKEN, "siid": 2, "piid": 1}],
    })
    simulation = Simulation(config)
    assert simulation.devices == {}
    assert list(simulation.miot_sensors) == ["gas"]


def test_simulated_sensors_are_read_by_the_daemons_adapters() -> None:
    """Started, a MiOT gas detector and an MQTT flame probe are read as real ones would be."""
    with running_broker("anonymous") as broker:
        config = settings(sensors_config("127.0.13.8", miot_sensor(
            "gas", "127.0.13.9", "gas", 2, token=SENSOR_TOKEN) + '''
[[sensors]]
id = "flame"
source = "mqtt"
kind = "flame"
burner = "left"
topic = "esphome-hob/sensor/left_probe/state"
on_above = 80
off_below = 60
''', mqtt_port=broker.port))
        simulation = Simulation(config)
        target = RecordingInput()

        async def scenario() -> None:
            assert config.mqtt is not None
            connection = MqttConnection(options_from_settings(config.mqtt, "daemon", None))
            mqtt_sensors = MqttSensors(
                [s for s in config.sensors if isinstance(s, MqttSensorSettings)],
                connection, target)
            miot_sensors = MiotSensors(
                [s for s in config.sensors if isinstance(s, MiotSensorSettings)], None, target)
            await simulation.start()
            mqtt_sensors.attach()
            await connection.start(wait_seconds=5)
            await miot_sensors.start()
            try:
                await target.until(lambda: target.readings("gas")[-1:] == [False], "no gas")
                await target.until(lambda: target.readings("flame")[-1:] == [False], "cold")
                simulation.miot_sensors["gas"].set(True)
                await target.until(lambda: target.readings("gas")[-1:] == [True], "gas")
            finally:
                await miot_sensors.close()
                await mqtt_sensors.close()
                await connection.close()
                await simulation.close()

        asyncio.run(scenario())
