"""``stovectl doctor`` for MQTT: the broker, then each ``kind = "mqtt"`` relay.

Doctor opens its own connection with the daemon's settings (its own client id,
a clean session and no last will, so a running daemon is not disturbed) and
reads each relay through the daemon's own MQTT relay code, so what passes here
works there. For the broker: connected (the refusal named if not), and a test
publish under the base topic acknowledged (MQTT 5 says when an ACL denies it).
For each relay: available (what its availability topic says) and state (every
channel reports, after the firmware's own query). Nothing is switched.
"""

from __future__ import annotations

import dataclasses

from stovectl.devices.mqtt import MqttRelay
from stovectl.errors import DeviceError
from stovectl.mqtt.connection import MqttConnection, MqttError
from stovectl.mqtt.options import options_from_settings
from stovectl.settings import MqttDeviceSettings, Settings
from stovectl.tools.doctor import DeviceReport, Verdict, describe_channels, detail


async def diagnose_mqtt(settings: Settings) -> list[DeviceReport]:
    """The broker's report, then one per MQTT relay; empty without ``[mqtt]``."""
    mqtt = settings.mqtt
    if mqtt is None:
        return []
    options = dataclasses.replace(
        options_from_settings(mqtt, "", will_topic=None,
                              client_id=f"stovectl-doctor-{settings.stove.id}"),
        clean_start=True, session_expiry_seconds=0,
    )
    connection = MqttConnection(options)
    devices = [d for d in settings.devices if isinstance(d, MqttDeviceSettings)]
    relays = {d.id: MqttRelay(d, connection, settings.mqtt_base_topic) for d in devices}
    for relay in relays.values():
        await relay.start()
    broker = DeviceReport(f"{mqtt.host}:{mqtt.broker_port}", "mqtt broker")
    try:
        connected = await connection.start(wait_seconds=mqtt.connect_timeout.total_seconds())
        if not connected:
            why = connection.refusal or (
                f"no answer within {mqtt.connect_timeout.total_seconds():g}s (connect_timeout)"
                "; is the broker running, and are host and port right?")
            broker.add("connect", Verdict.FAIL, why)
            reports = [broker]
            for device in devices:
                report = DeviceReport(device.id, "mqtt")
                report.add("available", Verdict.SKIP, "skipped: the broker is not connected")
                reports.append(report)
            return reports
        broker.add("connect", Verdict.OK, f"connected as {options.client_id!r}, MQTT "
                   f"{mqtt.protocol}{' over TLS' if mqtt.tls else ''}")
        await _publish_check(connection, settings, broker)
        reports = [broker]
        for device in devices:
            reports.append(await _relay_checkup(device, relays[device.id], settings))
        return reports
    finally:
        for relay in relays.values():
            await relay.close()
        await connection.close()


async def _publish_check(
    connection: MqttConnection, settings: Settings, report: DeviceReport
) -> None:
    topic = f"{settings.mqtt_base_topic}/doctor"
    try:
        await connection.publish(topic, b"doctor")
    except MqttError as error:
        report.add("publish", Verdict.FAIL, f"{error}; the daemon publishes its state and "
                   f"events under {settings.mqtt_base_topic}/: allow it in the broker's ACL")
        return
    if connection.is_v5:
        report.add("publish", Verdict.OK, f"the broker accepted a message on {topic}")
    else:
        report.add("publish", Verdict.WARN, f"sent to {topic}, but under MQTT 3.1.1 a "
                   "broker acknowledges even what its ACL denies: nothing proves it was allowed")


async def _relay_checkup(
    device: MqttDeviceSettings, relay: MqttRelay, settings: Settings
) -> DeviceReport:
    report = DeviceReport(device.id, f"mqtt {device.preset}")
    # Reading asks the firmware and waits for its reports; its retained availability
    # word arrives with them, so both are known afterwards.
    states, failure = None, None
    try:
        states = await relay.read()
    except DeviceError as error:
        failure = error
    if relay.available is False:
        report.add("available", Verdict.FAIL, "the device says it is offline (its last will); "
                   "is it powered and on the network?")
        report.add("state", Verdict.SKIP, "skipped: available failed")
        return report
    if relay.available is None:
        report.add("available", Verdict.WARN, "the device said nothing about its availability; "
                   "is topic right?")
    else:
        report.add("available", Verdict.OK, "the device says it is online")
    if failure is not None or states is None:
        report.add("state", Verdict.FAIL, detail(failure) if failure else "no state")
        return report
    burners = [b for b in settings.burners if b.device == device.id]
    report.add("state", Verdict.OK, describe_channels(states, burners))
    return report
