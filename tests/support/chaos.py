"""A UDP chaos proxy on loopback, between the daemon and a simulated miIO device.

The simulated device's own fault switches lose and delay datagrams; a real
network also duplicates, reorders and corrupts them, and other hosts send
stray datagrams. This proxy does all of that, seeded, in front of any miIO
device. python-miio always talks to port 54321, so the proxy listens on
``(listen_host, 54321)`` — the host the daemon's config names — and forwards to
``(device_host, 54321)``, another loopback address where the simulator listens.
python-miio opens a new socket for each request, so each client address gets
an upstream socket of its own (on the proxy's host), like a NAT: the device's
replies come back through it to the socket that asked.

Faults are per direction, switchable at run time (``set``): ``"in"`` is daemon
to device (requests, hellos), ``"out"`` device to daemon (replies), as the
simulator's ``loss_in`` / ``loss_out``. Each datagram is, in turn: lost
(``loss``); garbled (``garble``: the same length of random bytes); replaced by
an earlier datagram of the same direction and length (``replay``: a stale but
well-sealed reply); preceded by a 32-byte stray datagram sent to the same destination from
another loopback host (``stray``: a hello-sized packet "from elsewhere");
delayed (``delay`` ± ``jitter`` seconds); held until the next datagram of the
same direction has gone (``reorder``, released after ``REORDER_MAX_HOLD_SECONDS``
at the latest); and sent twice (``duplicate``). ``counters()`` says how often
each happened, so a test can show its faults were in effect.

The proxy runs on an event loop of its own in a background thread
(``running_proxy``), so the test's thread stays free to drive the daemon.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Direction = Literal["in", "out"]
DIRECTIONS: tuple[Direction, ...] = ("in", "out")
MIIO_PORT = 54321
REORDER_MAX_HOLD_SECONDS = 0.06
"""A held datagram goes at the latest this long after it was due: well inside the daemon's
150 ms reply timeout, so reordering never turns into a loss in disguise."""
FLOW_IDLE_SECONDS = 5.0
"""An upstream socket unused this long is closed (python-miio opens one socket per request)."""
START_TIMEOUT_SECONDS = 5.0
REPLAY_MEMORY = 64
"""How many past datagrams of each direction a replay may pick from."""


@dataclass
class Faults:
    """What happens to datagrams of one direction; probabilities, seconds."""

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    garble: float = 0.0
    replay: float = 0.0
    stray: float = 0.0


@dataclass
class Counters:
    """What the proxy did to the datagrams of one direction."""

    seen: int = 0
    forwarded: int = 0
    """Datagrams put on the wire towards their destination, duplicates included."""
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    """Held datagrams that a later one overtook."""
    held_alone: int = 0
    """Held datagrams released by the hold's time limit, with nothing overtaking them."""
    delayed: int = 0
    garbled: int = 0
    replayed: int = 0
    strays: int = 0


@dataclass
class _Flow:
    """One client address of the daemon and its upstream socket to the device."""

    client: tuple[str, int]
    transport: asyncio.DatagramTransport | None = None
    waiting: list[bytes] = field(default_factory=list)
    last_used: float = 0.0


@dataclass
class _Held:
    datagram: bytes
    send: Callable[[bytes], None]
    timer: asyncio.TimerHandle


class ChaosProxy:
    """Forwards miIO datagrams between ``listen_host`` and ``device_host``, with faults."""

    def __init__(
        self,
        listen_host: str,
        device_host: str,
        *,
        seed: int,
        stray_host: str | None = None,
        port: int = MIIO_PORT,
    ) -> None:
        self.listen_host = listen_host
        self.device_host = device_host
        self.stray_host = stray_host
        self.port = port
        # Chaos, not security: a seeded PRNG keeps a run reproducible as far as timing allows.
        self._rng = random.Random(seed)
        self.faults: dict[Direction, Faults] = {d: Faults() for d in DIRECTIONS}
        self.counters: dict[Direction, Counters] = {d: Counters() for d in DIRECTIONS}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.DatagramTransport | None = None
        self._stray: asyncio.DatagramTransport | None = None
        self._flows: dict[tuple[str, int], _Flow] = {}
        self._held: dict[Direction, _Held | None] = dict.fromkeys(DIRECTIONS)
        self._recent: dict[Direction, list[bytes]] = {d: [] for d in DIRECTIONS}
        self._timers: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._listener, _ = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self._from_client), local_addr=(self.listen_host, self.port)
        )
        if self.stray_host is not None:
            self._stray, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(lambda _data, _addr: None), local_addr=(self.stray_host, 0)
            )

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for held in self._held.values():
            if held is not None:
                held.timer.cancel()
        for transport in [self._listener, self._stray,
                          *(flow.transport for flow in self._flows.values())]:
            if transport is not None:
                transport.close()
        self._flows.clear()
        await asyncio.sleep(0)  # let the transports' connection_lost run

    @property
    def is_idle(self) -> bool:
        """True when no datagram is held or waiting out its delay."""
        return not self._timers and not any(self._held.values())

    # -- the two directions ---------------------------------------------------------------

    def _from_client(self, datagram: bytes, client: tuple[str, int]) -> None:
        assert self._loop is not None
        flow = self._flows.get(client)
        if flow is None:
            self._sweep()
            flow = self._flows[client] = _Flow(client)
            self._loop.create_task(self._open_upstream(flow), name=f"chaos-upstream-{client[1]}")
        flow.last_used = self._loop.time()

        def send(data: bytes) -> None:
            if flow.transport is None:
                flow.waiting.append(data)
            elif not flow.transport.is_closing():
                flow.transport.sendto(data)

        self._apply("in", datagram, send)

    def _from_device(self, datagram: bytes, flow: _Flow) -> None:
        listener = self._listener
        if listener is None or listener.is_closing():
            return

        def send(data: bytes) -> None:
            if not listener.is_closing():
                listener.sendto(data, flow.client)

        self._apply("out", datagram, send, stray_to=flow.client)

    async def _open_upstream(self, flow: _Flow) -> None:
        assert self._loop is not None
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Endpoint(lambda data, _addr: self._from_device(data, flow)),
            local_addr=(self.listen_host, 0),
            remote_addr=(self.device_host, self.port),
        )
        flow.transport = transport
        for data in flow.waiting:
            transport.sendto(data)
        flow.waiting.clear()

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for client, flow in list(self._flows.items()):
            if flow.transport is not None and now - flow.last_used > FLOW_IDLE_SECONDS:
                flow.transport.close()
                del self._flows[client]

    # -- the faults ---------------------------------------------------------------------

    def _apply(
        self,
        direction: Direction,
        datagram: bytes,
        send: Callable[[bytes], None],
        stray_to: tuple[str, int] | None = None,
    ) -> None:
        faults, counters, rng = self.faults[direction], self.counters[direction], self._rng
        counters.seen += 1
        if faults.loss and rng.random() < faults.loss:
            counters.dropped += 1
            return
        recent = self._recent[direction]
        if faults.garble and rng.random() < faults.garble:
            datagram = rng.randbytes(len(datagram))
            counters.garbled += 1
        elif faults.replay and recent and rng.random() < faults.replay:
            # A stale datagram of the same length: most likely the answer to an earlier
            # request of the same kind, which only its id and contents tell apart.
            stale = [d for d in recent if d != datagram and len(d) == len(datagram)]
            if stale:
                datagram = rng.choice(stale)
                counters.replayed += 1
        else:
            # Replays pick from what went on the wire, not from what the proxy swallowed.
            recent.append(datagram)
            del recent[:-REPLAY_MEMORY]
        stray = bool(faults.stray and rng.random() < faults.stray)
        duplicate = bool(faults.duplicate and rng.random() < faults.duplicate)
        reorder = bool(faults.reorder and rng.random() < faults.reorder)
        wait = max(0.0, faults.delay + rng.uniform(-faults.jitter, faults.jitter))
        if wait > 0:
            counters.delayed += 1
        target = stray_to if direction == "out" else (self.device_host, self.port)

        def deliver() -> None:
            if stray:
                self._send_stray(direction, target)
            self._deliver(direction, datagram, send, duplicate=duplicate, reorder=reorder)

        self._later(wait, deliver)

    def _deliver(
        self,
        direction: Direction,
        datagram: bytes,
        send: Callable[[bytes], None],
        *,
        duplicate: bool,
        reorder: bool,
    ) -> None:
        counters = self.counters[direction]
        held = self._held[direction]
        if reorder and held is None:
            assert self._loop is not None
            timer = self._loop.call_later(
                REORDER_MAX_HOLD_SECONDS, self._release_alone, direction
            )
            self._held[direction] = _Held(datagram, send, timer)
            return
        send(datagram)
        counters.forwarded += 1
        if duplicate:
            send(datagram)
            counters.forwarded += 1
            counters.duplicated += 1
        if held is not None:
            # The held datagram goes right after this later one: the two arrive swapped.
            held.timer.cancel()
            self._held[direction] = None
            held.send(held.datagram)
            counters.forwarded += 1
            counters.reordered += 1

    def _release_alone(self, direction: Direction) -> None:
        held = self._held[direction]
        if held is None:
            return
        self._held[direction] = None
        held.send(held.datagram)
        counters = self.counters[direction]
        counters.forwarded += 1
        counters.held_alone += 1

    def _send_stray(self, direction: Direction, target: tuple[str, int] | None) -> None:
        if self._stray is None or target is None or self._stray.is_closing():
            return
        self._stray.sendto(stray_datagram(self._rng), target)
        self.counters[direction].strays += 1

    def _later(self, seconds: float, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        if seconds <= 0:
            callback()
            return

        def run() -> None:
            self._timers.discard(handle)
            callback()

        handle = self._loop.call_later(seconds, run)
        self._timers.add(handle)


def stray_datagram(rng: random.Random) -> bytes:
    """32 bytes as another miIO device's hello reply: magic, length 32, its id and clock."""
    device_id, stamp = rng.randrange(1, 2**31), rng.randrange(0, 2**31)
    return struct.pack(">HHIII", 0x2131, 32, 0, device_id, stamp) + b"\xff" * 16


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, receive: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._receive = receive

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._receive(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from a client socket that went away: nothing to do.
        log.debug("chaos proxy socket: %s", exc)


class RunningProxy:
    """A ChaosProxy served from a background thread's event loop; thread-safe controls."""

    def __init__(self, proxy: ChaosProxy) -> None:
        self.proxy = proxy
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="chaos-proxy", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._run(self.proxy.start())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT_SECONDS)
        self._loop.close()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(
            timeout=START_TIMEOUT_SECONDS
        )

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the proxy's loop and return its result."""
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(function())
            except BaseException as error:
                result.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return result.result(timeout=START_TIMEOUT_SECONDS)

    def set(self, direction: Direction | Literal["both"], **faults: float) -> None:
        """Replace the faults of one direction (or both); unnamed ones become zero."""
        directions = DIRECTIONS if direction == "both" else (direction,)

        def apply() -> None:
            for one in directions:
                self.proxy.faults[one] = Faults(**faults)

        self.call(apply)

    def clear(self) -> None:
        """No faults either way: a clean wire."""
        self.set("both")

    def counters(self) -> dict[Direction, Counters]:
        """A copy of what the proxy did so far, per direction."""
        return self.call(
            lambda: {d: dataclasses.replace(c) for d, c in self.proxy.counters.items()}
        )

    def wait_quiet(self, seconds: float = REORDER_MAX_HOLD_SECONDS * 2) -> None:
        """Return once no datagram is held or delayed (polled, bounded by ``seconds`` + 1)."""
        deadline = time.monotonic() + seconds + 1.0
        while not self.call(lambda: self.proxy.is_idle):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)  # polling the proxy's queue with a deadline


@contextlib.contextmanager
def running_proxy(
    listen_host: str, device_host: str, *, seed: int, stray_host: str | None = None
) -> Iterator[RunningProxy]:
    """A started chaos proxy (no faults yet) on its own thread; closed on exit."""
    running = RunningProxy(
        ChaosProxy(listen_host, device_host, seed=seed, stray_host=stray_host)
    )
    running.start()
    try:
        yield running
    finally:
        running.close()
