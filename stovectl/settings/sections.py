"""The config's sections other than devices: stove, burners, safety, remote, daemon."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from stovectl.durations import format_duration
from stovectl.settings.types import (
    MIN_CUT_HOLD,
    RESERVED_BURNER_IDS,
    Duration,
    Identifier,
    StrictModel,
    read_secret,
)


class StoveSettings(StrictModel):
    id: Identifier = Field("kitchen", description="Used in MQTT topics and Home Assistant ids.")
    name: str = Field("Kitchen hob", description="Shown to people.")


class BurnerSettings(StrictModel):
    id: Identifier = Field(description="Used on the command line and in topics: [a-z0-9_-].")
    name: str = Field("", description="Shown to people; defaults to the id.")
    device: Identifier = Field(description="The id of the device whose relay is in this loop.")
    channel: int = Field(1, ge=1, le=16, description="1-based relay channel on that device.")
    cut_state: Literal["on", "off"] = Field(
        "on",
        description='The relay state that opens the loop: "on" for NC wiring, "off" for NO.',
    )
    cut_hold: Duration = Field(
        timedelta(seconds=5),
        description="How long a shutoff holds the loop open before re-arming (at least 2s).",
    )

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_BURNER_IDS:
            raise ValueError(f"{value!r} is reserved; choose another id")
        return value

    @field_validator("cut_hold")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < MIN_CUT_HOLD:
            raise ValueError(
                f"must be at least {format_duration(MIN_CUT_HOLD)} so the valve surely "
                f"drops, got {format_duration(value)}"
            )
        return value

    @model_validator(mode="after")
    def _default_name(self) -> BurnerSettings:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        return self


class SafetySettings(StrictModel):
    alarm_after: Duration = Field(
        timedelta(seconds=10),
        description="A cut not verified by then raises an alarm (retrying goes on).",
    )
    retry_max_interval: Duration = Field(
        timedelta(seconds=2), description="The longest pause between retries of a write."
    )


class RemoteSettings(StrictModel):
    allow_relax: bool = Field(
        False,
        description="Allow unlock, cancel and extend from MQTT or voice (unlock needs the PIN).",
    )
    pin: SecretStr | None = Field(None, description="PIN a remote unlock must carry.")
    pin_file: Path | None = Field(None, description="File holding the PIN (credential name: pin).")
    relax_ttl: Duration = Field(
        timedelta(seconds=30), description="Relaxing commands older than this are refused."
    )

    @model_validator(mode="after")
    def _resolve_pin(self) -> RemoteSettings:
        object.__setattr__(self, "pin", read_secret(self.pin, self.pin_file, "pin", "pin"))
        return self


class DaemonSettings(StrictModel):
    socket: Path | None = Field(None, description="Control socket path (default: see README).")
    state_dir: Path | None = Field(None, description="Where the SQLite state lives.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity."
    )
