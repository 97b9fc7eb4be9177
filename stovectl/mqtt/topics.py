"""Every MQTT topic stovectl publishes or listens on, named in one place.

The bridge, the tests and the Home Assistant discovery messages must agree on
topic names to the character; building them here, from the base topic and the
discovery prefix, keeps them from drifting apart. Pure string functions only.
"""

from __future__ import annotations

from stovectl.settings import Settings

ALL = "all"
"""The pseudo-burner of ``<base>/all/set``: every burner at once."""

_SET = "set"
_WILDCARDS = frozenset("+#\0")


class Topics:
    """The topics under one stove's base topic (``stovectl/<stove id>`` by default)."""

    def __init__(self, base: str) -> None:
        if not base or base.startswith("/") or base.endswith("/") or _WILDCARDS & set(base):
            raise ValueError(
                f"base topic {base!r}: must be non-empty, without '+', '#' or NUL, and "
                "must not begin or end with '/'"
            )
        self.base = base

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(settings.mqtt_base_topic)

    @property
    def status(self) -> str:
        """Retained ``online``/``offline``; the daemon's last will."""
        return f"{self.base}/status"

    @property
    def events(self) -> str:
        """Every event, as it happens; never retained."""
        return f"{self.base}/events"

    @property
    def all_set(self) -> str:
        return self.burner_set(ALL)

    @property
    def set_filter(self) -> str:
        """The one subscription that receives every burner's commands and ``all``'s."""
        return f"{self.base}/+/{_SET}"

    def burner_state(self, burner: str) -> str:
        """Retained JSON state of one burner."""
        return f"{self.base}/{burner}/state"

    def burner_set(self, burner: str) -> str:
        """Where commands for one burner (or ``all``) arrive."""
        return f"{self.base}/{burner}/{_SET}"

    def device_availability(self, device: str) -> str:
        """Retained ``online``/``offline`` of one relay device, as the daemon sees it."""
        return f"{self.base}/devices/{device}/availability"

    def sensor_state(self, sensor: str) -> str:
        """Retained JSON of one flame, presence, gas or smoke sensor, as the daemon sees it."""
        return f"{self.base}/sensors/{sensor}/state"

    @property
    def hazard(self) -> str:
        """Retained JSON: whether a hazard lock holds, and which gas or smoke sensors detect."""
        return f"{self.base}/hazard"

    def burner_of_set_topic(self, topic: str) -> str | None:
        """The burner name (or ``all``) a command topic addresses; None for other topics.

        The name is returned as it stands, known or not: the controller refuses an
        unknown burner with a reply that names it, which helps more than silence.
        """
        prefix = f"{self.base}/"
        suffix = f"/{_SET}"
        if not topic.startswith(prefix) or not topic.endswith(suffix):
            return None
        name = topic[len(prefix):len(topic) - len(suffix)]
        if not name or "/" in name or _WILDCARDS & set(name):
            return None
        return name


def discovery_config_topic(prefix: str, component: str, object_id: str) -> str:
    """Where Home Assistant looks for one entity's retained config."""
    return f"{prefix}/{component}/{object_id}/config"


def ha_status_topic(prefix: str) -> str:
    """Home Assistant's birth and last will: ``online`` means send discovery again."""
    return f"{prefix}/status"
