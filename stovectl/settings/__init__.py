"""Configuration: the only place a config file or environment is parsed.

The TOML file (``--config``, default ``/etc/stovectl/stovectl.toml``) is read
into typed, frozen models; ``STOVECTL_…`` environment variables override it
(``__`` nests: ``STOVECTL_STOVE__NAME``). Secrets come from the file, from a
``*_file`` path, or from ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``)
and are never printed. Every model forbids unknown keys; cross-references are
checked at load. Any problem becomes one ConfigError naming file, field and
problem, which the CLI turns into exit code 78.

Modules: ``types`` (building blocks), ``devices`` and ``sections`` (the
models), ``root`` (the whole), ``loading`` (file and environment in, errors
out), ``output`` (redacted TOML for ``config show``).
"""

from stovectl.settings.devices import (
    DeviceSettings,
    MiioDeviceSettings,
    MiotChannelSettings,
    SimulatedDeviceSettings,
)
from stovectl.settings.failsafes import FailsafeSettings, UnattendedSettings
from stovectl.settings.loading import (
    format_validation_error,
    load_settings,
    settings_from_mapping,
    unknown_environment,
)
from stovectl.settings.mqtt import MqttDeviceSettings, MqttSettings, MqttTlsSettings
from stovectl.settings.output import redacted, to_toml
from stovectl.settings.root import Settings
from stovectl.settings.schedules import ScheduleSettings
from stovectl.settings.sections import (
    BurnerSettings,
    DaemonSettings,
    RemoteSettings,
    SafetySettings,
    SpeakerSettings,
    StoveSettings,
)
from stovectl.settings.sensors import (
    HAZARD_KINDS,
    MiotSensorSettings,
    MqttSensorSettings,
    SensorSettings,
    SimulatedSensorSettings,
)
from stovectl.settings.types import (
    DEFAULT_CONFIG_PATH,
    MIN_CUT_HOLD,
    Duration,
    Identifier,
    StrictModel,
    read_secret,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "HAZARD_KINDS",
    "MIN_CUT_HOLD",
    "BurnerSettings",
    "DaemonSettings",
    "DeviceSettings",
    "Duration",
    "FailsafeSettings",
    "Identifier",
    "MiioDeviceSettings",
    "MiotChannelSettings",
    "MiotSensorSettings",
    "MqttDeviceSettings",
    "MqttSensorSettings",
    "MqttSettings",
    "MqttTlsSettings",
    "RemoteSettings",
    "SafetySettings",
    "ScheduleSettings",
    "SensorSettings",
    "Settings",
    "SimulatedDeviceSettings",
    "SimulatedSensorSettings",
    "SpeakerSettings",
    "StoveSettings",
    "StrictModel",
    "UnattendedSettings",
    "format_validation_error",
    "load_settings",
    "read_secret",
    "redacted",
    "settings_from_mapping",
    "to_toml",
    "unknown_environment",
]
