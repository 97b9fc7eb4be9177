"""Fixtures for end-to-end tests: the real daemon as a subprocess (tests.support.daemon)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.support.daemon import DaemonProcess, hob_config, running_daemon


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., DaemonProcess]]:
    """Start a daemon on ``hob_config(**options)``; each one is stopped and checked at teardown."""
    with contextlib.ExitStack() as stack:

        def start(**options: str) -> DaemonProcess:
            return stack.enter_context(running_daemon(hob_config(**options)))

        yield start


@pytest.fixture
def daemon(start_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A daemon on the two-burner test hob: cut_hold 2s, alarm_after 1s, no fault."""
    return start_daemon()
