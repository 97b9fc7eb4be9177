"""Specification of the simulated miIO device, spoken to by python-miio and by a raw client.

Every device binds a loopback address of its own on port 54321, as python-miio
requires. python-miio is blocking, so it runs in ``asyncio.to_thread`` beside
the device's event loop. Silence can only be shown by waiting: those tests wait
a short window and also check that the datagram did reach the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest

# The same classes ``miio`` exports; named by module because it does not re-export them to mypy.
from miio.device import Device
from miio.exceptions import DeviceError, DeviceException

from stovectl.devices.base import RelayState
from stovectl.sim.miio_device import SimulatedMiioDevice
from stovectl.sim.miio_models import answer
from stovectl.sim.miio_protocol import (
    HELLO,
    HIDDEN_TOKEN,
    decode_message,
    encode_message,
    parse_hello_reply,
    parse_token,
)
from tests.support.relay_sim import TOKEN, SimulatedDevices

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    "ignore:unclosed <socket.socket:ResourceWarning",
)

OTHER_TOKEN = "ffeeddccbbaa99887766554433221100"
DEVICE_ID = 0x0BADCAFE
SILENCE_SECONDS = 0.3
_hosts = itertools.count()


def fresh_host() -> str:
    """A loopback address of its own (any 127.x.y.z works on Linux), apart from other runs."""
    n = next(_hosts)
    return f"127.{100 + os.getpid() % 100}.{n // 250}.{n % 250 + 2}"


running = SimulatedDevices(fresh_host, DEVICE_ID).running


@pytest.fixture
def real() -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Run a coroutine on an ordinary event loop, closed (with its threads) afterwards."""
    with asyncio.Runner() as runner:
        yield runner.run
    # When python-miio raises, its unclosed sockets hang in reference cycles through the
    # traceback; collect them here, under this module's filter, not during a later test.
    gc.collect()


def miio_client(device: SimulatedMiioDevice, token: str = TOKEN) -> Device:
    return Device(device.host, token, timeout=1, model=device.model)


async def send(client: Device, method: str, params: Any, **options: Any) -> Any:
    return await asyncio.to_thread(client.send, method, params, **options)


def props(*iids: tuple[int, int], **value: Any) -> list[dict[str, Any]]:
    return [{"did": f"p{siid}-{piid}", "siid": siid, "piid": piid, **value} for siid, piid in iids]


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.put_nowait(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


class RawClient:
    """A miIO client made of the codec and one UDP socket, for exact control of each datagram."""

    def __init__(self, transport: asyncio.DatagramTransport, inbox: _Inbox) -> None:
        self.transport = transport
        self.inbox = inbox

    def send(self, datagram: bytes) -> None:
        self.transport.sendto(datagram)

    def request(self, request_id: int, method: str, params: Any, token: str = TOKEN) -> None:
        body = {"id": request_id, "method": method, "params": params}
        self.send(encode_message(body, token=parse_token(token), device_id=DEVICE_ID, stamp=1))

    async def receive(self, within_seconds: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.inbox.datagrams.get(), within_seconds)

    async def reply(self) -> dict[str, Any]:
        return decode_message(await self.receive(), parse_token(TOKEN)).body

    async def call(self, request_id: int, method: str, params: Any) -> dict[str, Any]:
        self.request(request_id, method, params)
        body = await self.reply()
        assert body["id"] == request_id
        return body

    async def assert_silent(self) -> None:
        with pytest.raises(TimeoutError):
            await self.receive(within_seconds=SILENCE_SECONDS)


@contextlib.asynccontextmanager
async def raw_client(device: SimulatedMiioDevice) -> AsyncIterator[RawClient]:
    transport, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
        _Inbox, remote_addr=(device.host, device.port)
    )
    try:
        yield RawClient(transport, inbox)
    finally:
        transport.close()
        await inbox.closed


def record(device: SimulatedMiioDevice) -> list[tuple[int, RelayState]]:
    switches: list[tuple[int, RelayState]] = []
    device.wire(lambda channel, state: switches.append((channel, state)))
    return switches


# Handshake and identity.


def test_hello_is_answered_with_device_id_stamp_and_hidden_token(real: Any) -> None:
    """A hello gets a 32-byte reply with the device id, stamp 0 at start and ff for the token."""

    async def scenario() -> None:
        async with running() as device, raw_client(device) as client:
            client.send(HELLO)
            reply = parse_hello_reply(await client.receive())
            assert (reply.device_id, reply.stamp, reply.token_field) == (DEVICE_ID, 0, HIDDEN_TOKEN)

    real(scenario())


def test_hello_leaks_the_token_like_old_firmware_when_asked(real: Any) -> None:
    """With ``leak_token`` the hello reply carries the real token."""

    async def scenario() -> None:
        async with running(leak_token=True) as device, raw_client(device) as client:
            client.send(HELLO)
            assert parse_hello_reply(await client.receive()).token_field == parse_token(TOKEN)

    real(scenario())


def test_stamp_and_life_count_seconds_since_start(virtual: Any) -> None:
    """The device clock is whole seconds since start, on the event loop's clock."""

    async def scenario() -> None:
        async with running() as device:
            assert device.stamp == 0
            await asyncio.sleep(100.5)
            assert device.stamp == 100
            assert device.info()["life"] == 100

    virtual(scenario())


def test_python_miio_handshakes_and_reads_info(real: Any) -> None:
    """python-miio's info() shows model, firmware, MAC and the device's own address."""

    async def scenario() -> None:
        async with running("yeelink.switch.sw1") as device:
            info = await asyncio.to_thread(miio_client(device).info)
            assert info.model == "yeelink.switch.sw1"
            assert info.firmware_version == "2.1.5_0021"
            assert info.mac_address == "02:00:0B:AD:CA:FE"
            assert info.ip_address == device.host
            assert info.token is None
            # python-miio's handshake sends three hellos; the device answers each.
            assert (device.traffic.hellos, device.traffic.hello_replies) == (3, 3)

    real(scenario())


# MiOT and legacy methods.


@pytest.mark.parametrize(
    ("model", "switches"),
    [
        ("generic.relay.1", [(2, 1)]),
        ("generic.relay.2", [(2, 1), (3, 1)]),
        ("yeelink.switch.sw1", [(2, 1), (3, 1)]),
    ],
)
def test_each_relay_channel_switches_through_miot(
    real: Any, model: str, switches: list[tuple[int, int]]
) -> None:
    """set_properties on a channel's switch turns that channel alone on and off, as read back."""

    async def scenario() -> None:
        async with running(model) as device:
            seen = record(device)
            client = miio_client(device)
            for channel, iid in enumerate(switches, start=1):
                codes = await send(client, "set_properties", props(iid, value=True))
                assert codes == [{"did": f"p{iid[0]}-{iid[1]}", "siid": iid[0], "piid": iid[1],
                                  "code": 0}]
                assert [device.state(c) for c in range(1, len(switches) + 1)] == [
                    RelayState.ON if c == channel else RelayState.OFF
                    for c in range(1, len(switches) + 1)
                ]
                values = await send(client, "get_properties", props(*switches))
                assert [item["value"] for item in values] == [s == iid for s in switches]
                await send(client, "set_properties", props(iid, value=False))
                assert device.state(channel) is RelayState.OFF
            initial = [(c, RelayState.OFF) for c in range(1, len(switches) + 1)]
            toggles = [(c, s) for c in range(1, len(switches) + 1)
                       for s in (RelayState.ON, RelayState.OFF)]
            assert seen == initial + toggles

    real(scenario())


def test_property_writes_answer_a_code_per_item(real: Any) -> None:
    """Each item gets its own code: 0 ok, -4002 read-only, -4003 unknown, -4005 bad value."""

    async def scenario() -> None:
        async with running("yeelink.switch.sw1") as device:
            items: list[dict[str, Any]] = [
                {"siid": 2, "piid": 3, "value": 30},  # off-delay: ok
                {"siid": 1, "piid": 2, "value": "x"},  # model name: read-only
                {"siid": 9, "piid": 9, "value": True},  # no such property
                {"siid": 3, "piid": 1, "value": 1},  # a switch is bool, not int
                {"siid": 2, "piid": 2, "value": True},  # power-on state is int, not bool
                {"siid": 3, "piid": 3, "value": 43201},  # off-delay past its range
                {"siid": 3, "piid": 3},  # no value
            ]
            result = await send(miio_client(device), "set_properties", items)
            assert [item["code"] for item in result] == [0, -4002, -4003, -4005, -4005, -4005,
                                                         -4005]
            assert [(item["siid"], item["piid"]) for item in result] == [
                (i["siid"], i["piid"]) for i in items
            ]
            assert device.values[(2, 3)] == 30
            assert device.values[(3, 3)] == -1
            assert device.state(2) is RelayState.OFF

    real(scenario())


def test_property_reads_answer_values_and_unknown_codes(real: Any) -> None:
    """get_properties returns each value with code 0, and -4003 without a value if unknown."""

    async def scenario() -> None:
        async with running("yeelink.switch.sw1") as device:
            result = await send(
                miio_client(device), "get_properties", props((1, 2), (2, 3), (2, 9))
            )
            assert result == [
                {"did": "p1-2", "siid": 1, "piid": 2, "code": 0, "value": "yeelink.switch.sw1"},
                {"did": "p2-3", "siid": 2, "piid": 3, "code": 0, "value": -1},
                {"did": "p2-9", "siid": 2, "piid": 9, "code": -4003},
            ]

    real(scenario())


def test_sensor_properties_are_served_read_only(real: Any) -> None:
    """Served sensor values read with code 0 as they change; writing one answers -4003."""

    async def scenario() -> None:
        async with running("yeelink.switch.sw1", properties={(5, 1): False}) as device:
            client = miio_client(device)
            device.set_property((6, 1), 123.4)
            device.set_property((5, 1), True)
            result = await send(client, "get_properties", props((5, 1), (6, 1), (7, 1)))
            assert [(item["code"], item.get("value")) for item in result] == [
                (0, True), (0, 123.4), (-4003, None)]
            written = await send(client, "set_properties", props((5, 1), value=False))
            assert [item["code"] for item in written] == [-4003]
            assert device.values[(5, 1)] is True

    real(scenario())


def test_a_sensor_property_cannot_shadow_the_models_own() -> None:
    """Serving a value on a switch or a model property is refused at once."""
    device = SimulatedMiioDevice(fresh_host(), TOKEN, DEVICE_ID, "yeelink.switch.sw1")
    for iid in ((2, 1), (2, 3)):
        with pytest.raises(ValueError, match=r"property of model yeelink\.switch\.sw1"):
            device.set_property(iid, True)


def test_speaker_records_spoken_and_executed_text(real: Any) -> None:
    """On the lx06, action 5/1 speaks its text and 5/5 runs it as a command; both are recorded."""

    async def scenario() -> None:
        async with running("xiaomi.wifispeaker.lx06") as device:
            client = miio_client(device)
            spoken = await send(client, "action",
                                {"did": "call-5-1", "siid": 5, "aiid": 1, "in": ["灶台已关火"]})
            assert spoken == {"did": "call-5-1", "siid": 5, "aiid": 1, "code": 0, "out": []}
            run = await send(client, "action", {"siid": 5, "aiid": 5, "in": ["关灯", True]})
            assert run["code"] == 0
            unknown = await send(client, "action", {"siid": 5, "aiid": 9, "in": ["x"]})
            assert unknown["code"] == -4003
            assert (device.spoken, device.executed) == (["灶台已关火"], ["关灯"])
            volume = await send(client, "set_properties", props((2, 1), value=20))
            assert volume[0]["code"] == 0
            assert (await send(client, "get_properties", props((2, 1))))[0]["value"] == 20

    real(scenario())


def test_legacy_plug_switches_with_set_power_and_reads_get_prop(real: Any) -> None:
    """chuangmi.plug.m1 answers get_prop ["power"] and set_power, and has no MiOT methods."""

    async def scenario() -> None:
        async with running("chuangmi.plug.m1") as device:
            seen = record(device)
            client = miio_client(device)
            assert await send(client, "get_prop", ["power", "nonsense"]) == ["off", None]
            assert await send(client, "set_power", ["on"]) == ["ok"]
            assert await send(client, "get_prop", ["power"]) == ["on"]
            with pytest.raises(DeviceError) as refused:
                await send(client, "set_power", ["toggle"])
            assert refused.value.code == -5001
            with pytest.raises(DeviceError) as missing:
                await send(client, "get_properties", props((2, 1)))
            assert missing.value.code == -32601
            assert seen == [(1, RelayState.OFF), (1, RelayState.ON)]

    real(scenario())


def test_an_unknown_method_is_method_not_found(real: Any) -> None:
    """A method the model lacks answers error -32601 "Method not found"."""

    async def scenario() -> None:
        async with running() as device:
            with pytest.raises(DeviceError) as caught:
                await send(miio_client(device), "set_power", ["on"])
            assert (caught.value.code, caught.value.message) == (-32601, "Method not found")

    real(scenario())


def test_channels_can_be_given_for_a_model_not_in_the_table(real: Any) -> None:
    """An unknown MiOT model works when its channels' (siid, piid) are given."""

    async def scenario() -> None:
        async with running("acme.switch.duo", channels=[(5, 1), (6, 1)]) as device:
            async with raw_client(device) as client:
                reply = await client.call(
                    1, "set_properties", [{"siid": 6, "piid": 1, "value": True}]
                )
            assert reply["result"][0]["code"] == 0
            assert (device.state(1), device.state(2)) == (RelayState.OFF, RelayState.ON)

    real(scenario())


def test_bad_constructor_arguments_fail_at_once() -> None:
    """An unknown model without channels, channels on a legacy plug and a bad token are refused."""
    with pytest.raises(ValueError, match="unknown model"):
        SimulatedMiioDevice("127.0.0.9", TOKEN, 1, "acme.switch.duo")
    with pytest.raises(ValueError, match="legacy"):
        SimulatedMiioDevice("127.0.0.9", TOKEN, 1, "chuangmi.plug.m1", channels=[(2, 1)])
    with pytest.raises(ValueError, match="32 hex"):
        SimulatedMiioDevice("127.0.0.9", TOKEN[:-2], 1, "generic.relay.1")
    with pytest.raises(ValueError, match="no channel 2"):
        SimulatedMiioDevice("127.0.0.9", TOKEN, 1, "generic.relay.1").state(2)


# Other hands on the relay, and the device's own timer.


def test_a_switch_by_hand_is_wired_and_read_back(real: Any) -> None:
    """Someone else switching the relay reaches the wiring and shows through the protocol."""

    async def scenario() -> None:
        async with running("generic.relay.2") as device:
            seen = record(device)
            device.switch_by_hand(2, RelayState.ON)
            values = await send(miio_client(device), "get_properties", props((2, 1), (3, 1)))
            assert [item["value"] for item in values] == [False, True]
            assert seen == [(1, RelayState.OFF), (2, RelayState.OFF), (2, RelayState.ON)]

    real(scenario())


def test_a_second_python_miio_client_reusing_ids_is_dropped_once_then_recovers(
    real: Any,
) -> None:
    """Two python-miio clients both start at id 1: the second is ignored, then retries at +100."""

    async def scenario() -> None:
        async with running() as device:
            await send(miio_client(device), "set_properties", props((2, 1), value=True))
            codes = await send(miio_client(device), "set_properties", props((2, 1), value=False))
            assert codes[0]["code"] == 0
            assert device.state(1) is RelayState.OFF
            assert [request["id"] for request in device.traffic.requests] == [1, 1, 102]
            assert device.traffic.repeated == 1

    real(scenario())


def test_yeelink_off_delay_switches_the_channel_off_by_itself(real: Any) -> None:
    """With off-delay 1 s, a channel switched on over the wire turns itself off a second later."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with running("yeelink.switch.sw1") as device:
            switched_off = asyncio.Event()
            times: dict[RelayState, float] = {}

            def on_switch(channel: int, state: RelayState) -> None:
                if channel == 1:
                    times[state] = loop.time()
                    if state is RelayState.OFF and RelayState.ON in times:
                        switched_off.set()

            device.wire(on_switch)
            client = miio_client(device)
            await send(client, "set_properties", props((2, 3), value=1))
            await send(client, "set_properties", props((2, 1), value=True))
            await asyncio.wait_for(switched_off.wait(), timeout=5)
            assert times[RelayState.OFF] - times[RelayState.ON] >= 0.99
            assert (device.state(1), device.state(2)) == (RelayState.OFF, RelayState.OFF)
            assert (await send(client, "get_properties", props((2, 1))))[0]["value"] is False

    real(scenario())


def test_off_delay_restarts_and_cancels_as_the_channel_and_value_change(virtual: Any) -> None:
    """The countdown starts when switched on, stops when switched off, and -1 disables it."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with running("yeelink.switch.sw1") as device:
            offs: list[float] = []

            def on_switch(channel: int, state: RelayState) -> None:
                if channel == 2 and state is RelayState.OFF:
                    offs.append(loop.time())

            device.wire(on_switch)
            offs.clear()
            written = answer(device, "set_properties", props((3, 3), value=600))
            assert written["result"][0]["code"] == 0
            start = loop.time()
            device.switch_by_hand(2, RelayState.ON)
            await asyncio.sleep(300)
            device.switch_by_hand(2, RelayState.OFF)  # Stops the countdown...
            device.switch_by_hand(2, RelayState.ON)  # ...and this starts a new one.
            await asyncio.sleep(900)
            assert offs == [start + 300, start + 900]
            answer(device, "set_properties", props((3, 3), value=-1))
            device.switch_by_hand(2, RelayState.ON)
            await asyncio.sleep(50_000)
            assert device.state(2) is RelayState.ON

    virtual(scenario())


# Faults.


def test_a_wrong_token_gets_a_handshake_but_no_answer(real: Any) -> None:
    """The device answers hello whatever the token, then ignores the command it cannot verify."""

    async def scenario() -> None:
        async with running() as device:
            with pytest.raises(DeviceException):
                await send(miio_client(device, OTHER_TOKEN), "miIO.info", [], retry_count=0)
            assert device.traffic.hello_replies == 3
            assert device.traffic.undecodable == 1
            assert device.traffic.replies == []

    real(scenario())


def test_an_offline_device_is_silent_even_to_hello(real: Any) -> None:
    """Offline, nothing is answered, not even hello; back online, it answers again."""

    async def scenario() -> None:
        async with running() as device, raw_client(device) as client:
            device.offline = True
            client.send(HELLO)
            client.request(1, "miIO.info", [])
            await client.assert_silent()
            assert device.traffic.datagrams == 2
            device.offline = False
            assert "result" in await client.call(2, "miIO.info", [])

    real(scenario())


def test_a_stuck_relay_acknowledges_but_does_not_switch(real: Any) -> None:
    """Stuck, set_properties answers code 0 and set_power "ok", yet the channel stays off."""

    async def scenario() -> None:
        async with running() as relay, running("chuangmi.plug.m1") as plug:
            relay.stuck = plug.stuck = True
            relay_client = miio_client(relay)
            codes = await send(relay_client, "set_properties", props((2, 1), value=True))
            assert codes[0]["code"] == 0
            assert await send(miio_client(plug), "set_power", ["on"]) == ["ok"]
            assert (relay.state(1), plug.state(1)) == (RelayState.OFF, RelayState.OFF)
            values = await send(relay_client, "get_properties", props((2, 1)))
            assert values[0]["value"] is False

    real(scenario())


def test_refused_writes_answer_minus_4005_per_item(real: Any) -> None:
    """With refuse_writes, every set_properties item answers -4005 and nothing switches."""

    async def scenario() -> None:
        async with running("generic.relay.2") as device:
            device.refuse_writes = True
            result = await send(
                miio_client(device), "set_properties", props((2, 1), (3, 1), value=True)
            )
            assert [item["code"] for item in result] == [-4005, -4005]
            assert (device.state(1), device.state(2)) == (RelayState.OFF, RelayState.OFF)

    real(scenario())


def test_a_repeated_request_id_is_dropped_unless_told_otherwise(real: Any) -> None:
    """A recent id is ignored silently; the next id is answered; the switch can turn this off."""

    async def scenario() -> None:
        async with running() as device, raw_client(device) as client:
            await client.call(7, "set_properties", props((2, 1), value=True))
            client.request(7, "set_properties", props((2, 1), value=False))
            # The device answers in order, so the next reply shows whether 7 was answered.
            assert (await client.call(8, "miIO.info", []))["id"] == 8
            assert device.state(1) is RelayState.ON
            assert device.traffic.repeated == 1
            device.drop_repeated_ids = False
            await client.call(7, "set_properties", props((2, 1), value=False))
            assert device.state(1) is RelayState.OFF

    real(scenario())


def test_total_inbound_loss_answers_nothing(real: Any) -> None:
    """With loss_in 1.0, hellos and requests reach the socket but none is taken in or answered."""

    async def scenario() -> None:
        async with running() as device, raw_client(device) as client:
            device.loss_in = 1.0
            client.send(HELLO)
            client.request(1, "set_properties", props((2, 1), value=True))
            await client.assert_silent()
            assert device.traffic.datagrams == 2
            assert (device.traffic.hellos, device.traffic.requests) == (0, [])
            assert device.state(1) is RelayState.OFF

    real(scenario())


def test_a_lost_reply_still_leaves_the_command_done(real: Any) -> None:
    """With loss_out 1.0 the device switches but the client hears nothing: outcome unknown."""

    async def scenario() -> None:
        async with running() as device, raw_client(device) as client:
            device.loss_out = 1.0
            client.request(1, "set_properties", props((2, 1), value=True))
            await client.assert_silent()
            assert device.state(1) is RelayState.ON
            assert device.traffic.replies == []

    real(scenario())


class ScriptedRandom(random.Random):
    """A generator whose draws are given, so a test decides exactly which datagrams are lost."""

    def __init__(self, draws: list[float]) -> None:
        super().__init__(0)
        self.draws = iter(draws)

    def random(self) -> float:
        return next(self.draws)


def test_partial_loss_drops_the_requests_the_generator_picks(real: Any) -> None:
    """With loss_in 0.5, a request is lost exactly when its draw falls below 0.5."""

    async def scenario() -> None:
        rng = ScriptedRandom([0.7, 0.2, 0.5, 0.49, 0.9])
        async with running(rng=rng) as device, raw_client(device) as client:
            device.loss_in = 0.5
            for request_id in range(1, 6):
                client.request(request_id, "miIO.info", [])
            answered = [(await client.reply())["id"] for _ in range(3)]
            assert answered == [1, 3, 5]
            assert [request["id"] for request in device.traffic.requests] == [1, 3, 5]

    real(scenario())


def test_a_delayed_reply_comes_late_but_the_command_acts_at_once(real: Any) -> None:
    """With delay, the channel switches on arrival and the reply follows after the delay."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with running() as device, raw_client(device) as client:
            device.delay = 0.3
            switched: list[float] = []

            def on_switch(_: int, state: RelayState) -> None:
                if state is RelayState.ON:
                    switched.append(loop.time())

            device.wire(on_switch)
            sent = loop.time()
            await client.call(1, "set_properties", props((2, 1), value=True))
            replied = loop.time()
            assert replied - switched[0] >= 0.29
            assert switched[0] - sent < 0.2

    real(scenario())


# Robustness and several devices.


def test_bad_datagrams_are_ignored_and_the_device_keeps_answering(real: Any) -> None:
    """Garbage, truncation, a wrong token or a body without id are ignored; 32 bytes is a hello."""

    async def scenario() -> None:
        token = parse_token(TOKEN)
        valid = encode_message({"id": 1, "method": "miIO.info", "params": []},
                               token=token, device_id=DEVICE_ID, stamp=1)
        no_id = encode_message({"method": "miIO.info"}, token=token, device_id=DEVICE_ID, stamp=1)
        async with running() as device, raw_client(device) as client:
            for datagram in [b"hello world", os.urandom(100), valid[:40], no_id]:
                client.send(datagram)
            client.request(2, "miIO.info", [], token=OTHER_TOKEN)
            client.send(b"\x00" * 32)
            assert parse_hello_reply(await client.receive()).device_id == DEVICE_ID
            assert (await client.call(3, "miIO.info", []))["result"]["model"] == "generic.relay.1"
            assert device.traffic.undecodable == 5
            assert [reply["id"] for reply in device.traffic.replies] == [3]

    real(scenario())


def test_two_devices_answer_on_their_own_addresses_at_once(real: Any) -> None:
    """Two devices on two loopback addresses serve concurrent python-miio clients separately."""

    async def scenario() -> None:
        async with running("generic.relay.1") as relay, running("chuangmi.plug.m1") as plug:
            relay_info, plug_reply = await asyncio.gather(
                asyncio.to_thread(miio_client(relay).info),
                send(miio_client(plug), "set_power", ["on"]),
            )
            assert relay_info.model == "generic.relay.1"
            assert relay_info.ip_address == relay.host != plug.host
            assert plug_reply == ["ok"]
            assert (relay.state(1), plug.state(1)) == (RelayState.OFF, RelayState.ON)

    real(scenario())


def test_close_is_idempotent_and_frees_the_address(real: Any) -> None:
    """Closing twice is harmless, and a new device can bind the same address afterwards."""

    async def scenario() -> None:
        first = SimulatedMiioDevice(fresh_host(), TOKEN, 1, "generic.relay.1")
        await first.start()
        await first.close()
        await first.close()
        second = SimulatedMiioDevice(first.host, TOKEN, 2, "generic.relay.1")
        await second.start()
        try:
            async with raw_client(second) as client:
                client.send(HELLO)
                assert parse_hello_reply(await client.receive()).device_id == 2
        finally:
            await second.close()

    real(scenario())
