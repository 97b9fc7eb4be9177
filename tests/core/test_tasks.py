"""Background tasks: kept until done, failures logged, all stopped together."""

from __future__ import annotations

import asyncio
import logging

import pytest

from stovectl.core.tasks import BackgroundTasks

log = logging.getLogger("tests.tasks")


def test_a_failing_task_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    """A task that raises is logged as an error naming it, with the traceback."""
    async def scenario() -> None:
        tasks = BackgroundTasks(log)

        async def broken() -> None:
            raise ValueError("a bug")

        task = tasks.spawn(broken(), "broken-one")
        # The logging callback was added first, so it has run when gather returns.
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.ERROR, logger="tests.tasks"):
        asyncio.run(scenario())
    [record] = caplog.records
    assert record.getMessage() == "task broken-one failed"
    assert record.exc_info is not None


def test_cancel_all_stops_every_running_task() -> None:
    """cancel_all cancels the tasks still running and returns once each has ended."""
    async def scenario() -> None:
        tasks = BackgroundTasks(log)
        started = asyncio.Event()

        async def forever() -> None:
            started.set()
            await asyncio.Event().wait()

        running = [tasks.spawn(forever(), f"forever-{n}") for n in range(3)]
        await started.wait()
        await tasks.cancel_all()
        assert all(task.cancelled() for task in running)

    asyncio.run(scenario())
