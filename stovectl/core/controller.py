"""The one owner of burner state: commands in, relay requests and events out.

Every change to a burner happens here, on the event loop. Commands arrive from
the control socket (and later MQTT, sensors, schedules); each is checked by
the policy, written durably to the store, and only then handed to the
burner's actuator, whose read-back decides the answer. Relay observations from
polling come back here too and are judged per DESIGN §2 rule 7.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any

from stovectl.core.actuator import Actuator
from stovectl.core.burner import Burner, Mode, Seen
from stovectl.core.deadlines import Clock, Deadlines, SystemClock
from stovectl.core.events import (
    ALARM_CUT,
    ALARM_FLAME,
    ALARM_REARM,
    Event,
    EventBus,
    Kind,
    Outcome,
    Result,
)
from stovectl.core.failsafes import FAILSAFE, PURPOSES, Failsafes, presence_of
from stovectl.core.hazards import HAZARD, check_unlock, hazard_changed
from stovectl.core.heartbeats import Heartbeats
from stovectl.core.policy import Relaxing, RemotePolicy, check_relaxing
from stovectl.core.sensing import SensorBoard, SensorState
from stovectl.core.store import Store, StoredIntent
from stovectl.core.tasks import BackgroundTasks
from stovectl.core.voice import VoiceButtons
from stovectl.core.watcher import watch
from stovectl.devices.base import Relay, RelayState
from stovectl.durations import format_duration
from stovectl.errors import CommandRefused, DeviceError, DeviceRefused
from stovectl.settings import Settings

log = logging.getLogger(__name__)

REARM = "rearm"
COUNTDOWN = "countdown"
FLAME_OUT = "flame_out"
CLOCK_CHECK_SECONDS = 1.0
MAX_COUNTDOWN_SECONDS = 366 * 86400.0
"""The longest countdown, as the CLI's durations allow: beyond it dates stop being dates."""
CLOCK_WATCH_ALLOWANCE = 10.0
"""Seconds the clock watch may miss its 1 s ticks before the daemon counts as wedged."""
POLL_ALLOWANCE = 60.0
"""Seconds a device's poll loop may take past two intervals (a read retrying on a lossy
network) before the daemon counts as wedged."""
"""How often the wall clock is compared with the monotonic one."""
DEVICE_REARM_GRACE = 1.0
"""Seconds past a device's own re-arm (plus a poll interval) before we re-arm it ourselves."""
DEVICE_CLOCK_TOLERANCE = 0.25
"""A device timer may end this much before ours; earlier is someone else re-arming."""
OFFLINE_AFTER_UNANSWERED = 3
"""Requests in a row without an answer before a device counts as offline."""


class BurnerController:
    """Burners, their intents, countdowns and relays, behind one set of commands."""

    def __init__(
        self,
        settings: Settings,
        relays: Mapping[str, Relay],
        store: Store,
        clock: Clock | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.settings = settings
        self.events = events or EventBus()
        self._relays = relays
        self._store = store
        self._clock = clock or SystemClock()
        self._deadlines = Deadlines(self._clock, store)
        self._burners = {spec.id: Burner(spec) for spec in settings.burners}
        self._actuators: dict[str, Actuator] = {}
        self._countdown_sources: dict[str, str] = {}
        self._device_online: dict[str, bool | None] = dict.fromkeys(relays)
        self._unanswered: dict[str, int] = {}
        self._tasks = BackgroundTasks(log)
        self.heartbeats = Heartbeats(self._clock.monotonic)
        self.buttons = VoiceButtons(settings.voice, relays, self)
        self.sensors = SensorBoard(settings.sensors, self._clock.wall)
        self.sensors.on_change(self._sensor_changed)
        self._failsafes = Failsafes(settings, self._deadlines, self, self._clock.wall)
        self._flame_sensors = {
            s.burner: s.id for s in settings.sensors if s.kind == "flame" and s.burner
        }
        presence = settings.unattended.presence if settings.unattended else []
        self._presence = presence or [s.id for s in settings.sensors if s.kind == "presence"]
        self._reconciling = True
        """Sensor changes wait until start() restored intent and timers, then are replayed."""
        self._policy = RemotePolicy(
            allow_relax=settings.remote.allow_relax,
            pin=settings.remote.pin.get_secret_value() if settings.remote.pin else None,
            relax_ttl_seconds=settings.remote.relax_ttl.total_seconds(),
        )

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Reconcile stored intent with the relays (rule 6), then watch them.

        Returns once every burner's relay was verified in its intended state or its
        alarm went off, so new commands are accepted only after reconciliation.
        """
        safety = self.settings.safety
        for burner in self._burners.values():
            actuator = Actuator(
                burner,
                self._relays[burner.device],
                self,
                self._clock,
                safety.alarm_after.total_seconds(),
                safety.retry_max_interval.total_seconds(),
            )
            self._actuators[burner.id] = actuator
            self._spawn(actuator.run(), f"actuator-{burner.id}")
        waiters, overdue = self._restore()
        self._reconciling = False
        for sensor in self.sensors.of_kind("flame", "presence", "gas", "smoke"):
            if sensor.value is not None:  # heard before start, e.g. a retained reading
                self._sensor_changed(sensor, None, sensor.value)
        self._emit(Kind.STARTUP, "startup", message=self._summary())
        for relay in self._relays.values():
            burners = [b for b in self._burners.values() if b.device == relay.id]
            poll_loop = f"device {relay.id}'s poll loop"
            self.heartbeats.expect(poll_loop, 2 * relay.poll_interval_seconds + POLL_ALLOWANCE)
            self._spawn(
                watch(relay, burners, self._actuators.__getitem__, self, self.buttons,
                      heartbeat=functools.partial(self.heartbeats.beat, poll_loop)),
                f"watch-{relay.id}",
            )
        self.heartbeats.expect("the clock watch", CLOCK_WATCH_ALLOWANCE)
        self._spawn(self._watch_clock(), "clock-watch")
        # Every device is probed before start() returns, so "ready" means each was tried.
        wired = {burner.device for burner in self._burners.values()}
        probes = [self._probe(relay) for relay in self._relays.values() if relay.id not in wired]
        await asyncio.gather(*waiters, *probes)
        for burner_id in overdue:
            self._countdown_fired(burner_id, "startup")

    async def _probe(self, relay: Relay) -> None:
        """Read a device that has no burner (voice buttons only) once."""
        try:
            await relay.read()
        except DeviceError as error:
            self.device_answered(relay.id, error)
        else:
            self.device_answered(relay.id, None)

    async def close(self) -> None:
        await self.buttons.close()
        self._deadlines.cancel_all()
        for actuator in self._actuators.values():
            actuator.stop()
        await self._tasks.cancel_all()

    def _restore(self) -> tuple[list[asyncio.Future[Outcome]], list[str]]:
        intents = self._store.intents()
        waiters: list[asyncio.Future[Outcome]] = []
        overdue: list[str] = []
        rearms: dict[str, float] = {}
        for (burner_id, purpose), timer in self._deadlines.stored().items():
            if burner_id not in self._burners:
                self._deadlines.discard((burner_id, purpose))
                continue
            remaining = self._deadlines.remaining_of(timer, relaxing=purpose == REARM)
            if purpose == COUNTDOWN:
                if remaining <= 0:
                    overdue.append(burner_id)
                else:
                    self._arm_countdown(burner_id, remaining, timer.source)
            elif purpose == REARM:
                rearms[burner_id] = remaining
            elif purpose in PURPOSES:
                # Overdue ones fire at once, with their own source (failsafe, unattended).
                self._failsafes.restore(purpose, burner_id, remaining)
            else:
                self._deadlines.discard((burner_id, purpose))
        for burner in self._burners.values():
            stored = intents.get(burner.id)
            if stored is not None:
                burner.mode = Mode(stored.mode)
                burner.reason, burner.source, burner.since = (
                    stored.reason, stored.source, stored.since,
                )
            if burner.id in rearms:
                self._restore_rearm(burner, rearms[burner.id])
            waiters.append(self._actuators[burner.id].request(burner.wanted))
            self._lit_may_have_changed(burner)
        return waiters, overdue

    def _restore_rearm(self, burner: Burner, remaining: float) -> None:
        if burner.mode is not Mode.PULSE:
            self._deadlines.discard((burner.id, REARM))
        elif remaining <= 0:
            self._set_intent(burner, Mode.ARMED, "startup")
            self._deadlines.discard((burner.id, REARM))
        else:
            self._schedule_rearm(burner, remaining)
            # The device may have been told to end the pulse itself at that moment.
            burner.device_rearm_due = self._clock.monotonic() + remaining

    async def _watch_clock(self) -> None:
        self._deadlines.check_wall()  # the first look takes the baseline
        while True:
            await asyncio.sleep(CLOCK_CHECK_SECONDS)
            self.heartbeats.beat("the clock watch")
            jump = self._deadlines.check_wall()
            if jump:
                log.warning("the wall clock jumped by %+.0fs; safety deadlines keep to the "
                            "monotonic clock, and their stored due times were corrected", jump)

    def _summary(self) -> str:
        parts = []
        for burner in self._burners.values():
            text = f"{burner.id} {burner.mode}"
            if burner.mode is Mode.LOCKED:
                text += f" ({burner.reason})"
            parts.append(text)
        return "started: " + ", ".join(parts)

    # -- commands ---------------------------------------------------------------------

    def resolve(self, names: Iterable[str]) -> list[str]:
        """Burner ids for names (``all`` is every burner); unknown names are refused."""
        ids: list[str] = []
        for name in names:
            if name == "all":
                ids.extend(b for b in self._burners if b not in ids)
            elif name in self._burners:
                if name not in ids:
                    ids.append(name)
            else:
                raise CommandRefused(
                    "unknown_burner",
                    f"no burner named {name!r}; burners: {', '.join(self._burners)} (or all)",
                )
        if not ids:
            raise CommandRefused("unknown_burner", "name a burner, or all")
        return ids

    @property
    def burner_ids(self) -> list[str]:
        return list(self._burners)

    def now(self) -> float:
        """Wall-clock seconds, from the controller's clock (tests move it)."""
        return self._clock.wall()

    async def shutoff(
        self, names: Sequence[str], source: str, actor: str | None = None
    ) -> list[Outcome]:
        """Cut now, hold for ``cut_hold``, then re-arm unless locked (rules 1, 4)."""
        burners = [self._burners[i] for i in self.resolve(names)]
        with self._store.batch():
            requests = [self._begin_shutoff(burner, source, actor) for burner in burners]
        return list(await asyncio.gather(*(
            self._finish_cut(Kind.SHUTOFF, burner, source, actor, "", request)
            for burner, request in zip(burners, requests, strict=True)
        )))

    def _begin_shutoff(
        self, burner: Burner, source: str, actor: str | None
    ) -> asyncio.Future[Outcome]:
        """The part of a shutoff that must not wait: intent on disk, relay asked."""
        self._drop_countdown(burner, source, actor, "the burner was shut off")
        pulse = None
        if burner.mode is not Mode.LOCKED:
            self._deadlines.cancel((burner.id, REARM))
            self._set_intent(burner, Mode.PULSE, source)
            # The device returns by itself where it can, so a crash still re-arms (rule 4).
            pulse = burner.settings.cut_hold.total_seconds()
        return self._actuators[burner.id].request(burner.cut_relay, pulse)

    async def _finish_cut(
        self,
        kind: Kind,
        burner: Burner,
        source: str,
        actor: str | None,
        why: str,
        request: asyncio.Future[Outcome],
    ) -> Outcome:
        """The part of a shutoff or lock that waits for the relay: record how it ended."""
        outcome = await request
        if kind is Kind.LOCK:
            reason, message = burner.reason, outcome.message or f"{burner.id} locked"
        else:
            reason, message = None, outcome.message or self._cut_message(burner)
        self._emit(
            kind, source, burner, actor=actor, reason=reason, result=outcome.result,
            latency_ms=outcome.latency_ms, message=f"{why}: {message}" if why else message,
        )
        self._expect_flame_out(burner, outcome)
        return outcome

    def _fire_shutoff(self, burner_id: str, source: str, why: str = "") -> None:
        """A shutoff from a timer: durable before this returns, finished in a task."""
        burner = self._burners[burner_id]
        request = self._begin_shutoff(burner, source, None)
        self._spawn(self._finish_cut(Kind.SHUTOFF, burner, source, None, why, request),
                    f"shutoff-{burner_id}")

    async def lock(
        self, names: Sequence[str], source: str, reason: str = "lock", actor: str | None = None
    ) -> list[Outcome]:
        """Cut and stay cut until unlocked; a hazard lock outranks any other reason."""
        burners = [self._burners[i] for i in self.resolve(names)]
        with self._store.batch():
            requests = [self._begin_lock(burner, source, reason, actor) for burner in burners]
        return list(await asyncio.gather(*(
            self._finish_cut(Kind.LOCK, burner, source, actor, "", request)
            for burner, request in zip(burners, requests, strict=True)
        )))

    def _begin_lock(
        self, burner: Burner, source: str, reason: str, actor: str | None
    ) -> asyncio.Future[Outcome]:
        self._drop_countdown(burner, source, actor, "the burner was locked")
        self._deadlines.cancel((burner.id, REARM))
        if burner.mode is Mode.LOCKED and burner.reason == HAZARD:
            reason = HAZARD  # a hazard lock outranks any other reason
        self._set_intent(burner, Mode.LOCKED, source, reason)
        return self._actuators[burner.id].request(burner.cut_relay)

    def _fire_lock(self, burner_id: str, source: str, reason: str, why: str,
                   actor: str | None = None) -> None:
        """A lock from a failsafe or a sensor: durable before this returns."""
        burner = self._burners[burner_id]
        request = self._begin_lock(burner, source, reason, actor)
        self._spawn(self._finish_cut(Kind.LOCK, burner, source, actor, why, request),
                    f"lock-{burner_id}")

    async def unlock(
        self,
        names: Sequence[str],
        source: str,
        actor: str | None = None,
        *,
        pin: str | None = None,
        issued_at: float | None = None,
        age_known: bool = True,
    ) -> list[Outcome]:
        """Re-arm locked burners; relaxing, so remote sources obey rule 5."""
        ids = self.resolve(names)
        for burner_id in ids:
            burner = self._burners[burner_id]
            self._check(Relaxing.UNLOCK, source, actor, burner, pin=pin, issued_at=issued_at,
                        age_known=age_known)
            if burner.mode is Mode.LOCKED:
                try:
                    check_unlock(self.sensors.of_kind("gas", "smoke"))
                except CommandRefused as refusal:
                    self._refuse(source, actor, burner, refusal)
        return list(await asyncio.gather(*(self._unlock(i, source, actor) for i in ids)))

    async def _unlock(self, burner_id: str, source: str, actor: str | None) -> Outcome:
        burner = self._burners[burner_id]
        if burner.mode is not Mode.LOCKED:
            return Outcome(burner.id, Result.DONE, f"{burner.id} was not locked")
        if source == "schedule" and (burner.source != "schedule" or burner.reason == HAZARD):
            # A schedule clears only the locks schedules made: never a hazard, child or
            # failsafe lock, nor one somebody set by hand.
            return Outcome(burner.id, Result.DONE,
                           f"{burner.id} stays locked ({burner.reason}, by {burner.source}): "
                           "a schedule only clears its own locks")
        reason = burner.reason
        self._set_intent(burner, Mode.ARMED, source)
        outcome = await self._actuators[burner.id].request(burner.armed_relay)
        self._emit(
            Kind.UNLOCK, source, burner, actor=actor, reason=reason, result=outcome.result,
            latency_ms=outcome.latency_ms, message=outcome.message or f"{burner.id} unlocked",
        )
        return outcome

    def set_countdown(
        self,
        names: Sequence[str],
        seconds: float,
        source: str,
        actor: str | None = None,
        *,
        extend: bool = False,
        issued_at: float | None = None,
        age_known: bool = True,
    ) -> list[Outcome]:
        """Start or shorten countdowns; with ``extend``, add time (relaxing, rule 5).

        All or nothing: every burner is checked before any countdown starts, so a
        refusal for one leaves the others as they were.
        """
        burners = [self._burners[i] for i in self.resolve(names)]
        if not 0 < seconds <= MAX_COUNTDOWN_SECONDS:
            raise CommandRefused(
                "bad_duration",
                "a countdown must be longer than zero and at most 366 days",
            )
        for burner in burners:
            self._check_countdown(burner, seconds, source, actor, extend, (issued_at, age_known))
        return [self._set_countdown(burner, seconds, source, actor, extend) for burner in burners]

    def _check_countdown(
        self,
        burner: Burner,
        seconds: float,
        source: str,
        actor: str | None,
        extend: bool,
        age: tuple[float | None, bool],
    ) -> None:
        current = self._deadlines.get((burner.id, COUNTDOWN))
        if extend:
            self._check(Relaxing.EXTEND, source, actor, burner, issued_at=age[0],
                        age_known=age[1])
        elif current is not None and seconds > current.remaining(self._clock) + 0.001:
            self._refuse(
                source, actor, burner,
                CommandRefused(
                    "would_extend",
                    f"{burner.id} already shuts off in "
                    f"{format_duration(round(current.remaining(self._clock)))}; a later "
                    "deadline extends it (use --extend, or cancel first)",
                ),
            )

    def _set_countdown(
        self, burner: Burner, seconds: float, source: str, actor: str | None, extend: bool
    ) -> Outcome:
        current = self._deadlines.get((burner.id, COUNTDOWN))
        if extend and current is not None:
            seconds += current.remaining(self._clock)
        self._arm_countdown(burner.id, seconds, source)
        shown = round(seconds, 1 if seconds < 10 else 0)
        message = f"{burner.id} shuts off in {format_duration(shown)}"
        self._emit(Kind.COUNTDOWN_SET, source, burner, actor=actor, result=Result.DONE,
                   message=message)
        return Outcome(burner.id, Result.DONE, message)

    def cancel_countdown(
        self,
        names: Sequence[str],
        source: str,
        actor: str | None = None,
        *,
        issued_at: float | None = None,
        age_known: bool = True,
    ) -> list[Outcome]:
        """Cancel countdowns; relaxing, so remote sources obey rule 5."""
        burners = [self._burners[i] for i in self.resolve(names)]
        for burner in burners:
            self._check(Relaxing.CANCEL, source, actor, burner, issued_at=issued_at,
                        age_known=age_known)
        outcomes = []
        for burner in burners:
            if self._drop_countdown(burner, source, actor, "cancelled"):
                outcomes.append(Outcome(burner.id, Result.DONE, f"{burner.id} countdown cancelled"))
            else:
                outcomes.append(Outcome(burner.id, Result.DONE, f"{burner.id} had no countdown"))
        return outcomes

    def _check(
        self,
        action: Relaxing,
        source: str,
        actor: str | None,
        burner: Burner,
        *,
        pin: str | None = None,
        issued_at: float | None = None,
        age_known: bool = True,
    ) -> None:
        try:
            check_relaxing(
                action, source, self._policy, pin=pin, issued_at=issued_at,
                age_known=age_known, now=self._clock.wall(), lock_reason=burner.reason,
            )
        except CommandRefused as refusal:
            self._refuse(source, actor, burner, refusal)

    def reject(
        self, source: str, code: str, message: str, burner_id: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Record a command refused before it reached a burner (malformed, unknown burner)."""
        burner = self._burners.get(burner_id) if burner_id is not None else None
        self._emit(Kind.REFUSED, source, burner, actor=actor, reason=code,
                   result=Result.REFUSED, message=message)

    def _refuse(
        self, source: str, actor: str | None, burner: Burner, refusal: CommandRefused
    ) -> None:
        self._emit(Kind.REFUSED, source, burner, actor=actor, reason=refusal.code,
                   result=Result.REFUSED, message=str(refusal))
        refusal.recorded = True
        raise refusal

    # -- countdowns and re-arms -------------------------------------------------------

    def _arm_countdown(self, burner_id: str, seconds: float, source: str) -> None:
        self._countdown_sources[burner_id] = source
        self._deadlines.set(
            (burner_id, COUNTDOWN), seconds, lambda: self._countdown_fired(burner_id, "timer"),
            durable_source=source,
        )

    def _drop_countdown(
        self, burner: Burner, source: str, actor: str | None, why: str
    ) -> bool:
        if not self._deadlines.cancel((burner.id, COUNTDOWN)):
            return False
        self._emit(Kind.COUNTDOWN_CANCEL, source, burner, actor=actor, result=Result.DONE,
                   message=f"{burner.id} countdown ended: {why}")
        return True

    def _countdown_fired(self, burner_id: str, source: str) -> None:
        burner = self._burners[burner_id]
        self._emit(Kind.COUNTDOWN_FIRE, source, burner, result=Result.DONE,
                   message=f"{burner_id} countdown reached zero")
        self._fire_shutoff(burner_id, source)
        # Forgotten only now that the shutoff's intent is on disk (an overdue one at start).
        self._deadlines.discard((burner_id, COUNTDOWN))

    def _schedule_rearm(self, burner: Burner, seconds: float, backup_after: float = 0) -> None:
        """Re-arm in ``seconds``; with ``backup_after``, only if the device has not by then."""
        self._deadlines.set(
            (burner.id, REARM), seconds + backup_after, lambda: self._rearm(burner),
            durable_source=burner.source, grace_seconds=backup_after,
        )

    def _rearm(self, burner: Burner) -> None:
        if burner.mode is not Mode.PULSE:
            return
        self._set_intent(burner, Mode.ARMED, burner.source)
        future = self._actuators[burner.id].request(burner.armed_relay)

        def done(future: asyncio.Future[Outcome]) -> None:
            outcome = future.result()
            if outcome.result is Result.FAILED and "superseded" in outcome.message:
                return
            self._emit(Kind.REARM, burner.source, burner, result=outcome.result,
                       latency_ms=outcome.latency_ms,
                       message=outcome.message or f"{burner.id} re-armed: it can be lit again")

        future.add_done_callback(done)

    # -- intent -----------------------------------------------------------------------

    def _set_intent(
        self, burner: Burner, mode: Mode, source: str, reason: str | None = None
    ) -> None:
        burner.mode, burner.reason, burner.source = mode, reason, source
        burner.since = self._clock.wall()
        burner.device_rearm_due = None
        self._save_intent(burner)
        self._lit_may_have_changed(burner)

    def _save_intent(self, burner: Burner) -> None:
        # Written before any reply, with synchronous=FULL: rule 6.
        self._store.save_intent(
            StoredIntent(burner.id, burner.mode.value, burner.reason, burner.source,
                         burner.since)
        )

    # -- what the actuators and pollers report -----------------------------------------

    def device_answered(self, device: str, error: BaseException | None) -> None:
        # A refusal is an answer: the device is there, it just said no.
        online = error is None or isinstance(error, DeviceRefused)
        if online:
            self._unanswered[device] = 0
        else:
            # One lost datagram is not an outage: on a lossy network that would log
            # and record an offline/online pair every few seconds.
            self._unanswered[device] = self._unanswered.get(device, 0) + 1
            if self._unanswered[device] < OFFLINE_AFTER_UNANSWERED:
                return
        if self._device_online.get(device) is online:
            return
        was = self._device_online.get(device)
        self._device_online[device] = online
        for burner in self._burners.values():
            if burner.device == device:
                burner.device_online = online
        if online:
            if was is False:
                log.info("device %s is back online", device)
                self._emit(Kind.DEVICE_ONLINE, "device", device=device,
                           message=f"device {device!r} answers again")
                # A cut waiting out its retry backoff goes now, not up to retry_max later.
                for burner in self._burners.values():
                    actuator = self._actuators.get(burner.id)
                    if burner.device == device and actuator is not None:
                        actuator.retry_now()
        else:
            log.warning("device %s is offline: %s", device, error)
            self._emit(Kind.DEVICE_OFFLINE, "device", device=device,
                       message=f"device {device!r} does not answer: {error}")

    def relay_seen(self, burner: Burner, state: RelayState) -> None:
        burner.seen = state

    def settled(
        self, burner: Burner, state: RelayState, result: Result, pulsed_at: float | None
    ) -> None:
        pulse_cut = burner.mode is Mode.PULSE and state is burner.cut_relay
        if not pulse_cut or self._deadlines.get((burner.id, REARM)) is not None:
            return
        hold = burner.settings.cut_hold.total_seconds()
        if pulsed_at is None:
            self._schedule_rearm(burner, hold)
            return
        # The device re-arms by itself about ``hold`` after it was told; we only step
        # in if it has not done so a poll interval (and a second) later.
        burner.device_rearm_due = pulsed_at + math.ceil(hold)
        remaining = burner.device_rearm_due - self._clock.monotonic()
        relay = self._relays[burner.device]
        self._schedule_rearm(burner, remaining, relay.poll_interval_seconds + DEVICE_REARM_GRACE)

    def alarm(self, burner: Burner, message: str) -> None:
        log.error("ALARM %s", message)
        # The actuator drives towards the intent, so the intent says what failed.
        failed = ALARM_CUT if burner.wants_cut else ALARM_REARM
        self._emit(Kind.ALARM, "controller", burner, reason=failed, result=Result.FAILED,
                   message=message)

    def recovered(self, burner: Burner, state: RelayState, message: str) -> None:
        log.warning("recovered: %s", message)
        self._emit(Kind.RECOVERED, "controller", burner, result=Result.VERIFIED, message=message)

    def observe(self, burner_id: str, state: RelayState) -> None:
        """Judge a relay state seen unprompted (rule 7)."""
        burner = self._burners[burner_id]
        burner.seen = state
        seen = burner.classify(state)
        if seen is Seen.AS_EXPECTED:
            return
        due = burner.device_rearm_due
        if seen is Seen.REARMED_IN_HOLD and due is not None and (
            self._clock.monotonic() >= due - DEVICE_CLOCK_TOLERANCE
        ):
            self._device_rearmed(burner)
            return
        if seen is Seen.EXTERNAL_CUT:
            self._external_cut(burner)
            return
        actuator = self._actuators[burner.id]
        if seen is Seen.TAMPER:
            message = (f"{burner.id} is locked ({burner.reason}) but its relay was switched "
                       "back on by someone else; cutting it again")
            log.error("ALARM %s", message)
            self._emit(Kind.TAMPER, "external", burner, reason=burner.reason,
                       result=Result.FAILED, message=message)
        else:
            self._emit(Kind.TAMPER, "external", burner, result=Result.DONE,
                       message=f"{burner.id} was re-armed by someone else during its hold; "
                       "cutting it again")
            # The hold starts again from the new cut, once it is verified (settled()):
            # a cut of a moment would not let the valve drop (rule 4).
            self._deadlines.cancel((burner.id, REARM))
            burner.device_rearm_due = None
        actuator.request(burner.cut_relay)

    def _device_rearmed(self, burner: Burner) -> None:
        """The device ended a shutoff's pulse by itself, as it was told to."""
        self._deadlines.cancel((burner.id, REARM))
        source = burner.source
        self._set_intent(burner, Mode.ARMED, source)
        self._emit(Kind.REARM, source, burner, result=Result.VERIFIED,
                   message=f"{burner.id} re-armed by the device's own timer: it can be lit again")

    def _external_cut(self, burner: Burner) -> None:
        self._drop_countdown(burner, "external", None, "the relay was cut by someone else")
        self._set_intent(burner, Mode.PULSE, "external")
        self._emit(Kind.SHUTOFF, "external", burner, result=Result.VERIFIED,
                   message=f"{burner.id} was cut by someone else (app, scene, voice or button)")
        self._schedule_rearm(burner, burner.settings.cut_hold.total_seconds())

    # -- sensors, failsafes and hazards ------------------------------------------------

    def _sensor_changed(self, sensor: SensorState, before: bool | None, now: bool | None) -> None:
        if self._reconciling:
            return  # replayed at the end of start()'s restore
        kind = sensor.settings.kind
        if kind == "presence":
            self._failsafes.presence_changed(
                presence_of(self.sensors[i].value for i in self._presence)
            )
        elif sensor.settings.is_hazard:
            hazard_changed(self, sensor, before, now)
        elif kind == "flame" and sensor.settings.burner in self._burners:
            burner = self._burners[sensor.settings.burner]
            if now or (before and now is False):  # not an unlit burner first heard of
                self._emit(Kind.FLAME_ON if now else Kind.FLAME_OFF, "sensor", burner,
                           actor=sensor.settings.id,
                           message=f"{burner.id}: flame {'lit' if now else 'out'}")
            if now is False:
                self._flame_went_out(burner)
            self._lit_may_have_changed(burner)

    def flame(self, burner_id: str) -> bool | None:
        """The burner's flame as its sensor sees it; None without a sensor or while unknown."""
        sensor = self._flame_sensors.get(burner_id)
        return None if sensor is None else self.sensors[sensor].value

    def _lit_may_have_changed(self, burner: Burner) -> None:
        if burner.id in self._flame_sensors:
            lit = self.flame(burner.id)
        elif self.settings.failsafe.assume_lit:
            lit = burner.mode is Mode.ARMED
        else:
            return
        self._failsafes.lit_changed(burner.id, lit)

    def _expect_flame_out(self, burner: Burner, outcome: Outcome) -> None:
        """After a verified cut, a flame sensor that still sees a flame is an alarm."""
        if outcome.result is not Result.VERIFIED or not self.flame(burner.id):
            return
        within = self.settings.failsafe.flame_out_within.total_seconds()
        self._deadlines.set((burner.id, FLAME_OUT), within,
                            lambda: self._flame_stays(burner, within))

    def _flame_went_out(self, burner: Burner) -> None:
        deadline = self._deadlines.get((burner.id, FLAME_OUT))
        if deadline is None or not self._deadlines.cancel((burner.id, FLAME_OUT)):
            return
        within = self.settings.failsafe.flame_out_within.total_seconds()
        after = within - deadline.remaining(self._clock)
        self._emit(Kind.FLAME_OUT, burner.source, burner, result=Result.VERIFIED,
                   message=f"{burner.id}: the flame went out {after:.1f}s after the cut")

    def _flame_stays(self, burner: Burner, within: float) -> None:
        message = (f"{burner.id}'s relay reads cut, but its flame sensor still sees a flame "
                   f"{format_duration(round(within))} later: check the relay's wiring into "
                   "the thermocouple loop, and turn the knob off")
        log.error("ALARM %s", message)
        self._emit(Kind.ALARM, "controller", burner, reason=ALARM_FLAME, result=Result.FAILED,
                   message=message)

    def warn(self, burner_id: str, source: str, message: str) -> None:
        log.warning("%s", message)
        self._emit(Kind.WARNING, source, self._burners[burner_id], result=Result.DONE,
                   message=message)

    def failsafe_shutoff(self, burner_id: str, source: str, message: str) -> None:
        self._fire_shutoff(burner_id, source, message)

    def failsafe_lock(self, burner_id: str, message: str) -> None:
        self._fire_lock(burner_id, FAILSAFE, FAILSAFE, message)

    def trips(self, burner_id: str, since: float) -> int:
        return self._store.count_events(Kind.SHUTOFF, burner_id, FAILSAFE, since)

    def hazard_detected(self, sensor: SensorState) -> None:
        what = sensor.settings.kind
        message = f"{what} detected by {sensor.settings.id!r}: locking every burner"
        log.error("HAZARD %s", message)
        self._emit(Kind.HAZARD, HAZARD, reason=what, actor=sensor.settings.id,
                   result=Result.DONE, message=message)
        with self._store.batch():
            for burner_id in self._burners:
                self._fire_lock(burner_id, HAZARD, HAZARD, f"{what} detected",
                                actor=sensor.settings.id)

    def hazard_note(self, sensor: SensorState, message: str) -> None:
        log.warning("%s", message)
        self._emit(Kind.HAZARD, HAZARD, reason=sensor.settings.kind, actor=sensor.settings.id,
                   result=Result.DONE, message=message)

    # -- views ------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        rows = []
        for burner in self._burners.values():
            actuator = self._actuators.get(burner.id)
            countdown = self._deadlines.get((burner.id, COUNTDOWN))
            rearm = self._deadlines.get((burner.id, REARM))
            rows.append({
                "id": burner.id,
                "name": burner.settings.name,
                "device": burner.device,
                "channel": burner.channel,
                "mode": burner.mode.value,
                "lock_reason": burner.reason if burner.mode is Mode.LOCKED else None,
                "since": burner.since,
                "source": burner.source,
                "relay": _relay_word(burner.is_cut(burner.seen)),
                "relay_state": burner.seen.value if burner.seen else None,
                "pending": bool(actuator and actuator.busy),
                "alarm": bool(actuator and actuator.alarmed),
                "last_error": actuator.last_error if actuator and actuator.busy else None,
                "device_online": self._device_online.get(burner.device),
                "countdown": None if countdown is None else {
                    "due": countdown.wall_due,
                    "remaining": countdown.remaining(self._clock),
                    "source": self._countdown_sources.get(burner.id),
                },
                "rearm_in": None if rearm is None else rearm.remaining(self._clock),
                "flame": self.flame(burner.id),
                "flame_sensor": self._flame_sensors.get(burner.id),
                "failsafe": self._failsafes.status(burner.id),
            })
        return rows

    def devices_online(self) -> dict[str, bool | None]:
        """Each device: answering, not answering, or not heard from yet (None)."""
        return dict(self._device_online)

    def history(
        self, since: float | None = None, burner: str | None = None, limit: int = 200
    ) -> list[Event]:
        if burner == "all":
            burner = None  # every burner's history, not the first burner's
        elif burner is not None:
            burner = self.resolve([burner])[0]
        return self._store.history(since=since, burner=burner, limit=limit)

    # -- plumbing ---------------------------------------------------------------------

    def _cut_message(self, burner: Burner) -> str:
        if burner.mode is Mode.LOCKED:
            return f"{burner.id} cut (locked: {burner.reason})"
        return (f"{burner.id} cut; re-arms in "
                f"{format_duration(burner.settings.cut_hold)}")

    def _emit(
        self,
        kind: Kind,
        source: str,
        burner: Burner | None = None,
        *,
        device: str | None = None,
        actor: str | None = None,
        reason: str | None = None,
        result: Result | None = None,
        latency_ms: float | None = None,
        message: str = "",
    ) -> None:
        event = Event(
            kind=kind, source=source, time=self._clock.wall(),
            burner=burner.id if burner else None,
            device=device or (burner.device if burner else None),
            actor=actor, reason=reason, result=result, latency_ms=latency_ms, message=message,
        )
        self._store.record(event)
        self.events.emit(event)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        self._tasks.spawn(coroutine, name)


def _relay_word(is_cut: bool | None) -> str:
    if is_cut is None:
        return "unknown"
    return "cut" if is_cut else "armed"
