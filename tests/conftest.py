"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from stovectl.settings import settings_from_mapping
from tests.support.broker import Broker, running_broker
from tests.support.kitchen import Kitchen, kitchen_config
from tests.support.virtual_time import VirtualTimeLoop

T = TypeVar("T")


@pytest.fixture
def real() -> Iterator[Callable[[Awaitable[T]], T]]:
    """Run a coroutine on an ordinary event loop, closed (with its threads) afterwards."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture
def broker() -> Iterator[Broker]:
    """An anonymous Mosquitto on a free loopback port, stopped after the test."""
    with running_broker("anonymous") as started:
        yield started


@pytest.fixture
def virtual() -> Iterator[Callable[[Awaitable[T]], T]]:
    """Run a coroutine on a VirtualTimeLoop: test minutes pass in microseconds."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        yield runner.run


@pytest.fixture
def kitchen_run(
    virtual: Callable[[Awaitable[Any]], Any], tmp_path: Path
) -> Callable[..., Any]:
    """Run ``scenario(kitchen)`` against a started Kitchen built from a config."""

    def run(
        scenario: Callable[[Kitchen], Awaitable[T]], config: dict[str, Any] | None = None
    ) -> T:
        settings = settings_from_mapping(config or kitchen_config())

        async def main() -> T:
            kitchen = Kitchen(settings, tmp_path)
            await kitchen.start()
            try:
                return await scenario(kitchen)
            finally:
                await kitchen.close()

        return virtual(main())

    return run
