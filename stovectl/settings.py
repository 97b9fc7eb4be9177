"""Configuration: the only place a config file or environment is parsed.

The TOML file (``--config``, default ``/etc/stovectl/stovectl.toml``) is read
into typed, frozen models; ``STOVECTL_…`` environment variables override it
(``__`` nests: ``STOVECTL_STOVE__NAME``). Secrets come from the file, from a
``*_file`` path, or from ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``)
and are never printed. Every model forbids unknown keys; cross-references are
checked at load. Any problem becomes one ConfigError naming file, field and
problem, which the CLI turns into exit code 78.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stovectl.durations import format_duration, parse_duration
from stovectl.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/stovectl/stovectl.toml")
MIN_CUT_HOLD = timedelta(seconds=2)
ID_PATTERN = r"^[a-z0-9_-]{1,32}$"
RESERVED_BURNER_IDS = frozenset({"all", "status", "events"})


def _to_timedelta(value: object) -> object:
    if isinstance(value, bool):
        # pydantic would take true as one second; a duration is never a yes or no.
        message = f"{str(value).lower()} is not a duration; write it like 90s or 15m"
        raise ValueError(message)  # noqa: TRY004  # pydantic reports only ValueError as invalid
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_duration(str(value))
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret(
    value: SecretStr | None, file: Path | None, credential: str, field: str
) -> SecretStr | None:
    """Resolve a secret given inline, as a file, or as a systemd credential."""
    if value is not None and file is not None:
        raise ValueError(f"give either {field} or {field}_file, not both")
    if value is not None:
        return value
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if file is None and credentials and (Path(credentials) / credential).is_file():
        file = Path(credentials) / credential
    if file is None:
        return None
    if credentials and not file.is_absolute():
        file = Path(credentials) / file
    try:
        text = file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(f"cannot read {field}_file {str(file)!r}: {error.strerror}") from None
    if not text:
        raise ValueError(f"{field}_file {str(file)!r} is empty")
    return SecretStr(text)


class StoveSettings(_Model):
    id: Identifier = Field("kitchen", description="Used in MQTT topics and Home Assistant ids.")
    name: str = Field("Kitchen hob", description="Shown to people.")


class SimulatedDeviceSettings(_Model):
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


class BurnerSettings(_Model):
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


class SafetySettings(_Model):
    alarm_after: Duration = Field(
        timedelta(seconds=10),
        description="A cut not verified by then raises an alarm (retrying goes on).",
    )
    retry_max_interval: Duration = Field(
        timedelta(seconds=2), description="The longest pause between retries of a write."
    )


class RemoteSettings(_Model):
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


class DaemonSettings(_Model):
    socket: Path | None = Field(None, description="Control socket path (default: see README).")
    state_dir: Path | None = Field(None, description="Where the SQLite state lives.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log verbosity."
    )


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
            if burner.channel > device.channels:
                raise ValueError(
                    f"{where}.channel: channel {burner.channel} of device {device.id!r}, "
                    f"which has {device.channels} channel(s)"
                )
            other = wired.setdefault((device.id, burner.channel), burner.id)
            if other != burner.id:
                raise ValueError(
                    f"{where}.channel: burner {other!r} is wired to channel "
                    f"{burner.channel} of device {device.id!r} already"
                )
        return self

    def burner(self, burner_id: str) -> BurnerSettings:
        return next(burner for burner in self.burners if burner.id == burner_id)

    def device(self, device_id: str) -> DeviceSettings:
        return next(device for device in self.devices if device.id == device_id)


def _no_duplicates(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            raise ValueError(f"{what}: two have the id {item!r}; ids must be unique")
        seen.add(item)


def load_settings(path: Path | None = None) -> Settings:
    """Read, validate and cross-check the config; raise ConfigError on any problem."""
    path = path or DEFAULT_CONFIG_PATH
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(
            f"bad configuration: {path}: file not found (pass --config FILE or create it; "
            "config/stovectl.toml in the source tree is a working example)"
        ) from None
    except OSError as error:
        raise ConfigError(f"bad configuration: {path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"bad configuration: {path}: not valid TOML: {error}") from None
    return settings_from_mapping(data, source=str(path))


ENV_PREFIX = "STOVECTL_"
CLIENT_ENV = frozenset({"STOVECTL_SOCKET", "STOVECTL_CONFIG"})
"""Read by the command line, not by the settings."""


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """``STOVECTL_…`` variables that name no setting: a typo must not pass silently."""
    unknown = []
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in CLIENT_ENV:
            continue
        model: type[BaseModel] | None = Settings
        for part in upper.removeprefix(ENV_PREFIX).lower().split("__"):
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                unknown.append(name)
                break
            annotation = field.annotation
            model = annotation if isinstance(annotation, type) and issubclass(
                annotation, BaseModel) else None
    return sorted(unknown)


def settings_from_mapping(data: dict[str, Any], source: str = "<config>") -> Settings:
    """Validate an already-parsed config mapping (tests and the demo use this)."""
    if unknown := unknown_environment(os.environ):
        raise ConfigError(
            f"bad configuration: {source}\n" + "\n".join(
                f"  environment variable {name}: names no setting (check its spelling; "
                "sections and keys are joined with __)" for name in unknown
            )
        )
    try:
        return Settings(**data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, data, source)) from None


def format_validation_error(error: ValidationError, data: dict[str, Any], source: str) -> str:
    lines = [f"bad configuration: {source}"]
    for problem in error.errors():
        field = _field_path(problem["loc"], data)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (check its spelling and the section it is in)"
        elif problem["type"] == "missing":
            message = "required, but not given"
        elif problem["type"] == "union_tag_invalid":
            context = problem.get("ctx", {})
            message = (
                f"kind {context.get('tag')!r} is not known "
                f"(known kinds: {context.get('expected_tags')})"
            )
        lines.append(f"  {field}: {message}" if field else f"  {message}")
    return "\n".join(lines)


def _field_path(loc: tuple[int | str, ...], data: object) -> str:
    path = ""
    node: object = data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = f"[{part}]"
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                label = f"[{part}] (id {item['id']!r})"
            path += label
            node = item
            continue
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # the discriminated union's tag, not a key the user wrote
        path += f".{part}" if path else part
        node = node.get(part) if isinstance(node, dict) else None
    return path


_SECRET = re.compile(r"(pin|token|password)$")


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective config as plain data with every secret replaced by stars."""
    data: dict[str, Any] = settings.model_dump(mode="json", exclude_none=True)

    def scrub(node: object) -> None:
        if isinstance(node, dict):
            for key in [key for key in node if _SECRET.search(key) and f"{key}_file" in node]:
                # Read from its file: showing the file alone keeps the output a loadable
                # config, which giving both the secret and its file is not.
                del node[key]
            for key, value in node.items():
                if _SECRET.search(key) and isinstance(value, str):
                    node[key] = "********"
                else:
                    scrub(value)
        elif isinstance(node, list):
            for item in node:
                scrub(item)

    scrub(data)
    return data


def to_toml(data: dict[str, Any]) -> str:
    """Write plain config data back as TOML (for ``stovectl config show``)."""
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    lines.extend(f"{key} = {_toml_value(value)}" for key, value in scalars.items())
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
        elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
