"""Specification of ``stovectl discover``: hello to an address, one line per device that answers.

Tests never broadcast: each sends hello to a simulated device's own loopback
address. Silence can only be shown by waiting, so those tests wait out a short
``--timeout`` and also check that the hellos did reach the device.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any, cast

from stovectl.devices.miio_codec import PORT, build_hello_reply
from stovectl.tools.discover import say_hello
from tests.tools.miio_lan import DEVICE_ID, TOKEN, fresh_host, running_device, stovectl

Run = Callable[[Coroutine[Any, Any, Any]], Any]
WINDOW_SECONDS = 0.3


class _Responder(asyncio.DatagramProtocol):
    """Something on port 54321 that answers every datagram with fixed bytes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.answered = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The loop hands a datagram endpoint its datagram transport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(self.answer, addr)
        self.answered += 1


async def _respond(answer: bytes, host: str) -> tuple[asyncio.DatagramTransport, _Responder]:
    responder = _Responder(answer)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: responder, local_addr=(host, PORT)
    )
    return transport, responder


def test_a_leaking_device_is_found_once_with_its_token(real: Run) -> None:
    """Three hellos reach the device, and its three answers make one entry carrying the token."""

    async def scenario() -> None:
        async with running_device(leak_token=True) as device:
            found = await asyncio.to_thread(say_hello, device.host, WINDOW_SECONDS)
            assert [(f.address, f.device_id, f.token) for f in found] == [
                (device.host, DEVICE_ID, TOKEN)
            ]
            assert device.traffic.hello_replies == 3

    real(scenario())


def test_a_device_that_hides_its_token_is_found_without_one(real: Run) -> None:
    """A hello reply with 16 bytes of ff in the checksum field gives no token."""

    async def scenario() -> None:
        async with running_device(leak_token=False) as device:
            found = await asyncio.to_thread(say_hello, device.host, WINDOW_SECONDS)
            assert [(f.address, f.device_id, f.token) for f in found] == [
                (device.host, DEVICE_ID, None)
            ]

    real(scenario())


def test_an_all_zero_token_field_means_hidden_too(real: Run) -> None:
    """Some firmware hides the token as 16 zero bytes: that is no token either."""

    async def scenario() -> None:
        host = fresh_host()
        transport, _ = await _respond(build_hello_reply(DEVICE_ID, 7, bytes(16)), host)
        try:
            found = await asyncio.to_thread(say_hello, host, WINDOW_SECONDS)
        finally:
            transport.close()
        assert [(f.device_id, f.stamp, f.token) for f in found] == [(DEVICE_ID, 7, None)]

    real(scenario())


def test_answers_that_are_not_hello_replies_are_ignored(real: Run) -> None:
    """Something else on port 54321 answering garbage is not a device."""

    async def scenario() -> None:
        host = fresh_host()
        transport, responder = await _respond(b"\x21\x31 not a miIO hello reply", host)
        try:
            found = await asyncio.to_thread(say_hello, host, WINDOW_SECONDS)
        finally:
            transport.close()
        assert responder.answered == 3
        assert found == []

    real(scenario())


def test_the_cli_prints_address_id_stamp_and_a_leaked_token(real: Run) -> None:
    """Exit 0, a table row for the device, and where to put the token."""

    async def scenario() -> None:
        async with running_device(leak_token=True) as device:
            result = await stovectl("discover", "--address", device.host, "--timeout", "300ms")
        assert result.returncode == 0, result.output
        row = next(line for line in result.stdout.splitlines() if line.startswith(device.host))
        assert row.split() == [device.host, "0badcafe", str(DEVICE_ID), row.split()[3], TOKEN]
        assert row.split()[3].isdigit()
        assert "token_file" in result.stdout

    real(scenario())


def test_the_cli_says_where_a_hidden_token_comes_from(real: Run) -> None:
    """A hidden token reads "hidden", with the Mi Home backup and Xiaomi account routes."""

    async def scenario() -> None:
        async with running_device(leak_token=False) as device:
            result = await stovectl("discover", "--address", device.host, "--timeout", "300ms")
        assert result.returncode == 0, result.output
        row = next(line for line in result.stdout.splitlines() if line.startswith(device.host))
        assert row.split()[-1] == "hidden"
        assert "Mi Home app" in result.stdout
        assert "Xiaomi account" in result.stdout

    real(scenario())


def test_the_cli_json_lists_each_device(real: Run) -> None:
    """``--json`` gives address, hex device id, decimal did, stamp and token (null if hidden)."""

    async def scenario() -> None:
        async with running_device(leak_token=False) as device:
            result = await stovectl(
                "discover", "--address", device.host, "--timeout", "300ms", "--json"
            )
        assert result.returncode == 0, result.output
        [entry] = json.loads(result.stdout)
        stamp = entry.pop("stamp")
        assert entry == {"address": device.host, "device_id": "0badcafe", "did": DEVICE_ID,
                         "token": None}
        assert isinstance(stamp, int)
        assert stamp >= 0

    real(scenario())


def test_an_offline_device_means_none_found_and_exit_1(real: Run) -> None:
    """The hellos reach a silent device; discover waits out its timeout and exits 1."""

    async def scenario() -> None:
        async with running_device() as device:
            device.offline = True
            result = await stovectl("discover", "--address", device.host, "--timeout", "300ms")
            assert device.traffic.datagrams == 3
        assert result.returncode == 1
        assert result.stdout == ""
        assert f"no miIO device answered hello at {device.host} within 300ms" in result.stderr

    real(scenario())


def test_a_bad_address_or_timeout_is_a_usage_error(real: Run) -> None:
    """Neither a host name nor a zero timeout is taken: exit 2 before anything is sent."""

    async def scenario() -> None:
        by_name = await stovectl("discover", "--address", "relay.local")
        no_time = await stovectl("discover", "--address", "127.0.4.1", "--timeout", "0s")
        assert (by_name.returncode, no_time.returncode) == (2, 2)
        assert "not an IPv4 address" in by_name.stderr
        assert "longer than zero" in no_time.stderr

    real(scenario())
