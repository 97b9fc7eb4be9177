"""Figures beside their floors: the statistics, the table and the JSON record.

Every benchmark reports a Figure: one measured value, the floor it is judged
against (measured in the same run), and an optional target. The ratio
value / floor is what survives a slow or busy machine; the absolute value is
what a user feels, and what a target is about.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stovectl.control.client import ControlClient
from stovectl.errors import ControlError


class BenchError(Exception):
    """A benchmark could not measure what it meant to; the run fails with this message."""


def ask(client: ControlClient, op: str, **args: Any) -> Any:
    """One request over an open control socket; its result, or BenchError saying why not."""
    try:
        reply = client.call(op, **args)
    except ControlError as error:
        raise BenchError(f"{op} over the socket: {error}") from None
    if not reply.get("ok"):
        raise BenchError(f"{op} over the socket was refused: {reply.get('error')}")
    return reply["result"]


def percentile(samples: Sequence[float], percent: float) -> float:
    """The ``percent``-th percentile, interpolating between the nearest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * percent / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, p90, p99, min and max of ``samples``, and how many there were."""
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "p90": percentile(samples, 90),
        "p99": percentile(samples, 99),
        "min": min(samples),
        "max": max(samples),
    }


@dataclass(frozen=True)
class Figure:
    """One measured value, the floor it is compared with, and perhaps a target."""

    name: str
    value: float
    floor_name: str
    floor_value: float
    unit: str
    target_max: float | None = None
    """The value should be at most this (same unit); None when the issue sets no target."""
    decimals: int = 1
    """How many decimals the table shows of the value and the floor."""

    @property
    def ratio(self) -> float:
        return self.value / self.floor_value if self.floor_value > 0 else math.inf

    @property
    def meets_target(self) -> bool | None:
        return None if self.target_max is None else self.value <= self.target_max

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "value": round(self.value, 3),
            "floor": {"name": self.floor_name, "value": round(self.floor_value, 3)},
            "ratio": round(self.ratio, 3),
            "target_max": self.target_max,
            "meets_target": self.meets_target,
        }


def _amount(value: float, unit: str, decimals: int = 1) -> str:
    return f"{value:.{decimals}f} {unit}"


def _ratio(ratio: float) -> str:
    """Two decimals; two significant digits below 0.1, where two decimals would say 0.00."""
    return f"{ratio:.2g}x" if 0 < abs(ratio) < 0.1 else f"{ratio:.2f}x"


def _target(figure: Figure) -> str:
    if figure.target_max is None:
        return ""
    verdict = "met" if figure.meets_target else "MISSED"
    return f"<= {figure.target_max:g} {figure.unit}  {verdict}"


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as an aligned plain-text table: name | value | floor | ratio | target."""
    header = ("name", "value", "floor", "ratio", "target")
    floor_width = max(
        (len(_amount(f.floor_value, f.unit, f.decimals)) for f in figures), default=0
    )
    rows = [
        (
            figure.name,
            _amount(figure.value, figure.unit, figure.decimals),
            f"{_amount(figure.floor_value, figure.unit, figure.decimals).rjust(floor_width)}"
            f"  {figure.floor_name}",
            _ratio(figure.ratio),
            _target(figure),
        )
        for figure in figures
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    right_aligned = {1, 3}

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if i in right_aligned else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return " | ".join(padded).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
