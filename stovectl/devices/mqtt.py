"""A relay reached through the MQTT broker: Tasmota, Zigbee2MQTT, Shelly, ESPHome, generic.

Devices push their state; this module keeps the last report of each channel
and the device's own availability word, so ``read`` costs nothing while every
channel has reported since it was last written. A write counts for nothing
until a report received after it says so (DESIGN §2 rule 2): ``read`` then
asks the device (where the firmware has a query) and waits, up to the device's
``timeout``, for a fresh report. A fresh report that contradicts the write may
still be an answer the device gave before it took the write, so it stands only
once the device has had ``timeout`` to report otherwise (a stuck relay).
Where a command has an answer of its own (Tasmota's PulseTime), a report counts
only after that answer: a relay that missed the write while it was away
reports its old state when it returns, maybe with a pulse still running.
Commands are explicit, QoS 1, never retained (rule 10). The broker's refusals
and silences become DeviceRefused and DeviceUnavailable here (STYLE rule 4);
which messages to send and how to read the answers is ``mqtt_presets``' job.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence

from stovectl.devices.base import Capabilities, RelayState
from stovectl.devices.mqtt_presets import NOTHING, REFUSED, Command, RpcReply, build_preset
from stovectl.errors import DeviceError, DeviceRefused, DeviceUnavailable
from stovectl.mqtt.connection import Message, MqttConnection, NotConnected, PublishFailed
from stovectl.settings.mqtt import MqttDeviceSettings

log = logging.getLogger(__name__)

NOT_AUTHORISED = 135


class MqttRelay:
    """One MQTT relay device on the daemon's one broker connection."""

    def __init__(
        self, settings: MqttDeviceSettings, connection: MqttConnection, base_topic: str
    ) -> None:
        self._settings = settings
        self._connection = connection
        self._preset = build_preset(settings, base_topic)
        self._timeout_seconds = settings.timeout.total_seconds()
        # Events are ordered by ticks, not clock readings: a report verifies a write
        # only if it arrived after it, even within one clock tick.
        self._ticks = itertools.count(1)
        self._states: dict[int, RelayState] = {}
        self._reported: dict[int, int] = {}
        self._written: dict[int, int] = {}
        self._wanted: dict[int, RelayState] = {}
        """The state last written to each channel, until a report shows it or a read gives up."""
        self._unconfirmed: dict[int, set[str]] = {}
        """Answers still awaited from each channel's last write (``Command.confirm``)."""
        self._asked: dict[int, tuple[int, float]] = {}
        """When each channel was last queried: tick, and monotonic seconds."""
        self._valid_since = 0
        """Reports before this tick are stale: the broker or the device was away since."""
        self._available: bool | None = None
        self._logged_available: bool | None = None
        self._news = asyncio.Event()
        self._replies: dict[int, asyncio.Future[RpcReply]] = {}
        self._started = False
        self._closed = False

    @property
    def id(self) -> str:
        return self._settings.id

    @property
    def available(self) -> bool | None:
        """What the device last said of itself: online, offline, or nothing yet."""
        return self._available

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(read_back=self._settings.verify, device_pulse=self._preset.can_pulse)

    @property
    def poll_interval_seconds(self) -> float:
        return self._settings.poll_interval.total_seconds()

    def pulse_supported(self, channel: int, state: RelayState) -> bool:
        return self._has(channel) and self._preset.pulse_supported(channel, state)

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe, and query the device after every (re)connect; the broker may be away."""
        if self._started:
            return
        self._started = True
        for topic_filter in self._preset.filters:
            self._connection.subscribe(topic_filter, self._on_message)
        self._connection.on_connect(self._on_connect)
        self._connection.on_disconnect(self._on_disconnect)
        if self._connection.is_connected:
            self._query_soon()

    async def close(self) -> None:
        """Stop listening: the connection cannot unsubscribe, so messages are ignored instead.

        A write waiting for a Shelly reply ends by its own timeout.
        """
        self._closed = True
        self._wake()

    # -- requests -----------------------------------------------------------------------

    async def write(self, channel: int, state: RelayState) -> None:
        self._check(channel)
        await self._send(channel, state, self._preset.write(channel, state))

    async def pulse(self, channel: int, state: RelayState, seconds: float) -> None:
        if not self.pulse_supported(channel, state):
            raise DeviceRefused(self.id, f"channel {channel} cannot pulse {state}")
        await self._send(channel, state, self._preset.pulse(channel, state, seconds))

    async def read(self) -> dict[int, RelayState]:
        self._check_present()
        stale = self._stale()
        if not self._settings.verify:
            # Its reports may never come: say what is known, never wait for the rest.
            return {n: s for n, s in self._states.items() if n not in stale}
        if stale or self._contradicted():
            await self._refresh(stale)
        return {n: self._states[n] for n in self._channels()}

    async def _refresh(self, stale: list[int]) -> None:
        """Ask for the stale channels; wait, up to ``timeout``, for fresh reports.

        A fresh report that contradicts the last write may be the answer to a query
        the device took before the write, so the write's own report is awaited too;
        if it never comes, the contradiction stands (a stuck relay) and is returned.
        """
        try:
            async with asyncio.timeout(self._timeout_seconds):
                for channel in filter(self._ask_needed, stale):
                    self._asked[channel] = (next(self._ticks), time.monotonic())
                    for command in self._preset.query(channel):
                        await self._publish(command, 0)
                while self._stale() or self._contradicted():
                    news = self._news
                    await news.wait()
                    self._check_present()
        except TimeoutError:
            if unconfirmed := [n for n in self._stale() if n in self._unconfirmed]:
                unanswered = ", ".join(sorted(set().union(
                    *(self._unconfirmed[n] for n in unconfirmed))))
                raise DeviceUnavailable(
                    self.id, f"no answer within {self._timeout_seconds:g}s to the write "
                    f"({unanswered}): it may not have reached the device",
                ) from None
            if stale := self._stale():
                channels = ", ".join(str(n) for n in stale)
                raise DeviceUnavailable(
                    self.id, f"no state report within {self._timeout_seconds:g}s "
                    f"for channel(s) {channels}",
                ) from None
            for channel in self._contradicted():
                del self._wanted[channel]

    async def _send(self, channel: int, state: RelayState, commands: Sequence[Command]) -> None:
        """Publish ``commands`` in order; the channel's earlier reports stop counting."""
        # Sent even to a device that says it is offline: a cut costs nothing to try.
        self._check_reachable()
        self._written[channel] = next(self._ticks)
        self._wanted[channel] = state
        self._unconfirmed[channel] = {c.confirm for c in commands if c.confirm is not None}
        if not self._unconfirmed[channel]:
            del self._unconfirmed[channel]
        try:
            for index, command in enumerate(commands):
                reply = self._expect_reply(command)
                try:
                    await self._publish(command, index)
                    if reply is not None:
                        await self._await_reply(command, reply)
                finally:
                    if command.request_id is not None:
                        self._replies.pop(command.request_id, None)
        except DeviceError:
            # Nothing to wait for: any report is the truth.
            self._wanted.pop(channel, None)
            self._unconfirmed.pop(channel, None)
            raise

    def _expect_reply(self, command: Command) -> asyncio.Future[RpcReply] | None:
        # Registered before publishing: the reply may beat the broker's acknowledgement.
        if command.request_id is None:
            return None
        future: asyncio.Future[RpcReply] = asyncio.get_running_loop().create_future()
        self._replies[command.request_id] = future
        return future

    async def _await_reply(self, command: Command, reply: asyncio.Future[RpcReply]) -> None:
        try:
            answer = await asyncio.wait_for(reply, self._timeout_seconds)
        except TimeoutError:
            raise DeviceUnavailable(
                self.id, f"no RPC reply within {self._timeout_seconds:g}s on {command.topic!r}"
            ) from None
        if answer.error is not None:
            code, message = answer.error
            raise DeviceRefused(self.id, f"refused the request: error {code} ({message})")

    async def _publish(self, command: Command, index: int) -> None:
        """Publish one command (QoS 1, never retained); the broker's no becomes ours."""
        if command.resubscribe:
            self._connection.resubscribe(command.topic)
            return
        try:
            await self._connection.publish(
                command.topic, command.payload, retain=False, qos=1,
                ack_timeout=self._timeout_seconds,
            )
        except NotConnected:
            # Only the first message surely never left; the ones before it did.
            raise DeviceUnavailable(
                self.id, "not connected to the broker; nothing was sent"
                if index == 0 else "lost the broker half-way through a request",
                may_have_acted=index > 0,
            ) from None
        except PublishFailed as error:
            if error.reason_code is None:
                raise DeviceUnavailable(self.id, str(error)) from None
            meaning = (
                "not authorised (reason code 135): allow it in the broker's ACL"
                if error.reason_code == NOT_AUTHORISED
                else f"reason code {error.reason_code} ({error})"
            )
            raise DeviceRefused(
                self.id, f"the broker refused the publish to {command.topic!r}: {meaning}"
            ) from None

    # -- what the broker hands us -------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if self._closed:
            return
        report = self._preset.parse(message)
        if report.available is not None:
            self._set_available(report.available)
        for channel, awaited in list(self._unconfirmed.items()):
            awaited.difference_update(report.confirmed)
            if not awaited or REFUSED in report.confirmed:
                # The device took the write now: only reports from here on speak for it.
                del self._unconfirmed[channel]
                self._written[channel] = next(self._ticks)
        if report.states:
            tick = next(self._ticks)
            for channel, state in report.states.items():
                self._states[channel] = state
                self._reported[channel] = tick
                if self._wanted.get(channel) is state and channel not in self._unconfirmed:
                    del self._wanted[channel]
        if report.reply is not None:
            future = self._replies.get(report.reply.request_id)
            if future is not None and not future.done():
                future.set_result(report.reply)
        if report != NOTHING:
            self._wake()

    def _set_available(self, available: bool) -> None:
        if available and self._available is False:
            # The device may have restarted while away: what it said before is history.
            self._valid_since = next(self._ticks)
            self._query_soon()
        self._available = available
        if available is self._logged_available:
            return
        if not available:
            log.warning("device %s says it is offline", self.id)
        elif self._logged_available is False:
            log.info("device %s is back online", self.id)
        self._logged_available = available

    def _on_connect(self) -> None:
        if not self._closed:
            self._query_soon()

    def _on_disconnect(self) -> None:
        # Reports missed while the broker is away make every cached state suspect.
        self._valid_since = next(self._ticks)
        self._available = None
        self._wake()

    def _query_soon(self) -> None:
        """Ask every channel for its state, without waiting (after a (re)connect)."""
        for channel in self._channels():
            self._asked[channel] = (next(self._ticks), time.monotonic())
            for command in self._preset.query(channel):
                if command.resubscribe:
                    self._connection.resubscribe(command.topic)
                else:
                    self._connection.publish_soon(command.topic, command.payload)

    def _wake(self) -> None:
        news, self._news = self._news, asyncio.Event()
        news.set()

    # -- bookkeeping --------------------------------------------------------------------

    def _channels(self) -> range:
        return range(1, self._settings.channels + 1)

    def _has(self, channel: int) -> bool:
        return 1 <= channel <= self._settings.channels

    def _check(self, channel: int) -> None:
        if not self._has(channel):
            raise DeviceRefused(self.id, f"has no channel {channel}")

    def _check_reachable(self) -> None:
        if self._closed:
            raise DeviceUnavailable(self.id, "closed", may_have_acted=False)
        if not self._connection.is_connected:
            raise DeviceUnavailable(
                self.id, "not connected to the broker; nothing was sent", may_have_acted=False
            )

    def _check_present(self) -> None:
        self._check_reachable()
        if self._available is False:
            raise DeviceUnavailable(self.id, "the device says it is offline")

    def _contradicted(self) -> list[int]:
        """Channels whose report since their last write is not the state written."""
        return [n for n, wanted in self._wanted.items() if self._states.get(n) is not wanted
                and n not in self._stale()]

    def _stale_since(self, channel: int) -> int:
        return max(self._written.get(channel, 0), self._valid_since)

    def _stale(self) -> list[int]:
        """Channels with no report since their last write (once the device answered it),
        the last outage, or ever."""
        return [n for n in self._channels() if n in self._unconfirmed
                or self._reported.get(n, 0) <= self._stale_since(n)]

    def _ask_needed(self, channel: int) -> bool:
        """False while a query sent since the channel went stale may still be answered.

        Each answer to a second query would arrive later, where it could be taken for
        news about a write made meanwhile.
        """
        tick, when = self._asked.get(channel, (0, 0.0))
        recent = time.monotonic() - when < self._timeout_seconds
        return tick <= self._stale_since(channel) or not recent
