"""Bad miIO replies to the real driver: only DeviceErrors, and never a state the device did not say.

A scripted device on 127.0.22.x:54321 answers hello properly, then answers
each request with whatever the example chose: a proper reply, a proper reply
with one thing wrong (a refusal code, a value that is not a boolean, an item
missing, an ``error``, no ``result``), an arbitrary JSON body, or a datagram
that is no reply at all (wrong length, wrong magic, bad checksum, another
token, junk inside a valid frame, silence). The real ``MiioRelay`` (python-miio
underneath, in its lane thread) reads, writes and pulses through it, one
long-lived driver per device across all examples, as in the daemon.

After each example: the call returned or raised a project DeviceError, nothing
else; a read returned exactly the states the reply's items said, and only from
a well-formed reply (a wrong "verified" is the dangerous case, rule 2); a
write or pulse counted as done only when every item's code was 0 or 1; no
error or traceback was logged.

A reply whose ``id`` is not the request's (another number, or no number at
all: python-miio would adopt it as its next id) and an item naming another
property than the one asked for are device errors, and the lane goes on working.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stovectl.devices.base import RelayState
from stovectl.devices.miio import MiioRelay
from stovectl.errors import DeviceError
from stovectl.settings import MiioDeviceSettings
from stovectl.sim.miio_protocol import (
    HEADER_SIZE,
    build_hello_reply,
    build_packet,
    decode_message,
    encode_message,
    is_hello,
    parse_token,
)
from tests.fuzz.campaign import JSON_VALUES, LogGuard, Tally, budget

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

TOKEN = "00112233445566778899aabbccddeeff"
TOKEN_BYTES = parse_token(TOKEN)
OTHER_TOKEN = parse_token("ffeeddccbbaa99887766554433221100")
DEVICE_ID = 0x0F022
HOSTS = {"miot": "127.0.22.10", "legacy": "127.0.22.11"}
MODELS = {"miot": "yeelink.switch.sw1", "legacy": "chuangmi.plug.m1"}
ON, OFF = RelayState.ON, RelayState.OFF
CALL_WITHIN_SECONDS = 5.0


# -- what the device answers -----------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """How the device answers one request: ``make`` turns the request body into a datagram
    (None: silence); ``says`` is the body the driver may trust, when the datagram is a
    well-formed frame for the right token."""

    kind: str
    make: Callable[[dict[str, Any]], bytes | None]
    says: Callable[[dict[str, Any]], dict[str, Any] | None]

    def __repr__(self) -> str:
        return f"Reply({self.kind})"


def frame(body: dict[str, Any], token: bytes = TOKEN_BYTES) -> bytes:
    return encode_message(body, token=token, device_id=DEVICE_ID, stamp=2)


def proper_result(request: dict[str, Any], values: list[Any]) -> Any:
    """What a device that did everything says: one item per item asked, or ok/on/off."""
    method, params = request["method"], request["params"]
    if method == "get_properties":
        return [{**item, "code": 0, "value": values[n % len(values)]}
                for n, item in enumerate(params)]
    if method == "set_properties":
        return [{k: v for k, v in item.items() if k != "value"} | {"code": 0} for item in params]
    if method == "get_prop":
        return ["on" if values[0] else "off"]
    return ["ok"]


MUTATIONS = ("code", "value", "drop item", "extra item", "not a list", "no result", "error",
             "extra key", "item not an object", "other integer id", "id not an integer",
             "other property")
ITEM_CODES = st.sampled_from([1, -4001, -4004, -4005, 2, -1, True, 0.0, "0", None, [0]])
ITEM_VALUES = st.sampled_from([1, 0, "true", "on", None, "ON", [True], {"v": True}, 1.0])


@st.composite
def json_replies(draw: st.DrawFn) -> Reply:
    """A decodable reply under the right token: proper, with one thing wrong, or arbitrary."""
    values = draw(st.lists(st.booleans(), min_size=1, max_size=2))
    mutation = draw(st.sampled_from(("none", "none", "arbitrary", *MUTATIONS)))
    index = draw(st.integers(0, 1))
    junk = draw(JSON_VALUES)
    code, value = draw(ITEM_CODES), draw(ITEM_VALUES)
    error = junk if draw(st.booleans()) else {"code": -5001, "message": "no"}

    def body(request: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {"id": request["id"], "result": proper_result(request, values)}
        result = answer["result"]
        at = index % len(result)
        if mutation == "arbitrary":
            return {"id": request["id"], "result": junk}
        if mutation == "code" and isinstance(result[at], dict):
            result[at]["code"] = code
        elif mutation == "value" and isinstance(result[at], dict):
            result[at]["value"] = value
        elif mutation == "value":
            result[at] = value
        elif mutation == "drop item":
            del result[at]
        elif mutation == "extra item":
            result.append(result[at])
        elif mutation == "not a list":
            answer["result"] = junk if not isinstance(junk, list) else {"items": junk}
        elif mutation == "no result":
            del answer["result"]
        elif mutation == "error":
            answer["error"] = error
        elif mutation == "extra key":
            answer["exe_time"] = junk
        elif mutation == "item not an object":
            result[at] = junk
        elif mutation == "other integer id":
            answer["id"] = request["id"] + 1
        elif mutation == "id not an integer":
            answer["id"] = junk if not isinstance(junk, int) or isinstance(junk, bool) else "7"
        elif mutation == "other property" and isinstance(result[at], dict):
            result[at]["siid"], result[at]["piid"] = 9, 9
        return answer

    return Reply(f"json: {mutation}", lambda request: frame(body(request)), body)


def _no_trust(_request: dict[str, Any]) -> None:
    return None


def _flip(datagram: bytes, at: int) -> bytes:
    damaged = bytearray(datagram)
    damaged[at % len(damaged)] ^= 0x40
    return bytes(damaged)


@st.composite
def raw_replies(draw: st.DrawFn) -> Reply:
    """A datagram that is not a reply the driver may trust."""
    kind = draw(st.sampled_from([
        "random bytes", "32 bytes", "bad magic", "bad checksum", "other token", "truncated",
        "padded", "length lies", "junk plaintext", "json list", "no id", "silence",
    ]))
    data = draw(st.binary(max_size=120))
    at = draw(st.integers(0, 10_000))
    plaintext = draw(st.binary(min_size=1, max_size=64).filter(_not_json_object))
    junk = draw(JSON_VALUES.filter(lambda v: not isinstance(v, dict)))

    def make(request: dict[str, Any]) -> bytes | None:
        good = frame({"id": request["id"], "result": proper_result(request, [True, False])})
        if kind == "random bytes":
            return data
        if kind == "32 bytes":
            return (data + bytes(32))[:HEADER_SIZE]
        if kind == "bad magic":
            return b"\x21\x32" + good[2:]
        if kind == "bad checksum":
            return _flip(good, 16 + at % 16)
        if kind == "other token":
            return frame({"id": request["id"], "result": ["ok"]}, OTHER_TOKEN)
        if kind == "truncated":
            return good[: max(HEADER_SIZE + 1, len(good) - 1 - at % 16)]
        if kind == "padded":
            return good + data[:15] + b"\x00"
        if kind == "length lies":
            return good[:2] + ((len(good) + 16) % 65536).to_bytes(2, "big") + good[4:]
        if kind == "junk plaintext":
            return build_packet(plaintext, token=TOKEN_BYTES, device_id=DEVICE_ID, stamp=2)
        if kind == "json list":
            return build_packet(json.dumps(junk).encode(), token=TOKEN_BYTES,
                                device_id=DEVICE_ID, stamp=2)
        if kind == "no id":
            return frame({"result": ["ok"]})
        return None  # silence

    return Reply(f"raw: {kind}", make, _no_trust)


def _not_json_object(data: bytes) -> bool:
    try:
        return not isinstance(json.loads(data.rstrip(b"\x00")), dict)
    except (ValueError, RecursionError):
        return True


class ScriptedDevice(asyncio.DatagramProtocol):
    """Answers hello properly, and each request as ``reply`` says; keeps what it was asked."""

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.requests: list[dict[str, Any]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        if is_hello(data):
            self.transport.sendto(build_hello_reply(DEVICE_ID, 1), addr)
            return
        request = decode_message(data, TOKEN_BYTES).body
        self.requests.append(request)
        answer = self.reply.make(request) if self.reply is not None else None
        if answer is not None:
            self.transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        """The driver closed its hello socket before the second and third hello replies."""


# -- the driver ------------------------------------------------------------------------


class FormattedArgs(logging.Filter):
    """Formats python-miio's log records at once: their arguments include the exception of a
    failed call, which holds its unclosed socket, and pytest keeps records until the test ends,
    after this module's warning filter."""

    LOGGERS = ("miio.miioprotocol", "miio.protocol")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage(), ()
        return True


@dataclass(frozen=True)
class Raised:
    name: str
    module: str
    message: str
    is_device_error: bool


class Drivers:
    """One scripted device and one long-lived MiioRelay per protocol, on one loop."""

    def __init__(self) -> None:
        self.formatted = FormattedArgs()
        for name in FormattedArgs.LOGGERS:
            logging.getLogger(name).addFilter(self.formatted)
        self.runner = asyncio.Runner()
        self.devices: dict[str, ScriptedDevice] = {}
        self.relays: dict[str, MiioRelay] = {}
        self.transports: list[asyncio.BaseTransport] = []
        self.runner.run(self._start())

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for protocol, host in HOSTS.items():
            transport, device = await loop.create_datagram_endpoint(
                ScriptedDevice, local_addr=(host, 54321))
            self.transports.append(transport)
            self.devices[protocol] = device
            settings = MiioDeviceSettings.model_validate({
                "kind": "miio", "id": f"fuzz-{protocol}", "host": host, "token": TOKEN,
                "model": MODELS[protocol], "timeout": "100ms", "handshake_timeout": "100ms",
                "device_pulse": True,
            })
            relay = MiioRelay(settings)
            await relay.start()
            self.relays[protocol] = relay

    def close(self) -> None:
        async def stop() -> None:
            for relay in self.relays.values():
                await relay.close()
            for transport in self.transports:
                transport.close()

        self.runner.run(stop())
        self.runner.close()
        for name in FormattedArgs.LOGGERS:
            logging.getLogger(name).removeFilter(self.formatted)
        for thread in threading.enumerate():
            if thread.name.startswith("miio-fuzz-"):
                thread.join(timeout=5)
        gc.collect()  # python-miio's leaked sockets, under this module's warning filter

    def call(self, protocol: str, operation: str, channel: int, state: RelayState,
             reply: Reply) -> tuple[Any, Raised | None, list[dict[str, Any]]]:
        """What the call returned, or what it raised (described: a failed python-miio call's
        exception holds its unclosed socket, which must not outlive this module)."""
        device, relay = self.devices[protocol], self.relays[protocol]

        async def run() -> Any:
            if operation == "read":
                return await relay.read()
            if operation == "pulse":
                return await relay.pulse(channel, state, 3.0)
            return await relay.write(channel, state)

        device.reply, device.requests = reply, []
        try:
            result = self.runner.run(asyncio.wait_for(run(), CALL_WITHIN_SECONDS))
        except Exception as error:
            raised = Raised(type(error).__name__, type(error).__module__, str(error),
                            isinstance(error, DeviceError))
            del error
            return None, raised, device.requests
        return result, None, device.requests


@pytest.fixture(scope="module")
def drivers() -> Iterator[Drivers]:
    started = Drivers()
    yield started
    started.close()


def trusted_states(
    says: dict[str, Any] | None, channels: int, request: dict[str, Any]
) -> dict[int, RelayState] | None:
    """The states a reply body clearly says: the request's id, and one proper item per
    channel, about the property asked for (or on/off)."""
    if says is None or "error" in says or says.get("id") != request["id"]:
        return None
    result = says.get("result")
    if isinstance(result, list) and result and isinstance(result[0], str):  # legacy get_prop
        # The first word answers the one property asked; any after it are ignored.
        return {1: RelayState(result[0])} if result[0] in ("on", "off") else None
    if not isinstance(result, list) or len(result) != channels:
        return None
    states = {}
    for n, (item, asked) in enumerate(zip(result, request["params"], strict=False), start=1):
        if not isinstance(item, dict) or item.get("code") not in (0, 1) or type(
            item.get("value")
        ) is not bool or (item.get("siid"), item.get("piid")) != (asked["siid"], asked["piid"]):
            return None
        states[n] = ON if item["value"] else OFF
    return states


def acknowledged(says: dict[str, Any] | None, items: int) -> bool:
    """Whether a reply body clearly says a write was done: every item's code 0 or 1, or ok."""
    if says is None or "error" in says:
        return False
    result = says.get("result")
    if result == ["ok"]:
        return True
    # Compared as Python compares: a JSON true or 1.0 passes for 1. Harmless,
    # as a write is only ever done once read back (rule 2).
    return isinstance(result, list) and len(result) == items and all(
        isinstance(item, dict) and item.get("code") in (0, 1) for item in result
    )


@budget(bounded=400, soak=5_000)
@given(
    protocol=st.sampled_from(["miot", "miot", "legacy"]),
    operation=st.sampled_from(["read", "read", "write", "pulse"]),
    channel=st.integers(1, 2),
    state=st.sampled_from([ON, OFF]),
    reply=json_replies() | raw_replies(),
)
def test_a_reply_gives_what_it_says_or_a_device_error(
    drivers: Drivers, log_guard: LogGuard, tally: Tally, protocol: str, operation: str,
    channel: int, state: RelayState, reply: Reply,
) -> None:
    """Whatever the device answers: a DeviceError, or exactly what a well-formed reply says."""
    channels = 2 if protocol == "miot" else 1
    channel = min(channel, channels)
    tally.tried(f"{protocol} {operation}", reply.kind)
    result, error, requests = drivers.call(protocol, operation, channel, state, reply)
    problems = [f"logged: {line}" for line in log_guard.take()]
    if error is not None:
        tally.saw(error.name)
        if not error.is_device_error or error.module != "stovectl.errors":
            problems.append(f"{error.module}.{error.name} escaped: {error.message}")
        elif TOKEN in error.message:
            problems.append(f"the token is in the error: {error.message}")
    elif not requests:
        tally.saw("refused before sending")
    else:
        says = reply.says(requests[-1])
        if operation == "read":
            tally.saw("read a state")
            wanted = trusted_states(says, channels, requests[-1])
            if result != wanted:
                problems.append(f"read {result} from a reply saying {says} (trusted: {wanted})")
        else:
            tally.saw("acknowledged")
            items = len(requests[-1]["params"]) if protocol == "miot" else 1
            if not acknowledged(says, items):
                problems.append(f"a {operation} counted as done on a reply saying {says}")
    assert not problems, "\n".join([f"{reply!r} to {requests}", *problems])
