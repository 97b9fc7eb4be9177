"""Relay devices, one model per ``kind``: a discriminated union rejects unknown kinds."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from stovectl.devices.miio_models import MiioModel, MiotChannel, known_model
from stovectl.settings.mqtt import MqttDeviceSettings
from stovectl.settings.types import Duration, Identifier, StrictModel, read_secret


class SimulatedDeviceSettings(StrictModel):
    kind: Literal["simulated"] = Field(
        description="An in-process relay wired to the simulated stove."
    )
    id: Identifier = Field(description="How burners name this device.")
    channels: int = Field(2, ge=1, le=16, description="Relay channels on the device.")
    poll_interval: Duration = Field(
        timedelta(seconds=1), description="How often the relay state is read back and watched."
    )
    response_time: Duration = Field(
        timedelta(milliseconds=5), description="Simulated round-trip time of one request."
    )
    timeout: Duration = Field(
        timedelta(seconds=1), description="How long a request waits for an answer."
    )
    device_pulse: bool = Field(
        False, description="Offer a device-side timed return, like a MiOT off-delay."
    )
    fault: Literal["none", "offline", "slow", "stuck"] = Field(
        "none",
        description="Start with a fault: offline (no answer), slow (answers after 2 s), "
        "stuck (acknowledges writes but does not switch).",
    )

    @property
    def channel_count(self) -> int:
        return self.channels


class MiotChannelSettings(StrictModel):
    siid: int = Field(ge=1, le=255, description="MiOT service id of the channel's switch.")
    piid: int = Field(ge=1, le=255, description="MiOT property id of the channel's switch.")
    off_delay_piid: int | None = Field(
        None, ge=1, le=255,
        description="Property (same siid) that switches the channel off N s after on.",
    )


class MiioDeviceSettings(StrictModel):
    kind: Literal["miio"] = Field(description="A Mi Home relay on the LAN (miIO protocol).")
    id: Identifier = Field(description="How burners name this device.")
    host: str = Field(min_length=1, description="The device's IP address or host name.")
    token: SecretStr | None = Field(None, description="The device's 32-hex-digit token.")
    token_file: Path | None = Field(
        None, description="File holding the token (credential name: <id>-token)."
    )
    model: str = Field(
        "generic.relay.1",
        description="Device model; a known one picks the channel mapping "
        "(generic.relay.1, generic.relay.2, yeelink.switch.sw1, chuangmi.plug.*).",
    )
    channels: list[MiotChannelSettings] | None = Field(
        None, description="MiOT mapping per channel, for models not in the table."
    )
    timeout: Duration = Field(
        timedelta(milliseconds=500), description="How long one request waits for its reply."
    )
    handshake_timeout: Duration = Field(
        timedelta(milliseconds=500), description="How long the hello handshake waits."
    )
    poll_interval: Duration = Field(
        timedelta(seconds=1), description="How often the relay state is read back and watched."
    )
    verify: bool = Field(
        True, description="Read the state back; false only for devices that cannot report it."
    )
    device_pulse: bool = Field(
        True,
        description="Use the device's off-delay for shutoffs where the wiring allows, so a "
        "shutoff re-arms even if the daemon dies (never for locks).",
    )

    @model_validator(mode="after")
    def _resolve(self) -> MiioDeviceSettings:
        token = read_secret(self.token, self.token_file, f"{self.id}-token", "token")
        if token is None:
            raise ValueError(
                f"device {self.id!r} needs its token: token, token_file, or the "
                f"credential {self.id}-token (see `stovectl discover`)"
            )
        if not re.fullmatch(r"[0-9a-fA-F]{32}", token.get_secret_value()):
            raise ValueError(f"device {self.id!r}: a token is 32 hexadecimal digits")
        object.__setattr__(self, "token", token)
        if self.channels is None and known_model(self.model) is None:
            raise ValueError(
                f"device {self.id!r}: model {self.model!r} is not in the table; give "
                "channels = [{ siid = 2, piid = 1 }, ...] from its MiOT spec"
            )
        return self

    @property
    def mapping(self) -> MiioModel:
        """The channel mapping in force: the config's, else the model table's."""
        if self.channels is not None:
            return MiioModel("miot", tuple(
                MiotChannel(c.siid, c.piid, c.off_delay_piid) for c in self.channels
            ))
        model = known_model(self.model)
        assert model is not None  # checked at load
        return model

    @property
    def channel_count(self) -> int:
        return len(self.mapping.channels)


DeviceSettings = Annotated[
    SimulatedDeviceSettings | MiioDeviceSettings | MqttDeviceSettings,
    Field(discriminator="kind"),
]
