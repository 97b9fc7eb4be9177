"""Durations as people write them: parsing, refusing, formatting and the round trip."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stovectl.durations import finite_seconds, format_duration, parse_duration

HOW = "write it like 90s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2.5s", timedelta(seconds=2.5)),
        ("500ms", timedelta(milliseconds=500)),
        ("2d", timedelta(days=2)),
        ("1h0m5s", timedelta(hours=1, seconds=5)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_reads_units(text: str, expected: timedelta) -> None:
    """Each unit (ms, s, m, h, d) and their concatenations read as the time they name."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90", timedelta(seconds=90)), ("2.5", timedelta(seconds=2.5)), ("0", timedelta(0))],
)
def test_parse_reads_a_bare_number_as_seconds(text: str, expected: timedelta) -> None:
    """A number without a unit means seconds."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["  1h30m ", "1h 30m", "1H30M", " 1 H 30 m"])
def test_parse_ignores_whitespace_and_case(text: str) -> None:
    """Spaces anywhere and upper-case units are accepted."""
    assert parse_duration(text) == timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5m", "negative"),
        ("-inf", "negative"),
        ("2x", "not a duration"),
        ("5 m x", "not a duration"),
        ("1h-", "not a duration"),
        ("m", "not a duration"),
        ("1.h", "not a duration"),
        ("nan", "not a duration"),
        ("inf", "not a duration"),
        ("367d", "longer than 366 days"),
        ("8785h", "longer than 366 days"),
        ("99999999999d", "longer than 366 days"),
        ("1e20", "not a duration"),
        ("99999999999d", "longer than 366 days"),
    ],
)
def test_parse_refuses_with_a_message_saying_how_to_write_it(text: str, problem: str) -> None:
    """A bad duration raises ValueError naming the problem and showing how to write one."""
    with pytest.raises(ValueError, match=problem) as caught:
        parse_duration(text)
    assert HOW in str(caught.value)


def test_parse_accepts_exactly_366_days() -> None:
    """The limit itself, 366 days, is still a duration."""
    assert parse_duration("366d") == timedelta(days=366)


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=2.5), "2.5s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(hours=1, seconds=5), "1h5s"),
        (timedelta(days=2), "48h"),
        (timedelta(hours=1, microseconds=10), "1h"),
        (timedelta(days=366, milliseconds=-1), "8783h59m59.999s"),
        (timedelta(seconds=0.9996), "1s"),
        (-timedelta(seconds=5), "-5s"),
        (90.0, "1m30s"),
        (0.25, "250ms"),
    ],
)
def test_format_writes_the_shortest_readable_form(duration: timedelta | float, text: str) -> None:
    """format_duration writes hours, minutes and seconds as parse_duration reads them."""
    assert format_duration(duration) == text


WHOLE_MINUTES_AND_A_SLIVER = st.builds(
    lambda minutes, microseconds: timedelta(minutes=minutes, microseconds=microseconds),
    st.integers(0, 366 * 24 * 60 - 1),
    st.integers(0, 999),
)


@given(
    st.one_of(
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=366)),
        WHOLE_MINUTES_AND_A_SLIVER,
    )
)
@example(timedelta(hours=1, microseconds=10))
def test_format_then_parse_gives_the_same_duration(duration: timedelta) -> None:
    """Any duration up to 366 days, formatted and parsed back, is the same within 1 ms."""
    parsed = parse_duration(format_duration(duration))
    assert abs(parsed - duration) <= timedelta(milliseconds=1)


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90.0), (1.5, 1.5), (0, 0.0), (-3, -3.0),
    (True, None), (False, None), ("90", None), (None, None), ([1], None),
    (float("nan"), None), (float("inf"), None), (10**400, None),
])
def test_finite_seconds_takes_only_finite_numbers(value: object, seconds: float | None) -> None:
    """Numbers from JSON become seconds; booleans, text, NaN, infinities and huge ints do not."""
    assert finite_seconds(value) == seconds
