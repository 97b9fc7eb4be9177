"""The config's sections other than devices: stove, burners, safety, remote, daemon, speaker."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from stovectl.announce.texts import DEFAULT_SUBJECTS, SUBJECTS, Language, Subject
from stovectl.devices.miio_models import SPEAKER_PREFIX, SPEAKERS, speaker_action
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
    max_on: Duration | None = Field(
        None,
        description="This burner's failsafe: shut off once lit this long; 0s = never; "
        "absent = [failsafe] max_on.",
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
        timedelta(seconds=1), description="The longest pause between retries of a write."
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
    socket_group: str | None = Field(
        None, min_length=1,
        description="Group whose members may use the control socket (mode 0660); default: "
        "stovectl when that group exists, else the daemon's own group.",
    )


class SpeakerSettings(StrictModel):
    host: str = Field(min_length=1, description="The Xiaoai speaker's IP address or host name.")
    token: SecretStr | None = Field(None, description="The speaker's 32-hex-digit miIO token.")
    token_file: Path | None = Field(
        None, description="File holding the token (credential name: speaker-token)."
    )
    model: str | None = Field(
        None,
        description="Speaker model, e.g. xiaomi.wifispeaker.lx06; a known one picks the "
        "text-to-speech action (else give siid and aiid).",
    )
    siid: int | None = Field(
        None, ge=1, le=255, description="MiOT service id of the speak-text action."
    )
    aiid: int | None = Field(
        None, ge=1, le=255, description="MiOT action id of the speak-text action."
    )
    language: Language = Field("zh", description='What the speaker says it in: "zh" or "en".')
    timeout: Duration = Field(
        timedelta(seconds=2),
        description="How long the handshake, and then the reply, each wait.",
    )
    announce: tuple[Subject, ...] = Field(
        DEFAULT_SUBJECTS,
        description=f"Which events are said aloud, of: {', '.join(SUBJECTS)} "
        "(hazard: gas or smoke detected or cleared, its sensor offline, and the locks it "
        "makes; warning: a max-on or unattended shutoff coming soon, or called off).",
    )

    @model_validator(mode="after")
    def _resolve(self) -> SpeakerSettings:
        token = read_secret(self.token, self.token_file, "speaker-token", "token")
        if token is None:
            raise ValueError(
                "the speaker needs its token: token, token_file, or the credential "
                "speaker-token (see `stovectl discover`)"
            )
        if not re.fullmatch(r"[0-9a-fA-F]{32}", token.get_secret_value()):
            raise ValueError("token: a token is 32 hexadecimal digits")
        object.__setattr__(self, "token", token)
        if (self.siid is None) != (self.aiid is None):
            raise ValueError("siid and aiid: give both, or neither")
        if self.siid is None and (self.model is None or speaker_action(self.model) is None):
            wrong = f"{self.model!r} is not a known speaker" if self.model else "not given"
            raise ValueError(
                f"model: {wrong}; give siid and aiid of its speak-text action from its "
                f"MiOT spec, or name a known one: {SPEAKER_PREFIX}{', '.join(SPEAKERS)}"
            )
        return self

    @property
    def action(self) -> tuple[int, int]:
        """The (siid, aiid) that speaks a text: the config's, else the model table's."""
        if self.siid is not None and self.aiid is not None:
            return self.siid, self.aiid
        action = speaker_action(self.model or "")
        assert action is not None  # checked at load
        return action
