"""Fixtures for the tool tests; their helpers live in ``miio_lan``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest


@pytest.fixture
def real() -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Run a coroutine on an ordinary event loop, closed (with its threads) afterwards."""
    with asyncio.Runner() as runner:
        yield runner.run
