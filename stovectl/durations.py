"""Durations as people write them in config files and on the command line.

``90s``, ``15m``, ``1h30m``, ``2.5s``, ``500ms``; a bare number means seconds.
Kept free of pydantic and click so the CLI client can import it cheaply.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_BARE = re.compile(r"\d+(?:\.\d+)?")
"""A bare number of seconds; no exponents, underscores, NaN or infinity."""
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_MAX = timedelta(days=366)
_HOW = "write it like 90s, 15m or 1h30m"


def parse_duration(text: str) -> timedelta:
    """Read a duration like ``1h30m``; raise ValueError saying what is wrong."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError(f"empty duration; {_HOW}")
    if cleaned.startswith("-"):
        raise ValueError(f"{text!r} is negative; a duration must be positive: {_HOW}")
    seconds = float(cleaned) if _BARE.fullmatch(cleaned) else _parse_parts(text, cleaned)
    # Compared before building the timedelta, which overflows past 999999999 days.
    if seconds > _MAX.total_seconds():
        raise ValueError(f"{text!r} is longer than 366 days; {_HOW}")
    return timedelta(seconds=seconds)


def _parse_parts(text: str, cleaned: str) -> float:
    position = 0
    seconds = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(cleaned) or position == 0:
        raise ValueError(
            f"{text!r} is not a duration; {_HOW} (units: ms, s, m, h, d)"
        )
    return seconds


def format_duration(duration: timedelta | float) -> str:
    """Write a duration the way ``parse_duration`` reads it, e.g. ``1h30m``."""
    total = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    if total < 0:
        return "-" + format_duration(-total)
    # Whole milliseconds, the finest unit parse_duration reads: a finer fraction would
    # print in exponent notation ("1e-05s"), which it cannot read back.
    total = round(total, 3)
    if total < 1 and total != 0:
        return f"{round(total * 1000)}ms"
    whole = int(total)
    fraction = total - whole
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or fraction or not parts:
        parts.append(f"{round(seconds + fraction, 3):g}s" if fraction else f"{seconds}s")
    return "".join(parts)


def finite_seconds(value: object) -> float | None:
    """A number from JSON as seconds, or None: not a number, a boolean, or not finite.

    Python's JSON parser reads NaN, Infinity and 1e999 (as inf); none is a usable
    amount of time, and booleans are ints to Python but never an amount of time.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None
