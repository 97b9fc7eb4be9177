"""What a sensor's raw value means: booleans, thresholds with hysteresis, words, garbage."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stovectl.errors import SHOWN_CHARS, shown
from stovectl.sensors.readings import interpret, interpret_payload
from stovectl.settings import MqttSensorSettings


def sensor(**fields: Any) -> MqttSensorSettings:
    return MqttSensorSettings.model_validate(
        {"source": "mqtt", "id": "probe", "kind": "smoke", "topic": "kitchen/probe", **fields}
    )


PROBE = sensor(kind="flame", burner="left", on_above=80, off_below=60)
DETECTOR = sensor(payload_on="ALARM", payload_off="IDLE")


# Booleans and numbers.


@pytest.mark.parametrize("previous", [None, True, False])
def test_a_json_boolean_is_itself(previous: bool | None) -> None:
    """true and false read as yes and no, whatever was before."""
    assert interpret(DETECTOR, True, previous) is True
    assert interpret(DETECTOR, False, previous) is False


@pytest.mark.parametrize(
    ("raw", "previous", "expected"),
    [
        (80, None, True),  # at on_above: yes
        (300.5, False, True),
        (59.9, True, False),  # below off_below: no
        (-5, None, False),
        (60, True, True),  # in the band: the previous reading stands
        (79.9, False, False),
        (70, None, None),  # in the band with nothing before: nothing to say
    ],
)
def test_numbers_go_against_the_thresholds_with_hysteresis(
    raw: float, previous: bool | None, expected: bool | None
) -> None:
    """At or above on_above is yes, below off_below no, in between the previous reading."""
    assert interpret(PROBE, raw, previous) is expected


def test_numeric_strings_are_numbers_when_there_is_a_threshold() -> None:
    """A probe sending "123.4" (an ESPHome state, a MiOT string) is read as the number."""
    assert interpret(PROBE, " 123.4 ", None) is True
    assert interpret(PROBE, "25", True) is False
    assert interpret(PROBE, "70", False) is False


def test_without_a_threshold_only_one_and_zero_are_numbers() -> None:
    """1 and 0 are yes and no; 23.5 from a sensor without on_above is garbage."""
    assert interpret(DETECTOR, 1, None) is True
    assert interpret(DETECTOR, 0.0, True) is False
    with pytest.raises(ValueError, match=r"'probe' sent 23\.5: .*no on_above"):
        interpret(DETECTOR, 23.5, None)


@pytest.mark.parametrize("raw", [math.nan, math.inf, -math.inf, "nan", "inf", "-Infinity",
                                 "1e999", 10**400])
def test_nan_and_infinity_are_garbage(raw: object) -> None:
    """A value that is no finite number never counts as hot or cold."""
    with pytest.raises(ValueError, match="'probe'"):
        interpret(PROBE, raw, True)


# Words.


@pytest.mark.parametrize("word", ["ALARM", "alarm", " Alarm\n", "true", "ON", "1", "yes",
                                  "Detected"])
def test_yes_words(word: str) -> None:
    """payload_on and the common yes-words read yes, whatever the case and white space."""
    assert interpret(DETECTOR, word, False) is True


@pytest.mark.parametrize("word", ["IDLE", "idle", "false", "off", "0", "No", "clear"])
def test_no_words(word: str) -> None:
    """payload_off and the common no-words read no."""
    assert interpret(DETECTOR, word, True) is False


def test_the_configured_words_win_over_the_common_ones() -> None:
    """A sensor whose payload_on is "clear" (oddly) means yes by it."""
    odd = sensor(payload_on="clear", payload_off="dirty")
    assert interpret(odd, "clear", None) is True


def test_a_probe_also_takes_words() -> None:
    """A thresholded sensor still understands ON and OFF."""
    assert interpret(PROBE, "on", None) is True
    assert interpret(PROBE, "OFF", True) is False


@pytest.mark.parametrize("raw", ["maybe", "", "23.5", None, [True], {"smoke": True}])
def test_anything_else_is_garbage_naming_the_sensor_and_the_value(raw: object) -> None:
    """Unknown words, null, lists and objects raise ValueError saying who sent what."""
    with pytest.raises(ValueError, match=r"sensor 'probe' sent ") as caught:
        interpret(DETECTOR, raw, True)
    assert repr(raw)[:20] in str(caught.value)


def test_garbage_is_shown_cut_short() -> None:
    """A long bad value is cut in the message, which says how long it was."""
    with pytest.raises(ValueError) as caught:
        interpret(DETECTOR, "x" * 10_000, None)
    message = str(caught.value)
    assert len(message) < 250
    assert "(10002 chars)" in message
    assert shown("short") == "'short'"
    assert len(shown(b"\xff" * 1000)) < SHOWN_CHARS + 20


# MQTT payloads.


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"true", True),
        (b"false", False),
        (b"ALARM", True),
        (b"idle", False),
        (b'"ALARM"', True),  # a JSON string
        (b"1", True),
        (b"0", False),
    ],
)
def test_a_whole_payload_is_json_or_a_plain_word(payload: bytes, expected: bool) -> None:
    """Without a field, the payload is a JSON value or a word."""
    assert interpret_payload(DETECTOR, payload, "", None) is expected


def test_a_whole_payload_number_goes_against_the_thresholds() -> None:
    """A probe's plain "123.4" is hot; "23.5" cold."""
    assert interpret_payload(PROBE, b"123.4", "", None) is True
    assert interpret_payload(PROBE, b"23.5", "", True) is False


def test_a_field_of_a_json_object_is_read() -> None:
    """Zigbee2MQTT's {"smoke": true, ...} gives the configured field's value."""
    payload = json.dumps({"battery": 97, "smoke": True, "temperature": 23.5}).encode()
    assert interpret_payload(DETECTOR, payload, "smoke", None) is True
    assert interpret_payload(PROBE, payload, "temperature", True) is False


@pytest.mark.parametrize(
    ("payload", "field", "complaint"),
    [
        (b'{"battery": 97}', "smoke", r"no field 'smoke' \(fields: battery\)"),
        (b"true", "smoke", "not a JSON object"),
        (b"[1, 2]", "smoke", "not a JSON object"),
        (b'{"smoke": null}', "smoke", "neither a boolean"),
        (b'{"smoke": "maybe"}', "smoke", "not a reading"),
        (b"{}", "", "neither a boolean"),
        (b"null", "", "neither a boolean"),
        (b"\xff\xfe", "", "not UTF-8"),
        (b"\xff\xfe", "smoke", "not UTF-8"),
        (b"NaN", "", "not a finite number"),
        (b"[" * 100_000, "", "not a reading"),
    ],
)
def test_malformed_payloads_are_garbage(payload: bytes, field: str, complaint: str) -> None:
    """A missing field, a wrong shape, bad UTF-8, NaN, absurd nesting: ValueError, saying why."""
    with pytest.raises(ValueError, match=complaint):
        interpret_payload(DETECTOR, payload, field, True)


@given(payload=st.binary(max_size=200), field=st.sampled_from(["", "smoke"]),
       previous=st.sampled_from([None, True, False]))
def test_any_bytes_give_a_reading_or_a_value_error(
    payload: bytes, field: str, previous: bool | None
) -> None:
    """No payload makes the parser fail otherwise than with ValueError."""
    for subject in (DETECTOR, PROBE):
        try:
            result = interpret_payload(subject, payload, field, previous)
        except ValueError as error:
            assert "sensor 'probe' sent" in str(error)
        else:
            assert result in (True, False, None)


@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10,
))
def test_any_json_value_gives_a_reading_or_a_value_error(value: Any) -> None:
    """Whatever JSON a field holds, the reading is yes, no, as before, or ValueError."""
    payload = json.dumps({"smoke": value}).encode()
    try:
        result = interpret_payload(PROBE, payload, "smoke", False)
    except ValueError:
        return
    assert result in (True, False)


@given(value=st.floats(allow_nan=False, allow_infinity=False),
       previous=st.sampled_from([None, True, False]))
def test_thresholds_decide_outside_the_band_and_keep_inside(
    value: float, previous: bool | None
) -> None:
    """Every finite number reads by the thresholds; only the band keeps the previous."""
    result = interpret(PROBE, value, previous)
    if value >= 80:
        assert result is True
    elif value < 60:
        assert result is False
    else:
        assert result is previous
