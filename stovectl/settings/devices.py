"""Relay devices, one model per ``kind``: a discriminated union rejects unknown kinds."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    Field,
)

from stovectl.settings.types import Duration, Identifier, StrictModel


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
    fault: Literal["none", "offline", "slow", "stuck"] = Field(
        "none",
        description="Start with a fault: offline (no answer), slow (answers after 2 s), "
        "stuck (acknowledges writes but does not switch).",
    )


DeviceSettings = Annotated[SimulatedDeviceSettings, Field(discriminator="kind")]
