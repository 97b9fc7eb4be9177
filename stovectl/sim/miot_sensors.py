"""A MiOT sensor property, served by a simulated miIO device for ``stovectl simulate``.

The daemon polls a MiOT sensor with ``get_properties`` (``sensors/miot.py``);
here that property lives on a ``SimulatedMiioDevice``, the config's relay
simulator when the sensor shares its host, else a device of its own. A flame
sensor serves its burner's thermocouple temperature (when it has ``on_above``,
like a probe on an ADC) or whether the burner burns; presence, gas and smoke
serve what ``set`` says, as booleans, which is how MiOT detectors spell alarms.
"""

from __future__ import annotations

from stovectl.settings import MiotSensorSettings
from stovectl.sim.miio_device import SimulatedMiioDevice
from stovectl.sim.miio_models import Value
from stovectl.sim.sensors import TICK_SECONDS, FlameWatch
from stovectl.sim.stove import BurnerSnapshot, Stove


class SimulatedMiotSensor:
    """One sensor's (siid, piid) on ``device``, kept up to date."""

    def __init__(
        self,
        settings: MiotSensorSettings,
        device: SimulatedMiioDevice,
        stove: Stove | None = None,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self.settings = settings
        self.device = device
        self.iid = (settings.siid, settings.piid)
        self._watch: FlameWatch | None = None
        if settings.burner is not None:
            if stove is None or settings.burner not in stove.burner_ids:
                raise ValueError(f"sensor {settings.id!r}: burner {settings.burner!r} is not "
                                 "on the simulated stove")
            self._watch = FlameWatch(stove, settings.burner, tick_seconds)
            self._watch.listen(self._serve)
            self._serve(self._watch.snapshot())
        else:
            device.set_property(self.iid, False)

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def value(self) -> Value:
        """What the property reads now."""
        return self.device.values[self.iid]

    def start(self) -> None:
        """Follow the burner (a flame sensor) on the running loop."""
        if self._watch is not None:
            self._watch.start()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.stop()

    def set(self, value: bool) -> None:
        """Presence, gas or smoke detected (True) or gone (False)."""
        if self._watch is not None:
            raise ValueError(f"sensor {self.id!r} follows its burner's flame")
        self.device.set_property(self.iid, value)

    def describe(self) -> str:
        serves = "temperature" if self.settings.on_above is not None else "true/false"
        return (f"{self.settings.kind} {self.id} serves {serves} at siid {self.iid[0]} "
                f"piid {self.iid[1]}")

    def _serve(self, snapshot: BurnerSnapshot) -> None:
        if self.settings.on_above is not None:
            self.device.set_property(self.iid, round(snapshot.thermocouple_c, 1))
        else:
            self.device.set_property(self.iid, snapshot.flame)
