"""Sensors: flame probes, presence, gas and smoke detectors, over MQTT or MiOT.

A sensor gives one yes/no reading: a flame under its burner, somebody in the
kitchen, gas, smoke. What it sends is turned into that reading by the same
rules whatever carries it (``sensors/readings.py``): a number against
``on_above``/``off_below`` (a thermocouple ADC, a probe's °C), a boolean, or a
word matched against ``payload_on``/``payload_off``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from stovectl.settings.mqtt import check_topic
from stovectl.settings.types import Duration, Identifier, StrictModel, read_secret

SensorKind = Literal["flame", "presence", "gas", "smoke"]
HAZARD_KINDS: frozenset[str] = frozenset({"gas", "smoke"})


class _Reading(StrictModel):
    """How a sensor's value becomes yes or no; shared by every transport."""

    id: Identifier = Field(description="How status, history and Home Assistant name it.")
    kind: SensorKind = Field(
        description="flame (under one burner), presence (somebody in the kitchen), gas, smoke."
    )
    burner: Identifier | None = Field(
        None, description="flame sensors: the burner whose flame it sees."
    )
    name: str = Field("", description="Shown to people; defaults to the id.")
    on_above: float | None = Field(
        None,
        description="A numeric reading at or above this means yes (e.g. 80 for a flame "
        "probe in °C); absent = the value is a boolean or a word.",
    )
    off_below: float | None = Field(
        None,
        description="A numeric reading below this means no; between the two the last "
        "reading stands (hysteresis). Default: on_above.",
    )
    payload_on: str = Field(
        "ON", description="The word that means yes (true, 1, on, yes, detected also do)."
    )
    payload_off: str = Field(
        "OFF", description="The word that means no (false, 0, off, no, clear also do)."
    )

    @model_validator(mode="after")
    def _check_reading(self) -> _Reading:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        if self.kind == "flame" and self.burner is None:
            raise ValueError("a flame sensor names its burner")
        if self.kind != "flame" and self.burner is not None:
            raise ValueError(
                f"only flame sensors belong to a burner ({self.kind} "
                "sensors watch the whole kitchen)"
            )
        if self.off_below is not None and self.on_above is None:
            raise ValueError("off_below needs on_above")
        if self.on_above is not None and self.off_below is None:
            object.__setattr__(self, "off_below", self.on_above)
        if (
            self.on_above is not None and self.off_below is not None
            and self.off_below > self.on_above
        ):
            raise ValueError(
                f"off_below ({self.off_below:g}) must not be above "
                f"on_above ({self.on_above:g})"
            )
        if self.payload_on.casefold() == self.payload_off.casefold():
            raise ValueError("payload_on and payload_off must differ")
        return self

    @property
    def is_hazard(self) -> bool:
        return self.kind in HAZARD_KINDS


class MqttSensorSettings(_Reading):
    source: Literal["mqtt"] = Field(description="Readings arrive on an MQTT topic.")
    topic: str = Field(
        description="The topic the sensor publishes on, e.g. zigbee2mqtt/kitchen_motion "
        "or esphome-hob/sensor/left_probe/state."
    )
    field: str = Field(
        "",
        description="Read this JSON field (e.g. occupancy, gas, smoke, temperature); "
        "empty = the whole payload.",
    )
    availability_topic: str = Field(
        "", description="Where the sensor says it is online; empty = no availability."
    )
    payload_available: str = Field(
        "online", description='What the availability topic says when online ("true", '
        '{"state":"online"} also do).'
    )
    payload_not_available: str = Field(
        "offline", description="What it says when offline."
    )

    @model_validator(mode="after")
    def _check_topics(self) -> MqttSensorSettings:
        check_topic(self.topic, "topic")
        if self.availability_topic:
            check_topic(self.availability_topic, "availability_topic")
        return self


class MiotSensorSettings(_Reading):
    source: Literal["miot"] = Field(
        description="Readings are polled from a MiOT property of a Mi Home device on the LAN."
    )
    host: str = Field(min_length=1, description="The device's IP address or host name.")
    token: SecretStr | None = Field(None, description="The device's 32-hex-digit token.")
    token_file: Path | None = Field(
        None, description="File holding the token (credential name: <id>-token)."
    )
    siid: int = Field(ge=1, le=255, description="MiOT service id of the property.")
    piid: int = Field(ge=1, le=255, description="MiOT property id.")
    poll_interval: Duration = Field(
        timedelta(seconds=2), description="How often the property is read."
    )
    timeout: Duration = Field(
        timedelta(milliseconds=500), description="How long one request waits for its reply."
    )

    @model_validator(mode="after")
    def _resolve(self) -> MiotSensorSettings:
        token = read_secret(self.token, self.token_file, f"{self.id}-token", "token")
        if token is None:
            raise ValueError(
                f"sensor {self.id!r} needs its device's token: token, token_file, or the "
                f"credential {self.id}-token (see `stovectl discover`)"
            )
        if not re.fullmatch(r"[0-9a-fA-F]{32}", token.get_secret_value()):
            raise ValueError("a token is 32 hexadecimal digits")
        object.__setattr__(self, "token", token)
        if self.poll_interval <= timedelta(0):
            raise ValueError("poll_interval must be positive")
        return self


class SimulatedSensorSettings(_Reading):
    source: Literal["simulated"] = Field(
        description="A sensor of the simulated kitchen: a flame sensor follows its simulated "
        "burner; presence, gas and smoke start at initial and change only when a test or "
        "`stovectl demo` says so."
    )
    initial: bool = Field(False, description="presence, gas, smoke: the reading at start.")

    @model_validator(mode="after")
    def _check_initial(self) -> SimulatedSensorSettings:
        if self.kind == "flame" and "initial" in self.model_fields_set:
            raise ValueError("initial: a simulated flame sensor follows its burner's flame")
        return self


SensorSettings = Annotated[
    MqttSensorSettings | MiotSensorSettings | SimulatedSensorSettings,
    Field(discriminator="source"),
]
