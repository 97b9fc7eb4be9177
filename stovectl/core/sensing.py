"""What the sensors say: the latest reading of each, and who is told of a change.

Sensor adapters (``stovectl/sensors``: MQTT topics, MiOT properties, the
simulated world) turn what a sensor sends into yes/no and hand it here, on the
event loop, through ``SensorInput``. The board keeps each sensor's reading and
availability for status, and calls the controller only on a change: a flame
lit or out, somebody present or gone, gas or smoke detected or cleared. A
sensor that goes offline reads as unknown (None), never as "no".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stovectl.settings import SensorSettings

log = logging.getLogger(__name__)


class SensorInput(Protocol):
    """What a sensor adapter calls, on the event loop."""

    def sensor_reading(self, sensor_id: str, reading: bool) -> None:
        """The sensor says yes (flame, presence, gas, smoke) or no."""

    def sensor_available(self, sensor_id: str, available: bool) -> None:
        """The sensor went offline (its reading is now unknown) or came back."""


@dataclass
class SensorState:
    settings: SensorSettings
    reading: bool | None = None
    available: bool | None = None
    changed: float | None = None
    """Wall time of the last change of ``reading``."""

    @property
    def value(self) -> bool | None:
        """The reading in force: None while offline or not yet heard from."""
        return None if self.available is False else self.reading


Changed = Callable[[SensorState, bool | None, bool | None], None]
"""Called with the sensor, its value before and its value now."""


class SensorBoard:
    """Every configured sensor's latest reading; implements ``SensorInput``."""

    def __init__(
        self, sensors: Sequence[SensorSettings], wall: Callable[[], float]
    ) -> None:
        self._sensors = {sensor.id: SensorState(sensor) for sensor in sensors}
        self._wall = wall
        self._listeners: list[Changed] = []

    def on_change(self, listener: Changed) -> None:
        self._listeners.append(listener)

    def __getitem__(self, sensor_id: str) -> SensorState:
        return self._sensors[sensor_id]

    def of_kind(self, *kinds: str) -> list[SensorState]:
        return [s for s in self._sensors.values() if s.settings.kind in kinds]

    def sensor_reading(self, sensor_id: str, reading: bool) -> None:
        state = self._sensors.get(sensor_id)
        if state is None:
            log.warning("a reading from unknown sensor %s was ignored", sensor_id)
            return
        before = state.value
        if state.available is None:
            state.available = True  # a sensor without availability is there when it speaks
        state.reading = reading
        if before != state.value:
            state.changed = self._wall()
            self._tell(state, before)

    def sensor_available(self, sensor_id: str, available: bool) -> None:
        state = self._sensors.get(sensor_id)
        if state is None or state.available is available:
            return
        before = state.value
        state.available = available
        if available:
            log.info("sensor %s is back online", sensor_id)
        else:
            log.warning("sensor %s is offline; its reading is unknown until it is back",
                        sensor_id)
        if before != state.value:
            state.changed = self._wall()
            self._tell(state, before)

    def _tell(self, state: SensorState, before: bool | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(state, before, state.value)
            except Exception:
                log.exception("sensor listener failed on %s", state.settings.id)

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "id": state.settings.id,
                "name": state.settings.name,
                "kind": state.settings.kind,
                "burner": state.settings.burner,
                "source": state.settings.source,
                "reading": state.reading,
                "available": state.available,
                "value": state.value,
                "changed": state.changed,
            }
            for state in self._sensors.values()
        ]
