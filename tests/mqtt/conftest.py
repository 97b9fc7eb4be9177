"""Fixtures for MQTT tests: real Mosquitto brokers and paho clients that observe them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.broker import Broker, Variant, running_broker
from tests.support.mqtt_probe import Probe


@pytest.fixture
def start_broker() -> Iterator[Callable[[Variant], Broker]]:
    """Start a broker of a variant; each one must survive the test and is stopped after it."""
    with contextlib.ExitStack() as stack:

        def start(variant: Variant) -> Broker:
            return stack.enter_context(running_broker(variant))

        yield start


@pytest.fixture
def start_probe(start_broker: Callable[[Variant], Broker]) -> Iterator[Callable[..., Probe]]:
    """Open a Probe without waiting for its CONNACK; all are closed before the brokers stop."""
    with contextlib.ExitStack() as stack:

        def start(broker: Broker, **options: Any) -> Probe:
            probe = Probe(broker, **options)
            stack.callback(probe.close)
            probe.start()
            return probe

        yield start


@pytest.fixture
def connect(start_probe: Callable[..., Probe]) -> Callable[..., Probe]:
    """Open a Probe and return it once the broker has accepted it."""

    def connected(broker: Broker, **options: Any) -> Probe:
        probe = start_probe(broker, **options)
        code = probe.connack()
        assert not code.is_failure, f"{probe.client_id} refused: {code}\n{broker.log}"
        return probe

    return connected
