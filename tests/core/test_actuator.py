"""One burner's lane to its relay: write, read back, retry, alarm and recover (DESIGN §2)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest

from stovectl.core.actuator import CALL_GUARD_SECONDS, FIRST_RETRY_SECONDS, Actuator
from stovectl.core.burner import Burner
from stovectl.core.events import Result
from stovectl.devices.base import Capabilities, RelayState
from stovectl.errors import DeviceRefused, DeviceUnavailable
from stovectl.settings import BurnerSettings
from tests.support.virtual_time import VirtualClock, VirtualTimeLoop

Run = Callable[[Awaitable[Any]], Any]
ON, OFF = RelayState.ON, RelayState.OFF
CHANNEL = 2
ALARM_AFTER = 10.0
RETRY_MAX = 1.0


class FakeRelay:
    """A two-channel relay in memory that can be told to misbehave in the ways real ones do."""

    def __init__(self, *, read_back: bool = True) -> None:
        self.states = {1: OFF, 2: OFF}
        self._capabilities = Capabilities(read_back=read_back)
        self.delay = 0.0
        """Seconds each request takes."""
        self.offline = False
        """Every request fails with DeviceUnavailable."""
        self.fail_writes = 0
        """The next this many writes fail with DeviceUnavailable."""
        self.foreign_failures = 0
        """The next this many writes raise ValueError, as a buggy adapter would."""
        self.hang_writes = 0
        """The next this many writes never answer."""
        self.ignore_writes = False
        """Writes are acknowledged but switch nothing (a stuck relay)."""
        self.write_times: list[float] = []
        self.reads = 0
        self.unreachable = False
        """Writes fail in a way that proves they never reached the device."""
        self.refuse_writes = False
        """Writes are answered no (DeviceRefused), as a broker's ACL or a -4005 does."""
        self.can_pulse = False
        """Offer a device-side return, as a MiOT off-delay does."""
        self.pulses: list[tuple[int, RelayState, float]] = []

    @property
    def id(self) -> str:
        return "plug"

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def poll_interval_seconds(self) -> float:
        return 1.0

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        return self.can_pulse

    async def pulse(self, channel: int, state: RelayState, seconds: float) -> None:
        self.pulses.append((channel, state, seconds))
        await self.write(channel, state)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def write(self, channel: int, state: RelayState) -> None:
        self.write_times.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.delay)
        if self.hang_writes:
            self.hang_writes -= 1
            await asyncio.get_running_loop().create_future()
        if self.foreign_failures:
            self.foreign_failures -= 1
            raise ValueError("unexpected payload from the device library")
        if self.unreachable:
            raise DeviceUnavailable(self.id, "no answer to hello", may_have_acted=False)
        if self.refuse_writes:
            raise DeviceRefused(self.id, "the broker refused the publish: not authorised")
        if self.offline or self.fail_writes:
            self.fail_writes = max(0, self.fail_writes - 1)
            raise DeviceUnavailable(self.id, "no answer")
        if not self.ignore_writes:
            self.states[channel] = state

    async def read(self) -> dict[int, RelayState]:
        self.reads += 1
        await asyncio.sleep(self.delay)
        if self.offline:
            raise DeviceUnavailable(self.id, "no answer")
        return dict(self.states)


class RecordingListener:
    """Records what the actuator tells the controller, and lets a test await it."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, BaseException | None]] = []
        self.seen: list[RelayState] = []
        self.settlements: list[tuple[RelayState, Result]] = []
        self.pulsed_at: list[float | None] = []
        self.alarm_messages: list[str] = []
        self.recovery_messages: list[str] = []
        self._changed = asyncio.Event()

    def device_answered(self, device: str, error: BaseException | None) -> None:
        self.answers.append((device, error))
        self._changed.set()

    def relay_seen(self, burner: Burner, state: RelayState) -> None:
        self.seen.append(state)
        self._changed.set()

    def settled(
        self, burner: Burner, state: RelayState, result: Result, pulsed_at: float | None
    ) -> None:
        self.settlements.append((state, result))
        self.pulsed_at.append(pulsed_at)
        self._changed.set()

    def alarm(self, burner: Burner, message: str) -> None:
        self.alarm_messages.append(message)
        self._changed.set()

    def recovered(self, burner: Burner, state: RelayState, message: str) -> None:
        self.recovery_messages.append(message)
        self._changed.set()

    async def wait_for(self, condition: Callable[[], bool], within: float) -> None:
        """Return once ``condition()`` holds, failing after ``within`` (virtual) seconds."""
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def running(
    relay: FakeRelay, listener: RecordingListener
) -> AsyncIterator[Actuator]:
    """An actuator for burner 'left' (NC wiring, channel 2) with its loop running."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    burner = Burner(BurnerSettings(id="left", device="plug", channel=CHANNEL, cut_state="on"))
    actuator = Actuator(burner, relay, listener, VirtualClock(loop), ALARM_AFTER, RETRY_MAX)
    task = asyncio.create_task(actuator.run(), name="actuator-left")
    try:
        yield actuator
        assert not task.done(), "the actuator's loop ended"
    finally:
        actuator.stop()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def now() -> float:
    return asyncio.get_running_loop().time()


def test_verified_on_the_first_try(virtual: Run) -> None:
    """A healthy relay is written once, read back, and the waiter hears VERIFIED with latency."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.delay = 0.01

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            outcome = await actuator.request(ON)

            assert outcome.result is Result.VERIFIED
            assert (outcome.burner, outcome.device) == ("left", "plug")
            assert outcome.latency_ms == pytest.approx(20.0)
            assert relay.states == {1: OFF, 2: ON}
            assert len(relay.write_times) == 1
            assert listener.seen == [ON]
            assert listener.settlements == [(ON, Result.VERIFIED)]
            assert listener.answers == [("plug", None), ("plug", None)]
            assert listener.alarm_messages == []
            assert not actuator.busy

    virtual(scenario())


def test_explicit_state_is_written_even_when_already_held(virtual: Run) -> None:
    """Asking for the state the relay already has still writes it (no toggles, no guessing)."""
    relay, listener = FakeRelay(), RecordingListener()

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            outcome = await actuator.request(OFF)

            assert outcome.result is Result.VERIFIED
            assert len(relay.write_times) == 1

    virtual(scenario())


def test_failed_writes_are_retried_with_growing_capped_backoff(virtual: Run) -> None:
    """Failed writes are retried at growing intervals capped at retry_max, then verified."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.fail_writes = 10

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            start = now()
            outcome = await actuator.request(ON)

            assert outcome.result is Result.VERIFIED
            assert now() - start < ALARM_AFTER
            assert len(relay.write_times) == 11
            intervals = [b - a for a, b in itertools.pairwise(relay.write_times)]
            assert intervals[0] == pytest.approx(FIRST_RETRY_SECONDS)
            assert intervals[0] < RETRY_MAX
            for shorter, longer in itertools.pairwise(intervals):
                assert longer >= shorter - 1e-9, "backoff never shrinks"
            assert intervals[-1] > intervals[0], "backoff grows"
            assert max(intervals) == pytest.approx(RETRY_MAX)
            assert intervals[-1] == pytest.approx(RETRY_MAX)
            failures = [error for _, error in listener.answers if error is not None]
            assert len(failures) == 10
            assert all(isinstance(error, DeviceUnavailable) for error in failures)
            assert listener.alarm_messages == []

    virtual(scenario())


def test_unverified_cut_fails_at_alarm_after_and_alarms_once(virtual: Run) -> None:
    """With the device away, every waiter hears FAILED at alarm_after, and one alarm goes out."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.offline = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            start = now()
            first, second = await asyncio.gather(actuator.request(ON), actuator.request(ON))

            assert now() - start == pytest.approx(ALARM_AFTER)
            for outcome in (first, second):
                assert outcome.result is Result.FAILED
                assert outcome.latency_ms is None
                assert outcome.message.startswith("left: cut not verified after 10s")
                assert "device 'plug' channel 2" in outcome.message
                assert "still retrying" in outcome.message
            assert listener.alarm_messages == [first.message]
            assert actuator.alarmed

            later = await actuator.request(ON)
            assert later.result is Result.FAILED
            assert len(listener.alarm_messages) == 1

    virtual(scenario())


def test_retrying_goes_on_after_the_alarm(virtual: Run) -> None:
    """Past alarm_after the actuator keeps writing, at most retry_max apart."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.offline = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            await actuator.request(ON)
            writes = len(relay.write_times)

            await listener.wait_for(lambda: len(relay.write_times) >= writes + 5, within=10)

            assert actuator.busy
            assert now() - relay.write_times[writes - 1] <= 5 * RETRY_MAX + 1e-6

    virtual(scenario())


def test_success_after_the_alarm_is_reported_as_recovered(virtual: Run) -> None:
    """When the device comes back after an alarm, the cut verifies and recovered is called once."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.offline = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            assert (await actuator.request(ON)).result is Result.FAILED
            assert listener.recovery_messages == []

            relay.offline = False
            await listener.wait_for(lambda: bool(listener.recovery_messages), within=2 * RETRY_MAX)

            assert listener.recovery_messages == ["left: relay now on (verified)"]
            assert listener.settlements == [(ON, Result.VERIFIED)]
            assert relay.states[CHANNEL] is ON
            assert not actuator.alarmed
            assert (await actuator.request(ON)).result is Result.VERIFIED
            assert len(listener.recovery_messages) == 1

    virtual(scenario())


def test_request_for_the_other_state_supersedes(virtual: Run) -> None:
    """A re-arm asked during an unverified cut fails the cut's waiter at once as superseded."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.offline = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            cut = actuator.request(ON)
            await listener.wait_for(lambda: len(relay.write_times) >= 3, within=ALARM_AFTER / 2)
            asked = now()

            rearm = actuator.request(OFF)

            assert cut.done()
            assert cut.result().result is Result.FAILED
            assert "superseded" in cut.result().message
            relay.offline = False
            assert (await rearm).result is Result.VERIFIED
            assert now() - asked <= RETRY_MAX
            assert relay.states[CHANNEL] is OFF
            await asyncio.sleep(ALARM_AFTER)  # Past the cut's alarm time, which must not come.
            assert listener.settlements == [(OFF, Result.VERIFIED)]
            assert listener.alarm_messages == []

    virtual(scenario())


def test_device_without_read_back_gives_unverified(virtual: Run) -> None:
    """A device that cannot report state is written until acknowledged, and reported UNVERIFIED."""
    relay, listener = FakeRelay(read_back=False), RecordingListener()
    relay.fail_writes = 2

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            outcome = await actuator.request(ON)

            assert outcome.result is Result.UNVERIFIED
            assert not outcome.is_success
            assert len(relay.write_times) == 3
            assert relay.reads == 0
            assert listener.settlements == [(ON, Result.UNVERIFIED)]

    virtual(scenario())


def test_stuck_relay_is_not_taken_at_its_word(virtual: Run) -> None:
    """A relay that acknowledges but does not switch fails at alarm_after, saying what it read."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.ignore_writes = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            outcome = await actuator.request(ON)

            assert outcome.result is Result.FAILED
            assert "channel 2 reads off after being told on" in outcome.message
            assert listener.settlements == []
            assert set(listener.seen) == {OFF}

    virtual(scenario())


def test_hanging_call_is_abandoned_after_the_guard(virtual: Run) -> None:
    """A write that never answers is given up after the call guard, and the next one verifies."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.hang_writes = 1

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            start = now()
            outcome = await actuator.request(ON)
            assert outcome.result is Result.FAILED
            assert "no answer yet" in outcome.message

            await listener.wait_for(lambda: bool(listener.settlements), within=CALL_GUARD_SECONDS)

            assert listener.settlements == [(ON, Result.VERIFIED)]
            assert relay.write_times[1] - start >= CALL_GUARD_SECONDS
            timeouts = [error for _, error in listener.answers if error is not None]
            assert len(timeouts) == 1
            assert isinstance(timeouts[0], TimeoutError)

    virtual(scenario())


def test_foreign_exception_is_logged_and_retried(
    virtual: Run, caplog: pytest.LogCaptureFixture
) -> None:
    """A ValueError from an adapter is logged with its traceback, treated as unknown and retried."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.foreign_failures = 2

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            outcome = await actuator.request(ON)

            assert outcome.result is Result.VERIFIED
            assert len(relay.write_times) == 3
            assert relay.states[CHANNEL] is ON

    with caplog.at_level(logging.ERROR, logger="stovectl.core.actuator"):
        virtual(scenario())

    assert len(caplog.records) == 2
    for record in caplog.records:
        assert record.getMessage() == "device plug: unexpected error on write"
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], ValueError)


def test_stop_fails_every_waiter(virtual: Run) -> None:
    """Stopping the actuator answers every waiting request as FAILED, the daemon is stopping."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.offline = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            waiting = actuator.request(ON)
            actuator.stop()

            outcome = await waiting
            assert outcome.result is Result.FAILED
            assert outcome.message == "the daemon is stopping"
            assert not actuator.busy

    virtual(scenario())


def test_a_shutoff_pulse_uses_the_device_timer_where_offered(virtual: Run) -> None:
    """With pulse_seconds and a device that can pulse, the pulse is sent and reported."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.can_pulse = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            sent = now()
            outcome = await actuator.request(ON, pulse_seconds=5.0)
            assert outcome.result is Result.VERIFIED
            assert relay.pulses == [(CHANNEL, ON, 5.0)]
            assert listener.pulsed_at == [sent]

    virtual(scenario())


def test_without_device_pulses_a_pulse_request_is_a_plain_write(virtual: Run) -> None:
    """A device that cannot pulse gets a plain explicit write, and no pulse is reported."""
    relay, listener = FakeRelay(), RecordingListener()

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            outcome = await actuator.request(ON, pulse_seconds=5.0)
            assert outcome.result is Result.VERIFIED
            assert relay.pulses == []
            assert listener.pulsed_at == [None]

    virtual(scenario())


def test_a_lock_supersedes_a_pending_pulse_of_the_same_state(virtual: Run) -> None:
    """A plain request for the state a pulse drives to replaces the pulse (locks never pulse)."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.can_pulse = True
    relay.offline = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            pulsed = actuator.request(ON, pulse_seconds=5.0)
            await asyncio.sleep(0.5)
            locked = actuator.request(ON)
            assert (await pulsed).message.startswith("superseded")
            relay.offline = False
            assert (await locked).result is Result.VERIFIED
            assert listener.pulsed_at == [None], "the lock's write was not a pulse"

    virtual(scenario())


def test_a_lock_after_a_device_pulse_is_verified_only_once_its_write_is_answered(
    virtual: Run,
) -> None:
    """After a shutoff the device times its own return; a lock whose write got no answer
    reads cut all the same (the pulse holds it), so it is written again until answered."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.can_pulse = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            assert (await actuator.request(ON, pulse_seconds=5.0)).result is Result.VERIFIED
            relay.fail_writes = 2  # lost answers: the device may or may not have taken them
            outcome = await actuator.request(ON)
            assert outcome.result is Result.VERIFIED
            assert len(relay.write_times) == 1 + 3, "the pulse, two unanswered, one answered"
            relay.fail_writes = 1  # the timer is known ended now: a cut read back is a cut
            assert (await actuator.request(ON)).result is Result.VERIFIED
            assert len(relay.write_times) == 4 + 1

    virtual(scenario())


def test_a_second_shutoff_during_a_device_pulse_is_verified_only_once_answered(
    virtual: Run,
) -> None:
    """A shutoff while the device still times the last one's return: its unanswered pulse
    reads cut all the same, so a write must be answered (a relay seen armed needs none)."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.can_pulse = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            assert (await actuator.request(ON, pulse_seconds=5.0)).result is Result.VERIFIED
            relay.fail_writes = 1
            second = await actuator.request(ON, pulse_seconds=5.0)
            assert second.result is Result.VERIFIED
            assert len(relay.write_times) == 1 + 2, "the first pulse, a lost one, a plain cut"

    virtual(scenario())


def test_no_read_back_after_a_write_that_never_left(virtual: Run) -> None:
    """When a write surely never reached the device, the attempt skips the read-back."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.unreachable = True

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            pending = actuator.request(ON)
            await asyncio.sleep(1)
            assert len(relay.write_times) > 1
            assert relay.reads == 0
            relay.unreachable = False
            assert (await pending).result is Result.VERIFIED
            assert relay.reads == 1

    virtual(scenario())


def test_a_refused_write_stays_in_the_message_when_the_read_back_fails_too(
    virtual: Run,
) -> None:
    """A refusal (an ACL denial, -4005) is named even though the read after it failed too."""
    relay, listener = FakeRelay(), RecordingListener()
    relay.refuse_writes = True
    relay.offline = True  # reads fail with "no answer"; writes are refused first

    async def scenario() -> None:
        async with running(relay, listener) as actuator:
            outcome = await actuator.request(ON)

            assert outcome.result is Result.FAILED
            assert "not authorised" in outcome.message
            assert "no answer" in outcome.message

    virtual(scenario())
