"""The bad-input campaign's shared rules: how many examples, what was tried, what counts as a bug.

Every module of ``tests/fuzz`` feeds one boundary of the daemon with input
nobody should send (MQTT payloads, control-socket frames, config files, device
replies) and checks DESIGN §2 after each example. Two Hypothesis profiles size
the campaign: ``fuzz-bounded`` (derandomized, so ``make test`` tries the same
examples every run and stays quick; Hypothesis also draws literals from the
modules loaded, so a run of tests/fuzz alone tries other ones) and
``fuzz-soak`` (random, many more examples), chosen by the environment variable
``SOAK`` (any value but empty or ``0``; not a ``STOVECTL_`` name, which the
daemon would refuse as a misspelt setting). Neither profile writes a Hypothesis
database: a failure prints its example and a reproduction blob.

A traceback in the log is a bug (STYLE rule 9), so ``LogGuard`` collects every
record at ERROR or above, and every record that carries a traceback, from
stovectl's loggers and asyncio's; a test asserts it stays empty.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SOAK = os.environ.get("SOAK", "").strip() not in ("", "0")
BOUNDED_PROFILE = "fuzz-bounded"
SOAK_PROFILE = "fuzz-soak"
_SHARED: dict[str, Any] = {
    "database": None,
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
    ],
}
settings.register_profile(BOUNDED_PROFILE, derandomize=True, **_SHARED)
settings.register_profile(SOAK_PROFILE, derandomize=False, **_SHARED)
PROFILE = SOAK_PROFILE if SOAK else BOUNDED_PROFILE

def budget(bounded: int, soak: int) -> settings:
    """Settings for one fuzz test: ``bounded`` examples in ``make test``, ``soak`` under SOAK."""
    return settings(
        settings.get_profile(PROFILE),
        max_examples=soak if PROFILE == SOAK_PROFILE else bounded,
    )


class Tally:
    """What one module tried: examples per test, kinds of input, and notable outcomes."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.examples: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    def tried(self, test: str, *kinds: str) -> None:
        self.examples[test] += 1
        self.kinds.update(kinds)

    def saw(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def line(self) -> str:
        def listed(counter: Counter[str]) -> str:
            return ", ".join(f"{name} {count}" for name, count in counter.most_common())

        text = (f"{self.module} [{PROFILE}]: {sum(self.examples.values())} examples "
                f"({listed(self.examples)}); inputs: {listed(self.kinds)}")
        if self.outcomes:
            text += f"; outcomes: {listed(self.outcomes)}"
        return text


class LogGuard(logging.Handler):
    """Collects log records that mean a bug: ERROR and above, or any with a traceback."""

    WATCHED = ("stovectl", "asyncio")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def take(self) -> list[str]:
        """The collected records as text, forgetting them."""
        taken = [f"{r.name} {r.levelname}: {r.getMessage()}" for r in self.records]
        self.records.clear()
        return taken


@contextmanager
def guarded_logs() -> Iterator[LogGuard]:
    guard = LogGuard()
    loggers = [logging.getLogger(name) for name in LogGuard.WATCHED]
    for logger in loggers:
        logger.addHandler(guard)
    try:
        yield guard
    finally:
        for logger in loggers:
            logger.removeHandler(guard)


# -- junk shared by several boundaries ------------------------------------------------

NASTY_TEXT = st.sampled_from([
    "", " ", "\x00", "\ufeff", "\u202e", "左灶", "🔥", "\ud7ff", "NaN", "Infinity", "-0",
    "1e999", "null", "true", "OFF ", "off", "LOCK\n", "all", "../../etc/passwd", "%s%s%n",
    "' OR 1=1 --", "\\u0000", "a" * 300,
])
TEXT = st.text(max_size=24) | NASTY_TEXT
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.sampled_from([0, -1, 1, 10**30, -(10**30), 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308, 0.1, 1e-9]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
