"""A Xiaomi device on the LAN, simulated over the real miIO protocol.

The daemon's miIO backend talks to it exactly as to a relay in a kitchen: UDP,
hello handshake, AES with the token, MiOT properties and actions or the legacy
power calls. Each device binds its own loopback address on port 54321, because
python-miio always handshakes on that port. Its channels drive callbacks as
``SimulatedRelay``'s do, so it can be wired to the simulated stove.

Fault switches are plain attributes, set at any time: ``loss_in`` / ``loss_out``
(probability of losing a request / a reply), ``delay`` (seconds before
replying; the request is acted on at once), ``offline`` (silent to everything),
``stuck`` (acknowledges switching but does not switch), ``refuse_writes``
(``set_properties`` items answer -4005) and ``drop_repeated_ids`` (silently
ignore a request id seen among the last 64, as real devices do). A wrong token
needs no switch: the device answers hello but ignores every command it cannot
verify. ``traffic`` records what arrived and what went out.

Besides its model's properties it can serve sensor properties (``properties``,
``set_property``: a gas alarm, a probe's temperature), which ``get_properties``
reads with code 0 like any other; a property it has not got answers -4003.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stovectl.devices.base import RelayState
from stovectl.sim.miio_models import MODELS, Iid, ModelSpec, Value, answer, miot_model
from stovectl.sim.miio_protocol import (
    HIDDEN_TOKEN,
    PORT,
    PacketError,
    build_hello_reply,
    decode_message,
    encode_message,
    is_hello,
    parse_token,
)

log = logging.getLogger(__name__)

Wiring = Callable[[int, RelayState], None]
RECENT_IDS = 64


@dataclass
class Traffic:
    """What reached the device and what it sent, for tests to observe."""

    datagrams: int = 0  # Every datagram that reached the socket, whatever became of it.
    hellos: int = 0  # Hellos taken in: not lost, not while offline.
    undecodable: int = 0  # Ignored as invalid for this token: wrong token, truncated, garbage.
    requests: list[dict[str, Any]] = field(default_factory=list)  # Incl. repeated ids dropped.
    repeated: int = 0
    hello_replies: int = 0
    replies: list[dict[str, Any]] = field(default_factory=list)  # Only those put on the wire.


class SimulatedMiioDevice:
    """One miIO device (relay module, plug or speaker) on ``(host, 54321)``."""

    def __init__(
        self,
        host: str,
        token: str,
        device_id: int,
        model: str,
        channels: Sequence[Iid] | None = None,
        *,
        port: int = PORT,
        rng: random.Random | None = None,
        leak_token: bool = False,
        properties: Mapping[Iid, Value] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.device_id = device_id
        self.model = model
        self.spec: ModelSpec = self._resolve(model, channels)
        self._token = parse_token(token)
        # Loss is simulated, never security: a seeded PRNG keeps runs reproducible.
        self._rng = random.Random(device_id) if rng is None else rng  # noqa: S311
        self._states = dict.fromkeys(range(1, self.spec.channel_count + 1), RelayState.OFF)
        self.values: dict[Iid, Value] = {
            iid: prop.initial for iid, prop in self.spec.properties.items()
        }
        for iid, value in (properties or {}).items():
            self.set_property(iid, value)
        self._wiring: list[Wiring] = []
        self._recent_ids: deque[int] = deque(maxlen=RECENT_IDS)
        self._off_timers: dict[int, asyncio.TimerHandle] = {}
        self._delayed: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._closed: asyncio.Future[None] | None = None
        self._started_at = 0.0
        self.leak_token = leak_token
        self.loss_in = 0.0
        self.loss_out = 0.0
        self.delay = 0.0
        self.offline = False
        self.stuck = False
        self.refuse_writes = False
        self.drop_repeated_ids = True
        self.spoken: list[str] = []
        self.executed: list[str] = []
        self.traffic = Traffic()

    @staticmethod
    def _resolve(model: str, channels: Sequence[Iid] | None) -> ModelSpec:
        if channels is not None:
            if MODELS.get(model, ModelSpec()).legacy_power:
                raise ValueError(f"model {model!r} has legacy power, not MiOT channels")
            return miot_model(model, tuple(channels), base=MODELS.get(model))
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}: give its channels as (siid, piid)")
        return MODELS[model]

    @property
    def stamp(self) -> int:
        """The device's clock: whole seconds since start."""
        return 0 if self._loop is None else int(self._loop.time() - self._started_at)

    async def start(self) -> None:
        if self._transport is not None:
            raise RuntimeError("device already started")
        self._loop = asyncio.get_running_loop()
        self._started_at = self._loop.time()
        closed = self._closed = self._loop.create_future()
        self._transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Endpoint(self._receive, closed), local_addr=(self.host, self.port)
        )
        for channel in self._states:
            self._restart_off_delay(channel)

    async def close(self) -> None:
        """Stop answering and release the socket; safe to call twice."""
        if self._transport is None or self._closed is None:
            return
        for timer in self._off_timers.values():
            timer.cancel()
        self._off_timers.clear()
        for task in list(self._delayed):
            task.cancel()
        await asyncio.gather(*self._delayed, return_exceptions=True)
        self._transport.close()
        await self._closed
        self._transport = None

    def wire(self, on_switch: Wiring) -> None:
        """Call ``on_switch(channel, state)`` now for every channel, then on every change."""
        self._wiring.append(on_switch)
        for channel, state in self._states.items():
            on_switch(channel, state)

    def state(self, channel: int) -> RelayState:
        """The true state of a channel, as a multimeter would tell."""
        self._check_channel(channel)
        return self._states[channel]

    def switch_by_hand(self, channel: int, state: RelayState) -> None:
        """Someone switches the relay by its button, or through Mi Home's cloud."""
        self._check_channel(channel)
        self._switch(channel, state)

    def set_property(self, iid: Iid, value: Value) -> None:
        """Serve ``value`` for the (siid, piid) ``iid``, as a sensor's reading changes.

        Clients read it; writing it answers -4003, as it is no property of the model.
        """
        if iid in self.spec.switches or iid in self.spec.properties:
            raise ValueError(f"{iid} is a property of model {self.model}, not a sensor's")
        self.values[iid] = value

    def _check_channel(self, channel: int) -> None:
        if channel not in self._states:
            raise ValueError(f"device {self.host} has no channel {channel}")

    def _switch(self, channel: int, state: RelayState) -> None:
        if self._states[channel] is state:
            return
        self._states[channel] = state
        self._restart_off_delay(channel)
        for on_switch in self._wiring:
            on_switch(channel, state)

    def _restart_off_delay(self, channel: int) -> None:
        timer = self._off_timers.pop(channel, None)
        if timer is not None:
            timer.cancel()
        if channel > len(self.spec.off_delays) or self._transport is None or self._loop is None:
            return
        seconds = int(self.values[self.spec.off_delays[channel - 1]])
        if self._states[channel] is RelayState.ON and seconds > 0:
            self._off_timers[channel] = self._loop.call_later(
                seconds, self._switch, channel, RelayState.OFF
            )

    # The wire.

    def _lost(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def _receive(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.traffic.datagrams += 1
        if self.offline or self._lost(self.loss_in):
            return
        if is_hello(datagram):
            self.traffic.hellos += 1
            self._reply(addr, None)
            return
        try:
            body = decode_message(datagram, self._token).body
        except PacketError as error:
            self.traffic.undecodable += 1
            log.debug("miIO device %s ignores a datagram: %s", self.host, error)
            return
        request_id, method = body.get("id"), body.get("method")
        if not isinstance(request_id, int) or not isinstance(method, str):
            self.traffic.undecodable += 1
            return
        self.traffic.requests.append(body)
        if self.drop_repeated_ids and request_id in self._recent_ids:
            self.traffic.repeated += 1
            return
        self._recent_ids.append(request_id)
        try:
            outcome = answer(self, method, body.get("params"))
        except Exception:  # A bug here must not stop the device answering others.
            log.exception("miIO device %s failed on %s", self.host, method)
            outcome = {"error": {"code": -32603, "message": "Internal error"}}
        self._reply(addr, {"id": request_id, **outcome})

    def _reply(self, addr: tuple[str, int], body: dict[str, Any] | None) -> None:
        if self._lost(self.loss_out):
            return
        if self.delay <= 0:
            self._transmit(addr, body)
            return
        task = asyncio.create_task(
            self._transmit_later(self.delay, addr, body), name=f"miio-sim-reply-{self.host}"
        )
        self._delayed.add(task)
        task.add_done_callback(self._delayed.discard)

    async def _transmit_later(
        self, delay: float, addr: tuple[str, int], body: dict[str, Any] | None
    ) -> None:
        await asyncio.sleep(delay)
        self._transmit(addr, body)

    def _transmit(self, addr: tuple[str, int], body: dict[str, Any] | None) -> None:
        # A device that went offline while a reply was delayed never sends it.
        if self._transport is None or self._transport.is_closing() or self.offline:
            return
        if body is None:
            token_field = self._token if self.leak_token else HIDDEN_TOKEN
            self._transport.sendto(build_hello_reply(self.device_id, self.stamp, token_field), addr)
            self.traffic.hello_replies += 1
            return
        datagram = encode_message(
            body, token=self._token, device_id=self.device_id, stamp=self.stamp
        )
        self._transport.sendto(datagram, addr)
        self.traffic.replies.append(body)

    # What the methods read and change (miio_models.DeviceState).

    def command(self, channel: int, state: RelayState) -> None:
        """A client's switch request that got past the ``stuck`` fault."""
        self._switch(channel, state)

    def write_value(self, iid: Iid, value: Value) -> None:
        """A validated write to a property other than a switch; off-delay restarts its timer."""
        self.values[iid] = value
        if iid in self.spec.off_delays:
            self._restart_off_delay(self.spec.off_delays.index(iid) + 1)

    def info(self) -> dict[str, Any]:
        """The ``miIO.info`` result; no token in it, as on current firmware."""
        # A locally administered MAC built from the device id: plainly not a vendor's.
        mac = ":".join(f"{b:02X}" for b in b"\x02\x00" + self.device_id.to_bytes(4, "big"))
        return {
            "life": self.stamp,
            "model": self.model,
            "fw_ver": self.spec.fw_ver,
            "hw_ver": self.spec.hw_ver,
            "mac": mac,
            "ap": {"ssid": "stovectl-sim", "bssid": "02:00:00:00:00:01", "rssi": -45},
            "netif": {"localIp": self.host, "mask": "255.0.0.0", "gw": "127.0.0.1"},
        }


class _Endpoint(asyncio.DatagramProtocol):
    """Hands datagrams to the device, which owns all state, and reports the socket closed."""

    def __init__(
        self, receive: Callable[[bytes, tuple[str, int]], None], closed: asyncio.Future[None]
    ) -> None:
        self._receive = receive
        self._closed = closed

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._receive(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors from a client that went away before its reply: nothing to do.
        log.debug("miIO simulator socket: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
