"""The ``[mqtt]`` broker connection and ``kind = "mqtt"`` relay devices."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from stovectl.settings.types import Duration, Identifier, StrictModel, read_secret

Preset = Literal["tasmota", "zigbee2mqtt", "shelly", "esphome", "generic"]
PRESETS: tuple[Preset, ...] = ("tasmota", "zigbee2mqtt", "shelly", "esphome", "generic")
TOPIC_FORBIDDEN = frozenset("#+\0")
MAX_CHANNELS = {"tasmota": 8, "zigbee2mqtt": 2, "shelly": 4, "esphome": 16, "generic": 16}


def check_topic(value: str, field: str) -> None:
    if not value or any(c in TOPIC_FORBIDDEN for c in value):
        raise ValueError(f"{field}: a topic must be non-empty, without '#', '+' or NUL")
    if value.startswith("/") or value.endswith("/"):
        raise ValueError(f"{field}: a topic must not begin or end with '/' ({value!r})")


class MqttTlsSettings(StrictModel):
    ca_file: Path | None = Field(
        None, description="CA certificate that signed the broker's; default: the system's."
    )
    cert_file: Path | None = Field(None, description="Client certificate, for brokers that ask.")
    key_file: Path | None = Field(None, description="The client certificate's private key.")

    @model_validator(mode="after")
    def _pair(self) -> MqttTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file: give both, or neither")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {str(path)!r} is not a readable file")
        return self


class MqttSettings(StrictModel):
    host: str = Field("127.0.0.1", min_length=1, description="The broker's host name or address.")
    port: int | None = Field(
        None, ge=1, le=65535, description="The broker's port; default 1883, or 8883 with TLS."
    )
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description='MQTT version: "5" (replies, reason codes) or "3.1.1".'
    )
    client_id: str = Field(
        "", max_length=64,
        description="MQTT client id, stable so the broker keeps the session; default "
        "stovectl-<stove id>.",
    )
    username: str | None = Field(None, description="User name, if the broker wants one.")
    password: SecretStr | None = Field(None, description="Password; better kept in a file.")
    password_file: Path | None = Field(
        None, description="File holding the password (credential name: mqtt-password)."
    )
    tls: MqttTlsSettings | None = Field(
        None, description="Connect over TLS; absent = plain TCP (loopback or a trusted LAN)."
    )
    keepalive: Duration = Field(
        timedelta(seconds=30),
        description="Keepalive; the broker declares the daemon offline after ~1.5 times this.",
    )
    session_expiry: Duration = Field(
        timedelta(hours=1),
        description="How long the broker keeps the session and queued commands while the "
        "daemon is away.",
    )
    reconnect_max_interval: Duration = Field(
        timedelta(seconds=5), description="The longest wait between reconnect attempts."
    )
    connect_timeout: Duration = Field(
        timedelta(seconds=5),
        description="How long start-up waits for the broker before going on without it "
        "(it keeps trying).",
    )
    base_topic: str = Field(
        "", description="Topic prefix for state, commands and events; default "
        "stovectl/<stove id>."
    )
    discovery: bool = Field(True, description="Announce entities to Home Assistant.")
    discovery_prefix: str = Field(
        "homeassistant", description="Home Assistant's discovery prefix."
    )

    @model_validator(mode="after")
    def _resolve(self) -> MqttSettings:
        password = read_secret(self.password, self.password_file, "mqtt-password", "password")
        object.__setattr__(self, "password", password)
        if password is not None and self.username is None:
            raise ValueError("password: a password needs a username")
        for name in ("base_topic", "discovery_prefix"):
            value = getattr(self, name)
            if value:
                check_topic(value, name)
        return self

    @property
    def broker_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883


class MqttDeviceSettings(StrictModel):
    kind: Literal["mqtt"] = Field(description="A relay reached through the MQTT broker.")
    id: Identifier = Field(description="How burners name this device.")
    preset: Preset = Field(
        description="Its firmware: tasmota | zigbee2mqtt | shelly | esphome | generic."
    )
    topic: str = Field(
        "",
        description="The device's topic: Tasmota's %topic%, Zigbee2MQTT's "
        "zigbee2mqtt/<name>, Shelly's and ESPHome's prefix (not used by generic).",
    )
    channels: int = Field(1, ge=1, le=16, description="Relay channels on the device.")
    switches: list[str] | None = Field(
        None,
        description="ESPHome: the switch object id of each channel; default relay, or "
        "relay1, relay2, ... with several channels.",
    )
    poll_interval: Duration = Field(
        timedelta(seconds=1), description="How often the relay state is checked and watched."
    )
    timeout: Duration = Field(
        timedelta(seconds=1),
        description="How long a request waits for the device's state report.",
    )
    verify: bool = Field(
        True, description="Wait for the state report; false only for devices that send none."
    )
    device_pulse: bool = Field(
        True,
        description="Use the firmware's own timer for shutoffs where it allows (Tasmota "
        "PulseTime, Shelly toggle_after, Zigbee on_time), never for locks.",
    )
    power_on_state_5: bool = Field(
        False,
        description="Tasmota: the device has PowerOnState 5, so PulseTime turns it back on "
        "after OFF (device-side re-arm for NO wiring).",
    )
    command_topic: str = Field(
        "", description="Generic: where commands go; {channel} is replaced by the channel."
    )
    state_topic: str = Field(
        "", description="Generic: where the device reports its state; {channel} as above."
    )
    payload_on: str = Field("ON", description="Generic: the command that switches on.")
    payload_off: str = Field("OFF", description="Generic: the command that switches off.")
    state_on: str = Field("ON", description="Generic: the reported state meaning on.")
    state_off: str = Field("OFF", description="Generic: the reported state meaning off.")
    state_field: str = Field(
        "",
        description="Generic: read the state from this JSON field of the report "
        "({channel} as above); empty = the whole payload.",
    )
    availability_topic: str = Field(
        "", description="Generic: where the device says whether it is online."
    )
    payload_available: str = Field("online", description="Generic: the online word.")
    payload_not_available: str = Field("offline", description="Generic: the offline word.")

    @model_validator(mode="after")
    def _check(self) -> MqttDeviceSettings:  # noqa: PLR0912  # one check per field, in order
        where = f"device {self.id!r}"
        if self.channels > MAX_CHANNELS[self.preset]:
            raise ValueError(
                f"{where}: a {self.preset} relay has at most {MAX_CHANNELS[self.preset]} "
                f"channel(s), got {self.channels}"
            )
        if self.preset == "generic":
            if not self.command_topic:
                raise ValueError(f"{where}: a generic device needs command_topic")
            check_topic(self.command_topic, "command_topic")
            if self.state_topic:
                check_topic(self.state_topic, "state_topic")
            elif self.verify:
                raise ValueError(
                    f"{where}: without state_topic its cuts cannot be verified; give "
                    "state_topic, or say verify = false to accept unverified cuts"
                )
            if self.availability_topic:
                check_topic(self.availability_topic, "availability_topic")
            if self.channels > 1 and "{channel}" not in self.command_topic + self.state_field:
                raise ValueError(
                    f"{where}: with several channels, command_topic (or state_field) must "
                    "contain {channel}"
                )
        else:
            if not self.topic:
                raise ValueError(f"{where}: a {self.preset} device needs its topic")
            check_topic(self.topic, "topic")
        if self.switches is not None:
            if self.preset != "esphome":
                raise ValueError(f"{where}: switches is for esphome devices only")
            if len(self.switches) != self.channels:
                raise ValueError(
                    f"{where}: switches names {len(self.switches)} switch(es) for "
                    f"{self.channels} channel(s)"
                )
            for name in self.switches:
                check_topic(name, "switches")
        return self

    @property
    def channel_count(self) -> int:
        return self.channels

    @property
    def esphome_switches(self) -> list[str]:
        if self.switches is not None:
            return list(self.switches)
        if self.channels == 1:
            return ["relay"]
        return [f"relay{n}" for n in range(1, self.channels + 1)]
