"""`stovectl doctor` for MQTT: the broker and each MQTT relay, against a real Mosquitto."""

from __future__ import annotations

import asyncio
import itertools
import tomllib

from stovectl.settings import MqttDeviceSettings, Settings, settings_from_mapping
from stovectl.sim.mqtt_device import SimulatedMqttDevice
from stovectl.sim.runner import mqtt_options
from stovectl.tools.doctor import DeviceReport, diagnose, format_reports
from tests.support.broker import PASSWORDS, Broker, running_broker

_topics = itertools.count(1)


def config(broker: Broker, *, login: str = "", preset_table: str | None = None) -> Settings:
    topic = f"doctor{next(_topics)}"
    table = preset_table or f'preset = "tasmota"\ntopic = "{topic}"\nchannels = 2'
    text = f"""\
[[devices]]
id = "relay"
kind = "mqtt"
{table}
timeout = "500ms"

[[burners]]
id = "left"
device = "relay"
channel = 1

[mqtt]
host = "{broker.host}"
port = {broker.port}
connect_timeout = "2s"
{login}
"""
    return settings_from_mapping(tomllib.loads(text), source="<test>")


def checks(report: DeviceReport) -> list[tuple[str, str]]:
    return [(check.step, check.verdict.value) for check in report.checks]


async def with_device(settings: Settings, *, offline: bool = False) -> list[DeviceReport]:
    """Run the doctor while the config's relay is simulated on the broker."""
    assert settings.mqtt is not None
    device_settings = settings.devices[0]
    assert isinstance(device_settings, MqttDeviceSettings)
    device = SimulatedMqttDevice(device_settings, mqtt_options(settings.mqtt, "relay"))
    await device.start()
    try:
        if offline:
            await device.go_offline()
        return await diagnose(settings)
    finally:
        await device.close()


def test_a_healthy_broker_and_relay_pass(broker: Broker) -> None:
    """Connected, publish accepted, the relay online, and its channels read with meaning."""
    broker_report, relay_report = asyncio.run(with_device(config(broker)))

    assert checks(broker_report) == [("connect", "ok"), ("publish", "ok")]
    assert checks(relay_report) == [("available", "ok"), ("state", "ok")]
    assert relay_report.checks[1].message == "channel 1 off (left: armed), channel 2 off"
    assert relay_report.kind == "mqtt tasmota"


def test_an_offline_relay_fails_available(broker: Broker) -> None:
    """A relay whose last will says offline fails "available", and state is skipped."""
    _broker_report, relay_report = asyncio.run(with_device(config(broker), offline=True))

    assert checks(relay_report) == [("available", "FAIL"), ("state", "skip")]
    assert "offline" in relay_report.checks[0].message


def test_a_missing_relay_fails_state(broker: Broker) -> None:
    """No device on the topic: nothing said of availability, and no state report."""
    broker_report, relay_report = asyncio.run(diagnose(config(broker)))

    assert broker_report.ok
    assert checks(relay_report) == [("available", "warn"), ("state", "FAIL")]
    assert "no state report" in relay_report.checks[1].message


def test_a_wrong_password_fails_connect_and_names_the_refusal() -> None:
    """The broker's refusal is the verdict; the relays are skipped, not failed twice."""
    with running_broker("password") as broker:
        login = 'username = "stovectl"\npassword = "wrong"'
        broker_report, relay_report = asyncio.run(diagnose(config(broker, login=login)))

    assert checks(broker_report) == [("connect", "FAIL")]
    assert "refused" in broker_report.checks[0].message
    assert checks(relay_report) == [("available", "skip")]


def test_a_base_topic_the_acl_denies_fails_publish() -> None:
    """Under MQTT 5 a denied test publish fails, and says the daemon publishes there."""
    with running_broker("password") as broker:
        login = (f'username = "stovectl"\npassword = "{PASSWORDS["stovectl"]}"\n'
                 'base_topic = "denied/kitchen"')
        reports = asyncio.run(diagnose(config(broker, login=login)))

    assert checks(reports[0]) == [("connect", "ok"), ("publish", "FAIL")]
    assert "denied/kitchen/" in reports[0].checks[1].message


def test_the_summary_names_the_broker_apart_from_the_devices(broker: Broker) -> None:
    """The last line counts relays as devices and the broker as the broker."""
    reports = asyncio.run(with_device(config(broker)))

    assert format_reports(reports).splitlines()[-1] == (
        "doctor: all 1 device(s) and the MQTT broker passed")
    failed = asyncio.run(diagnose(config(broker)))
    assert format_reports(failed).splitlines()[-1] == "doctor: relay failed a check"
