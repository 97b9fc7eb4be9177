"""Events, their subscribers and command outcomes."""

from __future__ import annotations

import logging

import pytest

from stovectl.core.events import Event, EventBus, Kind, Outcome, Result

SHUTOFF = Event(Kind.SHUTOFF, "cli", 1000.0, burner="left", result=Result.VERIFIED)


def test_every_subscriber_gets_every_event_in_order() -> None:
    """Each subscriber receives each emitted event, in the order emitted."""
    bus = EventBus()
    first: list[Event] = []
    second: list[Event] = []
    bus.subscribe(first.append)
    bus.subscribe(second.append)
    rearm = Event(Kind.REARM, "cli", 1005.0, burner="left")

    bus.emit(SHUTOFF)
    bus.emit(rearm)

    assert first == [SHUTOFF, rearm]
    assert second == [SHUTOFF, rearm]


def test_failing_subscriber_is_logged_and_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raising subscriber is logged with its traceback; the ones after it still get the event."""
    bus = EventBus()
    heard: list[Event] = []

    def broken(event: Event) -> None:
        raise ValueError("speaker unplugged")

    bus.subscribe(broken)
    bus.subscribe(heard.append)

    with caplog.at_level(logging.ERROR, logger="stovectl.core.events"):
        bus.emit(SHUTOFF)

    assert heard == [SHUTOFF]
    [record] = caplog.records
    assert "shutoff" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_unsubscribe_stops_delivery() -> None:
    """After calling the function subscribe returned, the subscriber hears nothing more."""
    bus = EventBus()
    heard: list[Event] = []
    kept: list[Event] = []
    unsubscribe = bus.subscribe(heard.append)
    bus.subscribe(kept.append)

    unsubscribe()
    bus.emit(SHUTOFF)

    assert heard == []
    assert kept == [SHUTOFF]


def test_subscriber_may_unsubscribe_while_being_called() -> None:
    """A subscriber that unsubscribes itself during delivery does not make others miss it."""
    bus = EventBus()
    heard: list[Event] = []
    unsubscribe = bus.subscribe(lambda event: unsubscribe())
    bus.subscribe(heard.append)

    bus.emit(SHUTOFF)
    bus.emit(SHUTOFF)

    assert heard == [SHUTOFF, SHUTOFF]


@pytest.mark.parametrize("result", [*Result, None])
def test_as_dict_is_verified_only_for_verified(result: Result | None) -> None:
    """as_dict says verified=True exactly when the result is VERIFIED."""
    data = Event(Kind.SHUTOFF, "mqtt", 1000.0, burner="left", result=result).as_dict()

    assert data["verified"] is (result is Result.VERIFIED)
    assert data["result"] == result
    assert data["burner"] == "left"
    assert data["kind"] == "shutoff"


@pytest.mark.parametrize(
    ("result", "success"),
    [
        (Result.VERIFIED, True),
        (Result.DONE, True),
        (Result.UNVERIFIED, False),
        (Result.FAILED, False),
        (Result.REFUSED, False),
    ],
)
def test_outcome_success_is_verified_or_done(result: Result, success: bool) -> None:
    """Only a verified or a nothing-to-do outcome is a success; unverified is not."""
    assert Outcome("left", result).is_success is success


def test_outcome_as_dict_carries_every_field() -> None:
    """An outcome as a dict has burner, result, message, latency and device."""
    outcome = Outcome("left", Result.VERIFIED, "cut", 12.5, "sim")
    assert outcome.as_dict() == {
        "burner": "left", "result": "verified", "message": "cut", "latency_ms": 12.5,
        "device": "sim",
    }
