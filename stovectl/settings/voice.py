"""Voice buttons: which device channel, when switched on, runs which action."""

from __future__ import annotations

from pydantic import Field, field_validator

from stovectl.core.voice import parse_voice_action
from stovectl.settings.types import Identifier, StrictModel


class VoiceTriggerSettings(StrictModel):
    device: Identifier = Field(description="The device whose spare channel is the button.")
    channel: int = Field(
        ge=1, le=16,
        description="The channel a Mi Home scene switches on; wired to no burner.",
    )
    action: str = Field(
        description="What to do: off|lock [BURNER...|all], timer BURNER DURATION, "
        "cancel BURNER (relaxing actions obey [remote]).",
    )
    phrase: str = Field("", description="The phrase you say, for the log and history.")

    @field_validator("action")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_voice_action(value)
        return value
