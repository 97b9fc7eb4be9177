"""MiOT sensors polled over real UDP: readings, one lane per device, offline, codes, liars.

The adapter runs python-miio in lane threads, so these tests use an ordinary
event loop and real time, with 40 ms polls and 150 ms timeouts. Devices are
the miIO simulator serving sensor properties, each on an address of this
module's own range, 127.0.12.x; a device that lies in ways the simulator
never would is scripted from the codec. Tests wait on what the adapter tells
its fake ``SensorInput``, with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from stovectl.devices.base import RelayState
from stovectl.devices.miio import MiioLane, MiioRelay
from stovectl.errors import ConfigError
from stovectl.sensors.miot import MiotSensors
from stovectl.settings import MiioDeviceSettings, MiotSensorSettings
from stovectl.sim.miio_device import SimulatedMiioDevice
from stovectl.sim.miio_protocol import (
    build_hello_reply,
    decode_message,
    encode_message,
    is_hello,
    parse_token,
)
from tests.support.relay_sim import TOKEN, SimulatedDevices
from tests.support.sensor_input import RecordingInput

pytestmark = pytest.mark.filterwarnings(
    # python-miio 0.5.12 never closes its per-request UDP sockets (PROTOCOLS.md, "Warnings").
    r"ignore:unclosed <socket\.socket fd=\d+, family=\S+, type=(2|SocketKind\.SOCK_DGRAM),"
    ":ResourceWarning",
)

LOGGER = "stovectl.sensors.miot"
DEVICE_ID = 0x5E450001
GAS = (5, 1)
SMOKE = (6, 1)
PROBE = (7, 1)
_hosts = itertools.count(2)


def fresh_host() -> str:
    """The next loopback address of this module's own range, 127.0.12.x."""
    n = next(_hosts)
    assert n < 255, "this module ran out of 127.0.12.x addresses"
    return f"127.0.12.{n}"


running = SimulatedDevices(fresh_host, DEVICE_ID).running


@pytest.fixture
def real() -> Iterator[Callable[[Any], Any]]:
    """Run a coroutine on an ordinary event loop; the lanes' threads must end with it."""
    with asyncio.Runner() as runner:
        yield runner.run
    for thread in threading.enumerate():
        if thread.name.startswith(("miio-sensors@127.0.12.", "miio-hob")):
            thread.join(timeout=5)
            assert not thread.is_alive(), f"{thread.name} outlived close"
    gc.collect()  # python-miio's unclosed sockets, under this module's filter


def sensor(host: str, sensor_id: str, iid: tuple[int, int], **fields: Any) -> MiotSensorSettings:
    return MiotSensorSettings.model_validate({
        "source": "miot", "id": sensor_id, "kind": "gas", "host": host, "token": TOKEN,
        "siid": iid[0], "piid": iid[1], "poll_interval": "40ms", "timeout": "150ms",
        **fields,
    })


class FakeIds:
    """Request ids kept in memory, as ``core.store`` keeps them in SQLite."""

    def __init__(self) -> None:
        self.saved: dict[str, int] = {}

    def load_request_id(self, device: str) -> int | None:
        return self.saved.get(device)

    def save_request_id(self, device: str, request_id: int) -> None:
        self.saved[device] = request_id


@contextlib.asynccontextmanager
async def polling(
    sensors: Sequence[MiotSensorSettings],
    ids: FakeIds | None = None,
    lanes: Mapping[str, MiioLane] | None = None,
) -> AsyncIterator[RecordingInput]:
    target = RecordingInput()
    adapter = MiotSensors(sensors, ids, target, lanes)
    await adapter.start()
    try:
        yield target
    finally:
        await adapter.close()


def properties(device: SimulatedMiioDevice) -> list[list[tuple[int, int]]]:
    """The properties each get_properties request asked for."""
    return [[(item["siid"], item["piid"]) for item in request["params"]]
            for request in device.traffic.requests if request["method"] == "get_properties"]


def test_a_property_is_read_and_followed(real: Any) -> None:
    """A gas alarm's boolean is told available and read; a change is read at the next poll."""

    async def scenario() -> None:
        async with running(properties={GAS: False}) as device, \
                polling([sensor(device.host, "gas", GAS)]) as target:
            await target.until(lambda: target.readings("gas")[-1:] == [False], "no gas")
            device.set_property(GAS, True)
            await target.until(lambda: target.readings("gas")[-1:] == [True], "gas")
            assert target.availability("gas") == [True]

    real(scenario())


def test_sensors_of_one_device_share_one_request(real: Any) -> None:
    """Two properties of one detector are read in one get_properties per round."""

    async def scenario() -> None:
        async with running(properties={GAS: True, SMOKE: False}) as device:
            sensors = [sensor(device.host, "gas", GAS),
                       sensor(device.host, "smoke", SMOKE, kind="smoke", poll_interval="1h")]
            async with polling(sensors) as target:
                await target.until(lambda: len(target.readings("smoke")) >= 3, "three rounds")
            assert target.readings("gas")[:3] == [True] * 3
            assert target.readings("smoke")[:3] == [False] * 3
            asked = properties(device)
            assert len(asked) >= 3  # the shorter interval of the two sets the pace
            assert all(request == [GAS, SMOKE] for request in asked)

    real(scenario())


def test_a_probe_reads_degrees_through_its_hysteresis(real: Any) -> None:
    """A flame probe's float temperature goes against on_above and off_below."""

    async def scenario() -> None:
        async with running(properties={PROBE: 25.0}) as device:
            probe = sensor(device.host, "flame", PROBE, kind="flame", burner="left",
                           on_above=80, off_below=60)
            async with polling([probe]) as target:
                await target.until(lambda: target.readings("flame")[-1:] == [False], "cold")
                device.set_property(PROBE, 250.5)
                await target.until(lambda: target.readings("flame")[-1:] == [True], "hot")
                device.set_property(PROBE, 70.0)  # in the band: still hot
                await target.until(lambda: len(target.readings("flame")) >= 8, "more rounds")
                assert set(target.readings("flame")[-3:]) == {True}

    real(scenario())


def test_a_silent_device_makes_its_sensors_unavailable_after_three_polls(
    real: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Three unanswered polls: unavailable, said once; its first answer: available again."""

    async def scenario() -> None:
        async with running(properties={GAS: True}) as device, \
                polling([sensor(device.host, "gas", GAS)]) as target:
            await target.until(lambda: target.readings("gas") == [True], "gas")
            device.offline = True
            await target.until(lambda: target.availability("gas") == [True, False], "offline")
            device.offline = False
            await target.until(lambda: target.availability("gas") == [True, False, True],
                               "back")
            assert target.of("gas")[-1] == ("reading", True)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        real(scenario())
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert [level for level, _ in said] == [logging.WARNING, logging.INFO], said
    assert "does not answer" in said[0][1] and "sensors gas are unavailable" in said[0][1]
    assert said[1][1].endswith("answers again")


def test_a_refused_property_is_unreadable_while_others_read(
    real: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """-4003 for one property: that sensor is warned of once and goes; the other reads on."""

    async def scenario() -> None:
        async with running(properties={GAS: True}) as device:
            sensors = [sensor(device.host, "gas", GAS),
                       sensor(device.host, "smoke", SMOKE, kind="smoke")]
            async with polling(sensors) as target:
                await target.until(lambda: target.availability("smoke") == [False], "gone")
                await target.until(lambda: len(target.readings("gas")) >= 5, "gas rounds")
                device.set_property(SMOKE, True)
                await target.until(lambda: target.readings("smoke") == [True], "smoke back")
                assert target.availability("smoke") == [False, True]

    with caplog.at_level(logging.INFO, logger=LOGGER):
        real(scenario())
    said = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert said == [
        "sensor 'smoke' (siid 6 piid 1): code -4003 (no such property); its last reading "
        "stands (said once until it reads again)",
        "sensor smoke reads again",
    ]


@pytest.mark.parametrize("garbage", ["banana", 23.5, math.nan])
def test_a_value_that_is_no_reading_counts_as_unread(real: Any, garbage: Any) -> None:
    """A gas alarm reading "banana", 23.5 or NaN is no reading: three of those, unavailable."""

    async def scenario() -> None:
        async with running(properties={GAS: True}) as device, \
                polling([sensor(device.host, "gas", GAS)]) as target:
            await target.until(lambda: target.readings("gas") == [True], "gas")
            device.set_property(GAS, garbage)
            await target.until(lambda: target.availability("gas") == [True, False], "unread")
            assert target.readings("gas") == [True]

    real(scenario())


def test_request_ids_are_kept_under_a_key_of_the_device(real: Any) -> None:
    """The lane's last request id is saved under "[sensors <host>]", never a relay's id."""
    ids = FakeIds()

    async def scenario() -> None:
        async with running(properties={GAS: True}) as device:
            async with polling([sensor(device.host, "gas", GAS)], ids) as target:
                await target.until(lambda: len(target.readings("gas")) >= 2, "two rounds")
            last = device.traffic.requests[-1]["id"]
            assert ids.saved == {f"[sensors {device.host}]": last}

    real(scenario())


def test_a_sensor_on_a_relays_device_is_read_through_the_relays_lane(real: Any) -> None:
    """Relay and sensor requests to one device are one numbered sequence, in one thread."""

    async def scenario() -> None:
        async with running(properties={GAS: False}) as device:
            relay = MiioRelay(MiioDeviceSettings.model_validate({
                "kind": "miio", "id": "hob", "host": device.host, "token": TOKEN,
                "model": device.model, "timeout": "150ms", "handshake_timeout": "150ms"}))
            await relay.start()
            try:
                lanes = {device.host: relay.lane}
                async with polling([sensor(device.host, "gas", GAS)], lanes=lanes) as target:
                    for _ in range(3):
                        assert await relay.read() == {1: RelayState.OFF}
                    await target.until(lambda: len(target.readings("gas")) >= 3, "polls")
                    threads = {t.name for t in threading.enumerate()}
                    assert not any(name.startswith("miio-sensors@") for name in threads)
            finally:
                await relay.close()
            ids = [request["id"] for request in device.traffic.requests]
            assert ids == list(range(ids[0], ids[0] + len(ids)))
            assert device.traffic.repeated == 0

    real(scenario())


def test_one_host_with_two_tokens_is_refused() -> None:
    """Two sensors on one device must agree on its token."""
    host = fresh_host()
    other = sensor(host, "smoke", SMOKE, token="ffeeddccbbaa99887766554433221100")
    with pytest.raises(ConfigError, match=r"'gas' and 'smoke' are on one device"):
        MiotSensors([sensor(host, "gas", GAS), other], None, RecordingInput())


# Devices that lie: answers the simulator would never give, scripted from the codec.


class LyingDevice(asyncio.DatagramProtocol):
    """Answers hello, and each get_properties with ``result(params)``, sealed properly."""

    def __init__(self, result: Callable[[list[dict[str, Any]]], Any]) -> None:
        self.result = result
        self.transport: Any = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if is_hello(data):
            self.transport.sendto(build_hello_reply(DEVICE_ID, 1), addr)
            return
        body = decode_message(data, parse_token(TOKEN)).body
        reply = {"id": body["id"], "result": self.result(body["params"])}
        self.transport.sendto(
            encode_message(reply, token=parse_token(TOKEN), device_id=DEVICE_ID, stamp=1), addr
        )

    def error_received(self, exc: Exception) -> None:
        """The client closed its hello socket before the extra hello replies."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


def _echo(params: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    return [{**item, "code": 0, "value": True, **changes} for item in params]


LIES: dict[str, Callable[[list[dict[str, Any]]], Any]] = {
    "not-a-list": lambda params: {"did": "gas", "value": True},
    "other-property": lambda params: _echo(params, piid=9),
    "no-value": lambda params: [{**item, "code": 0} for item in params],
    "code-is-false": lambda params: _echo(params, code=False),
    "accepted-code": lambda params: _echo(params, code=1),
    "twice": lambda params: _echo(params) * 2,
    "someone-else": lambda params: _echo(params, did="smoke"),
    "null-value": lambda params: _echo(params, value=None),
}


@contextlib.asynccontextmanager
async def scripted(result: Callable[[list[dict[str, Any]]], Any]) -> AsyncIterator[str]:
    """A scripted device on a fresh host; yields the host."""
    host = fresh_host()
    transport, device = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: LyingDevice(result), local_addr=(host, 54321)
    )
    try:
        yield host
    finally:
        transport.close()
        await device.closed


def test_a_scripted_honest_answer_is_believed(real: Any) -> None:
    """The answer every lie below is made from is read, so each lie is what is refused."""

    async def scenario() -> None:
        async with scripted(_echo) as host, polling([sensor(host, "gas", GAS)]) as target:
            await target.until(lambda: target.readings("gas") == [True], "believed")

    real(scenario())


@pytest.mark.parametrize("lie", LIES)
def test_a_device_that_lies_is_not_believed(real: Any, lie: str) -> None:
    """Answers of a wrong shape, for another property or without a clean code are unread."""

    async def scenario() -> None:
        async with scripted(LIES[lie]) as host, \
                polling([sensor(host, "gas", GAS)]) as target:
            await target.until(lambda: target.availability("gas") == [False], "unread")
        assert target.readings("gas") == []

    real(scenario())
