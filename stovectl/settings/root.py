"""The whole configuration, and the checks that span its sections."""

from __future__ import annotations

from pydantic import (
    Field,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stovectl.core.voice import parse_voice_action
from stovectl.durations import format_duration
from stovectl.settings.devices import DeviceSettings, MiioDeviceSettings
from stovectl.settings.failsafes import FailsafeSettings, UnattendedSettings
from stovectl.settings.mqtt import MqttDeviceSettings, MqttSettings
from stovectl.settings.schedules import ScheduleSettings
from stovectl.settings.sections import (
    BurnerSettings,
    DaemonSettings,
    RemoteSettings,
    SafetySettings,
    SpeakerSettings,
    StoveSettings,
)
from stovectl.settings.sensors import MiotSensorSettings, MqttSensorSettings, SensorSettings
from stovectl.settings.voice import VoiceTriggerSettings


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="STOVECTL_", env_nested_delimiter="__"
    )

    stove: StoveSettings = Field(
        default_factory=StoveSettings, description="The hob: its id and name."
    )
    devices: list[DeviceSettings] = Field(min_length=1, description="Relay devices.")
    burners: list[BurnerSettings] = Field(min_length=1, description="Burners and their wiring.")
    safety: SafetySettings = Field(
        default_factory=SafetySettings, description="Alarm and retry limits for writes."
    )
    remote: RemoteSettings = Field(
        default_factory=RemoteSettings, description="What MQTT and voice commands may relax."
    )
    daemon: DaemonSettings = Field(
        default_factory=DaemonSettings, description="Where the daemon listens, stores and logs."
    )
    mqtt: MqttSettings | None = Field(
        None, description="The MQTT broker: remote commands, state, Home Assistant and MQTT "
        "relays; absent = no MQTT."
    )
    speaker: SpeakerSettings | None = Field(
        None, description="A Xiaoai speaker that says what the burners did; absent = silent."
    )
    voice: list[VoiceTriggerSettings] = Field(
        default_factory=list, description="Spare relay channels that act as voice buttons."
    )
    sensors: list[SensorSettings] = Field(
        default_factory=list, description="Flame, presence, gas and smoke sensors."
    )
    failsafe: FailsafeSettings = Field(
        default_factory=FailsafeSettings,
        description="The longest a burner may burn, and how a shutoff is confirmed.",
    )
    unattended: UnattendedSettings | None = Field(
        None, description="Shut off lit burners when nobody is present; absent = off."
    )
    schedules: list[ScheduleSettings] = Field(
        default_factory=list, description="Calendar shutoffs, locks and unlocks."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file arrives as init arguments; the environment overrides it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        _no_duplicates("devices", [device.id for device in self.devices])
        _no_duplicates("burners", [burner.id for burner in self.burners])
        devices = {device.id: device for device in self.devices}
        wired: dict[tuple[str, int], str] = {}
        for index, burner in enumerate(self.burners):
            where = f"burners[{index}] (id {burner.id!r})"
            device = devices.get(burner.device)
            if device is None:
                raise ValueError(
                    f"{where}.device: names device {burner.device!r}, which does not "
                    f"exist (devices: {', '.join(sorted(devices))})"
                )
            if burner.channel > device.channel_count:
                raise ValueError(
                    f"{where}.channel: channel {burner.channel} of device {device.id!r}, "
                    f"which has {device.channel_count} channel(s)"
                )
            other = wired.setdefault((device.id, burner.channel), burner.id)
            if other != burner.id:
                raise ValueError(
                    f"{where}.channel: burner {other!r} is wired to channel "
                    f"{burner.channel} of device {device.id!r} already"
                )
        _check_voice(self.voice, devices, wired, {burner.id for burner in self.burners})
        for index, device in enumerate(self.devices):
            if isinstance(device, MqttDeviceSettings) and self.mqtt is None:
                raise ValueError(
                    f"devices[{index}] (id {device.id!r}): an mqtt device needs the broker; "
                    "add an [mqtt] section"
                )
        burners = {burner.id for burner in self.burners}
        _check_sensors(self, burners)
        _check_failsafes(self, burners)
        for index, schedule in enumerate(self.schedules):
            _known_burners(f"schedules[{index}].burners", schedule.burners, burners)
        _no_duplicates("schedules", [schedule.id for schedule in self.schedules])
        return self

    @property
    def mqtt_base_topic(self) -> str:
        """Where state, commands and events live: the config's, else stovectl/<stove id>."""
        if self.mqtt is not None and self.mqtt.base_topic:
            return self.mqtt.base_topic
        return f"stovectl/{self.stove.id}"

    def max_on(self, burner_id: str) -> float:
        """Seconds a burner may be lit before the failsafe shuts it off; 0 = never."""
        own = self.burner(burner_id).max_on
        return (self.failsafe.max_on if own is None else own).total_seconds()

    def flame_sensor(self, burner_id: str) -> SensorSettings | None:
        return next(
            (s for s in self.sensors if s.kind == "flame" and s.burner == burner_id), None
        )

    def burner(self, burner_id: str) -> BurnerSettings:
        return next(burner for burner in self.burners if burner.id == burner_id)

    def device(self, device_id: str) -> DeviceSettings:
        return next(device for device in self.devices if device.id == device_id)


def _check_voice(
    triggers: list[VoiceTriggerSettings],
    devices: dict[str, DeviceSettings],
    wired: dict[tuple[str, int], str],
    burners: set[str],
) -> None:
    for index, trigger in enumerate(triggers):
        where = f"voice[{index}]"
        device = devices.get(trigger.device)
        if device is None:
            raise ValueError(f"{where}.device: no device {trigger.device!r}")
        if trigger.channel > device.channel_count:
            raise ValueError(
                f"{where}.channel: device {device.id!r} has {device.channel_count} channel(s)"
            )
        if (device.id, trigger.channel) in wired:
            raise ValueError(
                f"{where}.channel: channel {trigger.channel} of {device.id!r} is burner "
                f"{wired[device.id, trigger.channel]!r}'s loop, not a spare button"
            )
        for name in parse_voice_action(trigger.action).burners:
            if name != "all" and name not in burners:
                raise ValueError(f"{where}.action: no burner {name!r}")


def _known_burners(where: str, names: list[str], burners: set[str]) -> None:
    for name in names:
        if name != "all" and name not in burners:
            raise ValueError(
                f"{where}: no burner {name!r} (burners: {', '.join(sorted(burners))}, or all)"
            )


def _check_sensors(settings: Settings, burners: set[str]) -> None:
    _no_duplicates("sensors", [sensor.id for sensor in settings.sensors])
    _check_miot_tokens(settings)
    watched: dict[str, str] = {}
    for index, sensor in enumerate(settings.sensors):
        where = f"sensors[{index}] (id {sensor.id!r})"
        if isinstance(sensor, MqttSensorSettings) and settings.mqtt is None:
            raise ValueError(f"{where}: an mqtt sensor needs the broker; add an [mqtt] section")
        if sensor.burner is None:
            continue
        if sensor.burner not in burners:
            raise ValueError(f"{where}.burner: no burner {sensor.burner!r}")
        other = watched.setdefault(sensor.burner, sensor.id)
        if other != sensor.id:
            raise ValueError(
                f"{where}.burner: burner {sensor.burner!r} has flame sensor {other!r} already"
            )


def _check_miot_tokens(settings: Settings) -> None:
    """One device, one token: sensors (and a relay) sharing a host must agree on it."""
    tokens: dict[str, tuple[str, str]] = {}
    for device in settings.devices:
        if isinstance(device, MiioDeviceSettings) and device.token is not None:
            tokens[device.host] = (f"device {device.id!r}", device.token.get_secret_value())
    for index, sensor in enumerate(settings.sensors):
        if not isinstance(sensor, MiotSensorSettings) or sensor.token is None:
            continue
        token = sensor.token.get_secret_value()
        owner, known = tokens.setdefault(sensor.host, (f"sensor {sensor.id!r}", token))
        if known.lower() != token.lower():
            raise ValueError(
                f"sensors[{index}] (id {sensor.id!r}).token: {owner} is on the same device "
                f"({sensor.host}) with another token; one device has one token"
            )


def _check_failsafes(settings: Settings, burners: set[str]) -> None:
    warn = settings.failsafe.warn_before
    for index, burner in enumerate(settings.burners):
        if burner.max_on and warn >= burner.max_on:
            raise ValueError(
                f"burners[{index}] (id {burner.id!r}).max_on: must be longer than "
                f"[failsafe] warn_before ({format_duration(warn)})"
            )
    unattended = settings.unattended
    if unattended is None:
        return
    _known_burners("unattended.burners", unattended.burners, burners)
    presence = {s.id for s in settings.sensors if s.kind == "presence"}
    if not presence:
        raise ValueError(
            "unattended: needs at least one presence sensor ([[sensors]] with "
            'kind = "presence")'
        )
    for name in unattended.presence:
        if name not in presence:
            raise ValueError(
                f"unattended.presence: {name!r} is not a presence sensor "
                f"(presence sensors: {', '.join(sorted(presence))})"
            )


def _no_duplicates(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what}: two have the id {item!r}; ids must be unique")
        seen.add(item)
