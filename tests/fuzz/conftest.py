"""The campaign's fixtures: one Tally per module, printed (visible with -s) when it ends, and
one LogGuard per module, attached from its first test to its last."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.campaign import LogGuard, Tally, guarded_logs


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """What this module tried, printed as one line after its last test."""
    record = Tally(request.module.__name__.rsplit(".", 1)[-1])
    yield record
    print(f"\n{record.line()}")


@pytest.fixture(scope="module")
def log_guard() -> Iterator[LogGuard]:
    """Collects what stovectl and asyncio log as errors or with tracebacks; tests take() it."""
    with guarded_logs() as guard:
        yield guard
