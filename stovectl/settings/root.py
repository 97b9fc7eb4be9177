"""The whole configuration, and the checks that span its sections."""

from __future__ import annotations

from pydantic import (
    Field,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stovectl.core.voice import parse_voice_action
from stovectl.settings.devices import DeviceSettings
from stovectl.settings.mqtt import MqttDeviceSettings, MqttSettings
from stovectl.settings.sections import (
    BurnerSettings,
    DaemonSettings,
    RemoteSettings,
    SafetySettings,
    SpeakerSettings,
    StoveSettings,
)
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
        return self

    @property
    def mqtt_base_topic(self) -> str:
        """Where state, commands and events live: the config's, else stovectl/<stove id>."""
        if self.mqtt is not None and self.mqtt.base_topic:
            return self.mqtt.base_topic
        return f"stovectl/{self.stove.id}"

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


def _no_duplicates(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what}: two have the id {item!r}; ids must be unique")
        seen.add(item)
