"""What a sensor's raw value means: yes, no, or "as before", by one set of rules.

A flame probe sends degrees, a Zigbee detector a JSON object with a boolean
field, an ESPHome binary sensor a word, a MiOT detector a property value. The
MQTT and MiOT adapters and the simulators all read them here, so the same
value means the same thing whatever carried it. Pure functions, no I/O.

The rules (``interpret``):

* A JSON boolean is itself.
* A number (int, float, or a numeric string) when ``on_above`` is set: at or
  above ``on_above`` is yes, below ``off_below`` is no, and in between the
  previous reading stands (hysteresis). Without ``on_above`` only 1 and 0 are
  numbers a sensor may send (yes and no).
* A word, case-insensitively and with surrounding white space ignored:
  ``payload_on`` / ``payload_off`` first, then the words every firmware uses:
  true/1/on/yes/detected for yes and false/0/off/no/clear for no.
* Anything else (null, a list, NaN, infinity, an unknown word) is garbage and
  raises ``ValueError`` naming the sensor and what it sent, cut short when long.

``interpret`` returns the previous reading, which may be None, when a number
falls in the hysteresis band: None then means "nothing to report yet".
"""

from __future__ import annotations

import json
import math
from typing import Any

from stovectl.errors import shown
from stovectl.settings import SensorSettings

YES_WORDS = frozenset({"true", "1", "on", "yes", "detected"})
NO_WORDS = frozenset({"false", "0", "off", "no", "clear"})
_NOT_JSON: Any = object()


def _garbage(sensor: SensorSettings, raw: object, why: str) -> ValueError:
    return ValueError(f"sensor {sensor.id!r} sent {shown(raw)}: {why}")


def interpret(sensor: SensorSettings, raw: object, previous: bool | None) -> bool | None:
    """The reading ``raw`` gives: yes, no, or ``previous`` inside the hysteresis band."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:  # an integer of hundreds of digits
            raise _garbage(sensor, raw, "not a finite number") from None
        return _number(sensor, raw, value, previous)
    if isinstance(raw, str):
        return _text(sensor, raw, previous)
    raise _garbage(sensor, raw, "neither a boolean, a number nor a word")


def _number(
    sensor: SensorSettings, raw: object, value: float, previous: bool | None
) -> bool | None:
    if not math.isfinite(value):
        raise _garbage(sensor, raw, "not a finite number")
    if sensor.on_above is None:
        if value in (0, 1):
            return value == 1
        raise _garbage(sensor, raw, "a number, but the sensor has no on_above threshold")
    off_below = sensor.on_above if sensor.off_below is None else sensor.off_below
    if value >= sensor.on_above:
        return True
    if value < off_below:
        return False
    return previous


def _text(sensor: SensorSettings, raw: str, previous: bool | None) -> bool | None:
    word = raw.strip().casefold()
    if word == sensor.payload_on.casefold():
        return True
    if word == sensor.payload_off.casefold():
        return False
    if sensor.on_above is not None:
        try:
            value = float(word)
        except ValueError:
            pass
        else:
            return _number(sensor, raw, value, previous)
    if word in YES_WORDS:
        return True
    if word in NO_WORDS:
        return False
    expected = f"{sensor.payload_on!r} or {sensor.payload_off!r}"
    if sensor.on_above is not None:
        expected += " or a number"
    raise _garbage(sensor, raw, f"not a reading (expected {expected})")


def interpret_payload(
    sensor: SensorSettings, payload: bytes, field: str, previous: bool | None
) -> bool | None:
    """The reading of an MQTT payload: JSON object ``field``, or the whole payload.

    The whole payload may be JSON itself (``true``, ``23.5``, ``"ON"``) or a
    plain word; an object or a list there is garbage, as is a missing field.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise _garbage(sensor, payload, "not UTF-8 text") from None
    value = _json(text)
    if field:
        if not isinstance(value, dict):
            raise _garbage(sensor, payload, f"not a JSON object with field {field!r}")
        if field not in value:
            fields = ", ".join(sorted(value)[:10]) or "none"
            raise _garbage(sensor, payload, f"no field {field!r} (fields: {fields})")
        return interpret(sensor, value[field], previous)
    if value is _NOT_JSON:
        return _text(sensor, text, previous)
    return interpret(sensor, value, previous)



def _json(text: str) -> Any:
    """The decoded JSON value, or ``_NOT_JSON`` for a plain word (or worse)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON
