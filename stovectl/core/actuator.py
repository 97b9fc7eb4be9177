"""Drives one burner's relay to the state its intent wants, and proves it.

Each request is an explicit state, written and then read back (DESIGN §2 rule
2); an attempt that is not seen to work is retried with backoff, for as long as
it takes (rule 3). Each waiter gets an answer within ``alarm_after``: verified,
or failed with an alarm while the retries go on. A newer request for the other
state supersedes the older one at once; an in-flight call is never abandoned
half-way, because its outcome is unknown until read back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from stovectl.core.burner import Burner
from stovectl.core.deadlines import Clock
from stovectl.core.events import Outcome, Result
from stovectl.devices.base import Relay, RelayState
from stovectl.durations import format_duration
from stovectl.errors import DeviceError

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.05
QUICK_RETRIES = 3
CALL_GUARD_SECONDS = 20.0
"""No adapter call may take longer than this, whatever its own timeouts say."""


class ActuatorListener(Protocol):
    def device_answered(self, device: str, error: BaseException | None) -> None: ...

    def relay_seen(self, burner: Burner, state: RelayState) -> None: ...

    def settled(
        self, burner: Burner, state: RelayState, result: Result, pulsed_at: float | None
    ) -> None:
        """``pulsed_at``: when the device was told to return by itself, if it was."""

    def alarm(self, burner: Burner, message: str) -> None: ...

    def recovered(self, burner: Burner, state: RelayState, message: str) -> None: ...


@dataclass
class _Ticket:
    future: asyncio.Future[Outcome]
    started: float
    alarm: asyncio.TimerHandle | None = field(default=None)


class Actuator:
    """One burner's lane to its relay channel."""

    def __init__(
        self,
        burner: Burner,
        relay: Relay,
        listener: ActuatorListener,
        clock: Clock,
        alarm_after_seconds: float,
        retry_max_seconds: float,
    ) -> None:
        self._burner = burner
        self._relay = relay
        self._listener = listener
        self._clock = clock
        self._alarm_after = alarm_after_seconds
        self._retry_max = retry_max_seconds
        self._target: RelayState | None = None
        self._pulse_seconds: float | None = None
        self._pulsed_at: float | None = None
        self._pulse_allowed = False
        self._write_never_arrived = False
        self._device_timer_may_run = relay.capabilities.device_pulse
        """The device may still be timing a return of its own (a pulse was sent, or the
        daemon started after one); it ends with an answered plain cut, or the relay seen
        armed."""
        self._tickets: list[_Ticket] = []
        self._alarmed = False
        self._wake = asyncio.Event()
        self.write_seq = 0
        self.last_error = ""

    @property
    def busy(self) -> bool:
        """True while a request is not yet verified."""
        return self._target is not None

    @property
    def alarmed(self) -> bool:
        return self._alarmed

    def request(
        self, target: RelayState, pulse_seconds: float | None = None
    ) -> asyncio.Future[Outcome]:
        """Drive the relay to ``target``; the future answers within ``alarm_after``.

        With ``pulse_seconds`` (shutoffs only) the device itself returns after that
        long, where it can; a request without it (a lock) ends any such pulse.
        """
        if self._target is not target or self._pulse_seconds != pulse_seconds:
            self._resolve_all(Result.FAILED, f"superseded: {self._burner.id} now wants {target}")
            self._target = target
            self._pulse_seconds = pulse_seconds
            self._pulse_allowed = True
            self._alarmed = False
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        ticket = _Ticket(future, self._clock.monotonic())
        ticket.alarm = asyncio.get_running_loop().call_later(
            self._alarm_after, self._ticket_overdue, ticket
        )
        self._tickets.append(ticket)
        self._wake.set()
        return future

    def retry_now(self) -> None:
        """End a retry's backoff early: the device was just seen answering again."""
        if self._target is not None:
            self._wake.set()

    def stop(self) -> None:
        self._resolve_all(Result.FAILED, "the daemon is stopping")
        self._target = None
        self._pulse_seconds = None

    async def run(self) -> None:
        attempts = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            target, pulse = self._target, self._pulse_seconds
            if target is None:
                attempts = 0
                continue
            try:
                result = await self._attempt(target, pulse)
            except Exception:
                # A bug in a listener must not end this burner's lane: log it and retry.
                log.exception("burner %s: attempt failed unexpectedly", self._burner.id)
                result = None
            if self._target is not target or self._pulse_seconds != pulse:
                attempts = 0
                self._wake.set()
                continue
            if result is not None:
                attempts = 0
                try:
                    self._settle(target, result)
                except Exception:
                    log.exception("burner %s: settling failed unexpectedly", self._burner.id)
                continue
            # The first retries come quickly (a lost datagram is the usual cause), then
            # back off towards retry_max for a device that is away.
            exponent = max(0, attempts - QUICK_RETRIES)
            delay = min(FIRST_RETRY_SECONDS * 2 ** min(exponent, 10), self._retry_max)
            attempts += 1
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.set()

    async def _attempt(self, target: RelayState, pulse: float | None) -> Result | None:
        """One write and read-back; the result if settled, None to retry."""
        burner, relay = self._burner, self._relay
        self.write_seq += 1
        acknowledged = await self._write(target, pulse)
        if acknowledged is None:
            return None
        if not relay.capabilities.read_back:
            return Result.UNVERIFIED if acknowledged else None
        write_error = self.last_error
        states = await self._call_read()
        if states is None:
            if not acknowledged:
                # Why the write failed (a refusal: the broker's ACL, -4005) must not be
                # hidden behind the read-back's own failure.
                self.last_error = f"{write_error}; {self.last_error}"
            return None
        seen = states.get(burner.channel)
        if seen is None:
            self.last_error = f"device {relay.id!r} reported no channel {burner.channel}"
            return None
        self._listener.relay_seen(burner, seen)
        if seen is target:
            return Result.VERIFIED
        wrong = (
            f"device {relay.id!r} channel {burner.channel} reads {seen} after being told {target}"
        )
        # Keep why the write failed: a refusal (-4005) must not read like a stuck relay.
        self.last_error = wrong if acknowledged else f"{self.last_error}; {wrong}"
        return None

    async def _write(self, target: RelayState, pulse: float | None) -> bool | None:
        """Write (or pulse); whether the device answered, or None when reading back could
        not settle it: the write never left, or it had to be answered and was not."""
        burner, relay = self._burner, self._relay
        if burner.seen is burner.armed_relay:
            self._device_timer_may_run = False  # a relay seen armed has no return pending
        # A relay already cut under a return the device times itself reads cut whether or
        # not this write arrived: then only the device's answer shows that it did.
        must_be_answered = target is burner.cut_relay and self._device_timer_may_run
        if pulse is not None and self._pulse_allowed and relay.pulse_supported(
            burner.channel, target
        ):
            # One try per request: a device slower than the pulse returns before it can
            # be read back, so retries are plain writes and the daemon re-arms itself.
            self._pulse_allowed = False
            self._pulsed_at = self._clock.monotonic()
            self._device_timer_may_run = True
            acknowledged = await self._call_write(target, pulse)
        else:
            self._pulsed_at = None
            acknowledged = await self._call_write(target)
            if acknowledged and target is burner.cut_relay:
                self._device_timer_may_run = False
        if must_be_answered and not acknowledged:
            self.last_error += ("; this cut must be answered, not only read back: the "
                                "device may still be timing a return of its own")
            return None
        if self._write_never_arrived:
            return None  # the device is away: reading back would only cost another timeout
        return acknowledged

    async def _call_write(self, target: RelayState, pulse: float | None = None) -> bool:
        self._write_never_arrived = False
        try:
            async with asyncio.timeout(CALL_GUARD_SECONDS):
                if pulse is None:
                    await self._relay.write(self._burner.channel, target)
                else:
                    await self._relay.pulse(self._burner.channel, target, pulse)
        except (DeviceError, TimeoutError) as error:
            self._write_never_arrived = not getattr(error, "may_have_acted", True)
            self._failed_call(error)
            return False
        except Exception as error:
            # An adapter let a foreign exception through: a bug, but the outcome is
            # simply unknown, so read back and carry on.
            log.exception("device %s: unexpected error on write", self._relay.id)
            self._failed_call(error)
            return False
        self._listener.device_answered(self._relay.id, None)
        return True

    async def _call_read(self) -> dict[int, RelayState] | None:
        try:
            async with asyncio.timeout(CALL_GUARD_SECONDS):
                states = await self._relay.read()
        except (DeviceError, TimeoutError) as error:
            self._failed_call(error)
            return None
        except Exception as error:
            log.exception("device %s: unexpected error on read", self._relay.id)
            self._failed_call(error)
            return None
        self._listener.device_answered(self._relay.id, None)
        return states

    def _failed_call(self, error: BaseException) -> None:
        self.last_error = str(error) or type(error).__name__
        if isinstance(error, TimeoutError):
            self.last_error = f"device {self._relay.id!r}: no answer in {CALL_GUARD_SECONDS:g}s"
        self._listener.device_answered(self._relay.id, error)

    def _settle(self, target: RelayState, result: Result) -> None:
        was_alarmed = self._alarmed
        self._target = None
        self._pulse_seconds = None
        self._alarmed = False
        self._resolve_all(result, "")
        self._listener.settled(self._burner, target, result, self._pulsed_at)
        if was_alarmed:
            self._listener.recovered(
                self._burner, target, f"{self._burner.id}: relay now {target} ({result})"
            )

    def _ticket_overdue(self, ticket: _Ticket) -> None:
        if ticket.future.done():
            return
        self._tickets.remove(ticket)
        message = (
            f"{self._burner.id}: {self._describe_target()} not verified after "
            f"{format_duration(self._alarm_after)} on device {self._relay.id!r} channel "
            f"{self._burner.channel} ({self.last_error or 'no answer yet'}); still retrying"
        )
        ticket.future.set_result(
            Outcome(self._burner.id, Result.FAILED, message, None, self._relay.id)
        )
        if not self._alarmed:
            self._alarmed = True
            self._listener.alarm(self._burner, message)

    def _describe_target(self) -> str:
        return "cut" if self._target is self._burner.cut_relay else "re-arm"

    def _resolve_all(self, result: Result, message: str) -> None:
        now = self._clock.monotonic()
        for ticket in self._tickets:
            if ticket.alarm is not None:
                ticket.alarm.cancel()
            if not ticket.future.done():
                latency = (now - ticket.started) * 1000 if result is not Result.FAILED else None
                ticket.future.set_result(
                    Outcome(self._burner.id, result, message, latency, self._relay.id)
                )
        self._tickets.clear()
